"""``schedcore-rqscheduler``: rq-scheduler's ``rqscheduler`` command, run by schedcore.

The same flags and ``RQ_REDIS_*`` variables, so that a Procfile or systemd unit changes
one word (``rqscheduler`` -> ``schedcore-rqscheduler``). Exit codes follow schedcore's
command line: 2 for bad flags, 1 for a failure while running, 0 after SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]

log = logging.getLogger("schedcore.rq.compat")


def _parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="schedcore-rqscheduler", description="Runs the rq-scheduler compatible scheduler of schedcore"
    )
    parser.add_argument("-b", "--burst", action="store_true", help="enqueue what is due now, then quit")
    parser.add_argument("-H", "--host", default=env.get("RQ_REDIS_HOST", "localhost"), help="Redis host")
    parser.add_argument("-p", "--port", default=env.get("RQ_REDIS_PORT", "6379"), type=int, help="Redis port")
    parser.add_argument("-d", "--db", default=env.get("RQ_REDIS_DB", "0"), type=int, help="Redis database")
    parser.add_argument("-P", "--password", default=env.get("RQ_REDIS_PASSWORD"), help="Redis password")
    parser.add_argument("-v", "--verbose", action="store_true", help="show more output")
    parser.add_argument("--quiet", action="store_true", help="show less output")
    parser.add_argument(
        "-u", "--url", default=env.get("RQ_REDIS_URL"), help="Redis URL (overrides the other connection flags)"
    )
    parser.add_argument(
        "-i",
        "--interval",
        default=60.0,
        type=float,
        help="accepted for compatibility: schedcore wakes at each job's due time",
    )
    parser.add_argument("--path", default=".", help="import path(s), ':'-separated")
    parser.add_argument("--pid", metavar="FILE", help="write the process id to FILE")
    parser.add_argument("-j", "--job-class", help="custom RQ Job class (dotted path)")
    parser.add_argument("-q", "--queue-class", help="custom RQ Queue class (dotted path)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``schedcore-rqscheduler``; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for bad flags, 0 for --help
        return int(exc.code or 0)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.path:
        sys.path[:0] = args.path.split(":")
    if args.pid:
        with open(args.pid, "w") as f:
            f.write(str(os.getpid()))
    try:
        from redis import Redis

        from schedcore_rq.compat import Scheduler

        if args.url is not None:
            connection = Redis.from_url(args.url)
        else:
            connection = Redis(host=args.host, port=args.port, db=args.db, password=args.password)
        scheduler = Scheduler(
            connection=connection, interval=args.interval, job_class=args.job_class, queue_class=args.queue_class
        )
        scheduler.run(burst=args.burst)
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def entry_point() -> None:
    """The console script: :func:`main` with the process's arguments."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
