"""Checking schedules for the executor that will run them, without building it.

``schedcore add`` and ``sync`` only write to the store; building the executor would
connect to its backend (and the machine they run on may not reach it). Yet a schedule
whose ``executor_options`` that executor refuses fails every one of its runs, so they ask
the executor's factory instead: :attr:`schedcore.plugins.ExecutorFactory.validate`
checks a schedule for an executor built from given options, connecting to nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from schedcore.exceptions import ConfigError, ValidationError

if TYPE_CHECKING:
    from schedcore.model import Schedule
    from schedcore.plugins import ExecutorFactory

__all__ = ["ScheduleCheck"]


@attrs.frozen
class ScheduleCheck:
    """Checks each schedule for executor ``factory`` built from ``options``.

    A refused schedule raises ValidationError naming the schedule, the field
    (``executor_options.job_timeout``) and the value; refused ``options`` (an unknown
    ``-E`` key) raise ConfigError naming the executor, since no schedule is to blame.
    A factory without ``validate`` accepts everything (a running scheduler checks then).
    """

    factory: ExecutorFactory
    options: Mapping[str, Any]

    def __call__(self, schedule: Schedule) -> None:
        validate = self.factory.validate
        if validate is None:
            return
        try:
            validate(schedule, self.options)
        except ValidationError as exc:
            if exc.field.partition(".")[0] not in _schedule_fields():
                raise ConfigError(f"executor {self.factory.name!r}: {exc}") from None
            raise ValidationError(
                exc.field, exc.value, f"{exc.reason} (schedule {schedule.id!r}, for executor {self.factory.name!r})"
            ) from None
        except ConfigError as exc:
            raise ConfigError(f"executor {self.factory.name!r}: {exc}") from None


def _schedule_fields() -> frozenset[str]:
    from schedcore.model import Schedule

    return frozenset(attrs.fields_dict(Schedule))
