"""``schedcore web``: registered on the ``schedcore`` command group by :mod:`schedcore.cli`
when this package is importable; Flask and waitress are imported only when it runs."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import click

from schedcore.cli import _command, _opened
from schedcore_web._security import LOOPBACK_NAMES, is_loopback

log = logging.getLogger("schedcore.web")

_MISSING_EXTRA = (
    "'schedcore web' needs Flask and waitress, which are not installed: pip install 'schedcore-engine[web]'"
)


@contextlib.contextmanager
def _demo() -> Iterator[Any]:
    from schedcore_web.demo import demo_store, pages_scheduler, start_demo_scheduler

    store = demo_store()
    running = start_demo_scheduler(store)
    try:
        yield pages_scheduler(store)
    finally:
        running.stop()


@_command("web")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="SCHEDCORE_WEB_HOST", help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8780, show_default=True, envvar="SCHEDCORE_WEB_PORT")
@click.option("--read-only", is_flag=True, envvar="SCHEDCORE_WEB_READ_ONLY", help="Turn every action off.")
@click.option(
    "--token",
    envvar="SCHEDCORE_WEB_TOKEN",
    metavar="TOKEN",
    help="Require this bearer token (or as the basic-auth password); prefer the env: SCHEDCORE_WEB_TOKEN.",
)
@click.option("--user", envvar="SCHEDCORE_WEB_USER", metavar="NAME", help="Basic-auth user (env: SCHEDCORE_WEB_USER).")
@click.option(
    "--password",
    envvar="SCHEDCORE_WEB_PASSWORD",
    metavar="PASSWORD",
    help="Basic-auth password; prefer the env: SCHEDCORE_WEB_PASSWORD.",
)
@click.option("--demo", is_flag=True, help="With --store memory: serve demo schedules with an hour of history.")
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True, help="Request threads.")
def web_command(
    *,
    host: str,
    port: int,
    read_only: bool,
    token: str | None,
    user: str | None,
    password: str | None,
    demo: bool,
    threads: int,
    **options: Any,
) -> None:
    """Serve the dashboard and its JSON API (docs/web.md).

    Binds to loopback by default; a non-loopback --host is refused unless authentication is
    configured (--token, or --user with --password, best from the environment). Actions are
    POSTs with CSRF protection; --read-only turns them all off.
    """
    try:
        import waitress

        from schedcore_web._app import WebConfig, create_app
        from schedcore_web._security import Auth
    except ImportError:
        raise click.ClickException(_MISSING_EXTRA) from None
    try:
        auth = Auth(token=token, username=user, password=password) if (token or user or password) else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    loopback = is_loopback(host)
    if not loopback and auth is None:
        raise click.UsageError(
            f"refusing to serve on {host}, which is not loopback, without authentication: "
            "set SCHEDCORE_WEB_TOKEN (or SCHEDCORE_WEB_USER and SCHEDCORE_WEB_PASSWORD)"
        )
    ctx = click.get_current_context()
    if demo and ctx.params["store"] != "memory":
        raise click.UsageError("--demo only goes with --store memory")
    config = WebConfig(
        read_only=read_only,
        auth=auth,
        # Loopback without a password: only loopback names, so a DNS-rebinding page cannot get in.
        allowed_hosts=LOOPBACK_NAMES if loopback and auth is None else None,
        csrf_secret=os.environ.get("SCHEDCORE_WEB_SECRET", "").encode() or None,
    )
    opened = _demo() if demo else _opened(ctx)
    with opened as scheduler:
        server = waitress.create_server(create_app(scheduler, config), host=host, port=port, threads=threads)
        bound = getattr(server, "effective_port", port)
        shown = f"[{host}]" if ":" in host else host
        # One line a script (or a test) can wait for; the URL carries no secret.
        click.echo(f"schedcore web: serving on http://{shown}:{bound}/", err=True)
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
