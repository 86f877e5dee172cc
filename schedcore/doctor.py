"""Consistency checks of a store (``schedcore doctor``): what was found and what was repaired.

A store that can check itself has a method ``check(*, repair: bool = False, now: datetime)
-> CheckReport`` (:class:`Checkable`). Each problem is a :class:`Finding`; with ``repair``
the store fixes what it can fix safely while schedulers keep running, and says for the rest
what the operator has to do. The kinds of findings (:data:`KINDS`) are shared by every
store, so that reports read the same whatever the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from schedcore._planner import first_fire
from schedcore._time import iso
from schedcore.exceptions import StoreError
from schedcore.model import Schedule
from schedcore.records import Pending

__all__ = [
    "KINDS",
    "CheckReport",
    "Checkable",
    "Finding",
    "Severity",
    "check_store",
    "expected_fire",
]

Severity = Literal["error", "warning", "info"]

#: Every kind of finding, with what it means.
KINDS: Mapping[str, str] = {
    "orphan_entry": "an index entry or claim of a schedule that has no definition",
    "orphan_id": "a listed schedule id without a definition",
    "unlisted": "a definition missing from the list of schedule ids (list does not show it)",
    "missing_fire": "a schedule that should have a fire entry and has none (it would never fire again)",
    "fire_without_data": "a fire entry in the index whose schedule holds no fire time",
    "claim_without_lease": "a claim in flight without a lease (it would never expire)",
    "lease_without_claim": "a lease without the claim it belongs to",
    "stale_claim": "a claim whose lease expired and whose owner is not alive",
    "wrong_type": "a key holding another Redis type than the store expects",
    "unreadable": "a record that cannot be decoded (definition, entry, claim, history record, heartbeat)",
    "unknown_key": "a key in the namespace the store does not know (not a problem by itself)",
    "quarantine": "records moved aside by an earlier repair, waiting for the operator",
    "damaged_file": "a SQLite store file failing SQLite's own integrity check (restore it from a backup)",
}


@attrs.frozen(kw_only=True)
class Finding:
    """One problem found by a check (or, with severity ``info``, a note).

    ``key`` names where it is (a Redis key, or a schedule's part in stores without keys),
    ``detail`` what is wrong, ``repaired`` whether the repair fixed it and ``action`` what
    the repair did (and where moved records went) or what the operator has to do.
    """

    kind: str
    detail: str
    key: str = ""
    schedule_id: str | None = None
    severity: Severity = "error"
    repaired: bool = False
    action: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``schedcore doctor --json``)."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "schedule_id": self.schedule_id,
            "key": self.key,
            "detail": self.detail,
            "repaired": self.repaired,
            "action": self.action,
        }


@attrs.frozen(kw_only=True)
class CheckReport:
    """What one check of a store found: findings, whether it repaired, and what it looked at."""

    store: str
    checked_at: datetime
    repair: bool
    findings: tuple[Finding, ...] = ()
    #: what was looked at: {"keys": n, "schedules": n, ...}
    counts: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def problems(self) -> tuple[Finding, ...]:
        """The findings that are problems (not notes)."""
        return tuple(f for f in self.findings if f.severity != "info")

    @property
    def remaining(self) -> tuple[Finding, ...]:
        """The problems not repaired (all of them without ``repair``)."""
        return tuple(f for f in self.problems if not f.repaired)

    @property
    def clean(self) -> bool:
        """No problem was found."""
        return not self.problems

    @property
    def exit_code(self) -> int:
        """0 when nothing is left to fix (no problem, or every one repaired), else 1."""
        return 1 if self.remaining else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``schedcore doctor --json``)."""
        return {
            "store": self.store,
            "checked_at": iso(self.checked_at),
            "repair": self.repair,
            "counts": dict(self.counts),
            "problems": len(self.problems),
            "repaired": sum(1 for f in self.problems if f.repaired),
            "remaining": len(self.remaining),
            "findings": [f.to_dict() for f in self.findings],
        }

    def rows(self) -> list[list[str]]:
        """The findings as table rows: KIND, SCHEDULE, KEY, DETAIL, RESULT (problems first)."""
        order = {"error": 0, "warning": 1, "info": 2}
        out = []
        for f in sorted(self.findings, key=lambda f: order.get(f.severity, 3)):
            result = "note" if f.severity == "info" else ("repaired" if f.repaired else "NOT repaired")
            if f.action:
                result += f": {f.action}"
            out.append([f.kind, _short(f.schedule_id or "-"), _short(f.key or "-"), f.detail, result])
        return out

    def summary(self) -> str:
        """One line: what was checked and found."""
        looked = ", ".join(f"{n} {what}" for what, n in self.counts.items())
        found = len(self.problems)
        if not found:
            return f"{self.store}: clean ({looked})"
        repaired = sum(1 for f in self.problems if f.repaired)
        tail = f", {repaired} repaired, {found - repaired} left" if self.repair else " (run with --repair to fix)"
        return f"{self.store}: {found} problem(s){tail} ({looked})"


def _short(value: str, limit: int = 60) -> str:
    """A cell of the table: an attacker's 10 kB id is cut, never echoed whole."""
    return value if len(value) <= limit else value[: limit - 3] + "..."


@runtime_checkable
class Checkable(Protocol):
    """A store that checks (and repairs) its own consistency."""

    def check(self, *, repair: bool = False, now: datetime) -> CheckReport:
        """Check the store; with ``repair``, fix what can be fixed safely."""
        ...


def check_store(store: object, *, repair: bool, now: datetime) -> CheckReport:
    """``store.check(repair=repair, now=now)``; StoreError when the store has no checker."""
    if not isinstance(store, Checkable):
        raise StoreError(f"the store {type(store).__name__} has no consistency checker (no check method)")
    return store.check(repair=repair, now=now)


def expected_fire(schedule: Schedule, now: datetime, runs_started: int) -> Pending | None:
    """The fire entry a schedule missing one gets back: its first occurrence at or after
    ``now``, as an add would install it (None when paused, finished or out of runs)."""
    if schedule.paused:
        return None
    return first_fire(schedule, now, runs_started, late_one_shot=False)  # a past one-shot has had its turn
