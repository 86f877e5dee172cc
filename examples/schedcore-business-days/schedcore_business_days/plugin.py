"""The plugin module the ``schedcore`` entry point names: it registers the trigger type."""

from __future__ import annotations

from collections.abc import Sequence

from schedcore.hookspecs import hookimpl
from schedcore.trigger_types import TriggerType
from schedcore_business_days.trigger import BusinessDays

#: ``to_dict()["type"]`` of every BusinessDays trigger; stored with each schedule, so never renamed.
TYPE = TriggerType(
    name="business_days",
    cls=BusinessDays,
    description="business days at HH:MM in a zone, skipping listed holidays (schedcore-business-days)",
)


@hookimpl
def schedcore_trigger_types() -> Sequence[TriggerType]:
    # BusinessDays is an attrs class: schedcore builds it from its to_dict() keys (no load=).
    return [TYPE]
