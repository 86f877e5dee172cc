"""Cron trigger -- PLACEHOLDER being replaced by the full implementation (see issue 2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs


@attrs.frozen
class Cron:
    """Placeholder."""

    expr: str
    tz: str = "UTC"

    def next_after(self, instant: datetime) -> datetime | None:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"type": "cron", "expr": self.expr, "tz": self.tz}

    def describe(self) -> str:
        return f"cron {self.expr!r} {self.tz}"
