"""The task allow-list: which ``module:function`` references may run at all.

A task reference is code to import and call, and a schedule can reach the store from
places the operator does not control (a schedule file, a hand-written Redis hash). The
allow-list closes that door: a list of fnmatch-style patterns (``app.jobs:*``,
``app.*:*``, ``app.jobs:nightly``) that a task must match to be added, synced or handed
to an executor. It is set in code (``Scheduler(allowed_tasks=[...])``), or in the
``SCHEDCORE_ALLOWED_TASKS`` environment variable (comma-separated), or with the CLI's
``--allowed-tasks`` / ``allowed_tasks`` setting. When it is unset every task is allowed
(the behaviour of earlier versions); ``schedcore status`` warns about it.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping

import attrs

from schedcore.exceptions import ValidationError

__all__ = ["ENV_VAR", "TaskAllowList"]

#: The environment variable holding the patterns, comma-separated.
ENV_VAR = "SCHEDCORE_ALLOWED_TASKS"
# A pattern is a task reference with glob characters: exactly one ':' so that a pattern
# cannot match across the module/function boundary by accident ("app*" would allow "apple:x").
_PATTERN_RE = re.compile(r"^[A-Za-z0-9_.*?\[\]!]+:[A-Za-z0-9_.*?\[\]!]+$")
_CACHE_LIMIT = 10_000


def _patterns(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    for pattern in value:
        if not isinstance(pattern, str) or not _PATTERN_RE.match(pattern):
            raise ValidationError(
                "allowed_tasks",
                pattern,
                "expected 'module:function' patterns such as 'app.jobs:*' or 'app.*:*'",
            )
    return tuple(value)


@attrs.frozen
class TaskAllowList:
    """Patterns of allowed task references; ``patterns=None`` allows every task (off).

    ``TaskAllowList(("app.jobs:*",)).allows("app.jobs:nightly")`` is True,
    ``.allows("os:system")`` False. An empty tuple allows nothing.
    """

    patterns: tuple[str, ...] | None = attrs.field(default=None, converter=_patterns)
    _regex: re.Pattern[str] | None = attrs.field(init=False, eq=False, repr=False)
    _seen: dict[str, bool] = attrs.field(init=False, eq=False, repr=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        # One compiled alternation: a single match per task instead of a loop over patterns.
        regex = None
        if self.patterns is not None:
            regex = re.compile("|".join(fnmatch.translate(p) for p in self.patterns) or r"(?!)")
        object.__setattr__(self, "_regex", regex)

    @classmethod
    def parse(cls, text: str | None) -> TaskAllowList:
        """From ``"app.jobs:*, app.*:*"``; ``None`` or blank text means off."""
        if text is None or not text.strip():
            return cls(None)
        return cls(tuple(p.strip() for p in text.split(",") if p.strip()))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TaskAllowList:
        """From ``SCHEDCORE_ALLOWED_TASKS`` (off when unset or blank)."""
        return cls.parse((os.environ if environ is None else environ).get(ENV_VAR))

    @classmethod
    def of(cls, value: TaskAllowList | Iterable[str] | str | None) -> TaskAllowList:
        """A TaskAllowList from what a caller passes: one, patterns, a comma-separated
        string, or ``None`` (then the environment decides)."""
        if value is None:
            return cls.from_env()
        if isinstance(value, TaskAllowList):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        return cls(tuple(value))

    @property
    def enabled(self) -> bool:
        """False when every task is allowed (no list configured)."""
        return self.patterns is not None

    def allows(self, task: str) -> bool:
        """True when ``task`` matches a pattern (always when the list is off)."""
        if self._regex is None:
            return True
        found = self._seen.get(task)
        if found is None:  # memoised: a batch hands over the same few tasks again and again
            if len(self._seen) >= _CACHE_LIMIT:
                self._seen.clear()
            found = self._seen[task] = self._regex.match(task) is not None
        return found

    def refusal(self, task: str) -> str:
        """The error of a refused task: ``task 'os:system' is not in the allowed tasks``."""
        shown = task if len(task) <= 200 else task[:197] + "..."
        return f"task {shown!r} is not in the allowed tasks"

    def check(self, task: str, field: str = "task") -> None:
        """ValidationError naming ``field`` and ``task`` unless it is allowed."""
        if not self.allows(task):
            raise ValidationError(field, task, f"not in the allowed tasks ({', '.join(self.patterns or ())})")
