"""``python -m schedcore_rq._worker_main worker ...``: ``rq worker`` with its log on stderr.

:class:`~schedcore_rq.WorkerPool` starts its workers with this instead of ``python -m rq.cli``.
RQ's own set-up (``rq.logutils.setup_loghandlers``) sends the worker's log lines below ERROR
to stdout, where the tasks' own output goes too. Here a stderr handler is put on the ``rq``
logger first -- RQ then adds none of its own -- so that stdout carries the tasks' output only
and stderr every log line, as for the scheduler. The arguments are ``rq``'s, unchanged
(``--log-format`` and ``--date-format`` are honoured, ``--quiet``/``--verbose`` set the level).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _option(argv: Sequence[str], name: str, default: str) -> str:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``argv`` (the last one wins)."""
    value = default
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1 :]
    return value


def log_to_stderr(argv: Sequence[str]) -> logging.Handler:
    """Send the ``rq`` loggers' records to stderr, formatted as RQ would; returns the handler."""
    from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT

    handler = logging.StreamHandler(sys.stderr)
    fmt = _option(argv, "--log-format", DEFAULT_LOGGING_FORMAT)
    datefmt = _option(argv, "--date-format", DEFAULT_LOGGING_DATE_FORMAT)
    handler.setFormatter(logging.Formatter(fmt=fmt, datefmt=datefmt))
    logger = logging.getLogger("rq")
    logger.addHandler(handler)
    # As RQ's own handlers do: a task that configures the root logger must not print RQ's lines twice.
    logger.propagate = False
    return handler


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``rq``'s command line with ``argv`` (default: ``sys.argv[1:]``), logging to stderr."""
    args = list(sys.argv[1:] if argv is None else argv)
    log_to_stderr(args)
    import rq.cli  # noqa: F401  (registers RQ's commands, ``worker`` among them, on its group)
    from rq.cli.cli import main as rq_main

    rq_main(args=args, prog_name="rq")


if __name__ == "__main__":
    main()
