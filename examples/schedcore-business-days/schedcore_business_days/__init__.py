"""A schedcore trigger that fires on business days at a wall-clock time, skipping holidays.

``BusinessDays(at="09:00", tz="Europe/Paris", holidays=["2025-12-25"])``; registered as
trigger type ``business_days`` by the plugin module :mod:`schedcore_business_days.plugin`.
"""

from schedcore_business_days.trigger import BusinessDays

__all__ = ["BusinessDays"]
