"""The ``schedcore`` command line.

::

    schedcore next --cron "30 2 * * *" --tz America/New_York -n 3
    schedcore run --config examples/hello.toml
    schedcore --settings schedcore.toml list
    schedcore plugins

Settings come from flags first, then ``SCHEDCORE_*`` environment variables, then the
settings file (``--settings FILE`` or ``SCHEDCORE_SETTINGS``, see :mod:`schedcore.settings`),
then defaults. Plugins add options through the ``schedcore_cli_options`` hook
(``--redis-url`` comes from the Redis plugin).

Every user error is one line on stderr starting with ``error:`` and a non-zero exit
code -- 2 for a bad command line, 1 when something failed while running -- and never a
traceback unless ``--debug`` is given.

The group, its global options and the error handling are in :mod:`schedcore._cli_app`; what
the store commands share (``--store``, plugins' options, opening the store) in
:mod:`schedcore._cli_options`; the printing of times and tables in :mod:`schedcore._cli_output`;
the commands by group in ``schedcore/_cli_next.py`` (``next``), ``_cli_run.py`` (``run``,
``sync``), ``_cli_edit.py`` (``add``, ``remove``, ``pause``, ``resume``, ``trigger``,
``backfill``), ``_cli_show.py`` (``list``, ``show``), ``_cli_health.py`` (``status``,
``doctor``) and ``_cli_plugins.py`` (``plugins``). This module puts them together: importing it
registers every command on :data:`cli`, and :func:`main` is the console script.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from typing import NoReturn

# Each of these modules registers its commands on the group when imported.
from schedcore import _cli_edit, _cli_health, _cli_next, _cli_plugins, _cli_run, _cli_show  # noqa: F401
from schedcore._cli_app import (
    INTERRUPTED,
    RUNTIME_ERROR,
    USAGE_ERROR,
    CliError,
    InputError,
    SchedcoreGroup,
    Settings,
    _allowed_tasks,
    _hoist_global_options,
    _option_instant,
    _usage,
    cli,
)
from schedcore._cli_options import (
    PluginCommand,
    _command,
    _executor_choice,
    _NoExecutor,
    _opened,
    _store_options,
    _trigger_options,
)
from schedcore._cli_output import (
    _next_times,
    _schedule_zone,
    _seconds,
    _table,
    _utc,
    _when,
    _zoned,
)
from schedcore.settings import STORE_COMMANDS

# `cli` and `main` are the entry points; the other names are not public API, but stay importable
# from here as before the split (the dashboard, `schedcore migrate` and tests use them): listed
# so that type checkers see them re-exported.
__all__ = [
    "INTERRUPTED",
    "RUNTIME_ERROR",
    "STORE_COMMANDS",
    "USAGE_ERROR",
    "CliError",
    "InputError",
    "PluginCommand",
    "SchedcoreGroup",
    "Settings",
    "_NoExecutor",
    "_allowed_tasks",
    "_command",
    "_executor_choice",
    "_hoist_global_options",
    "_next_times",
    "_opened",
    "_option_instant",
    "_schedule_zone",
    "_seconds",
    "_store_options",
    "_table",
    "_trigger_options",
    "_usage",
    "_utc",
    "_when",
    "_zoned",
    "cli",
    "main",
]

# `schedcore web` lives in its own package (its Flask and waitress are an optional extra,
# imported only when the command runs); a build without that package has no such command.
with contextlib.suppress(ImportError):
    import schedcore_web._cli  # noqa: F401  (registers the command)
# `schedcore migrate rq-scheduler` needs redis and rq, imported only when it runs.
with contextlib.suppress(ImportError):
    import schedcore_rq._migrate_cli  # noqa: F401  (registers the command group)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``schedcore`` console script."""
    cli.main(args=argv, prog_name="schedcore")
    sys.exit(0)  # pragma: no cover - cli.main always exits


if __name__ == "__main__":  # pragma: no cover
    # ``python -m schedcore.cli`` runs a second copy of this module; `schedcore web` registers
    # on the imported ``schedcore.cli``, so run that one.
    from schedcore.cli import main as imported_main

    imported_main()
