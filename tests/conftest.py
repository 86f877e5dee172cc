"""Shared test configuration: hypothesis profiles (``ci`` is selected in CI)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# The example Prometheus plugin (examples/schedcore-prometheus, installed in CI) serves
# metrics from every scheduler process it loads into. Keep each test's server on a free
# port on loopback (subprocesses inherit this), so that tests never collide on 9464 or
# listen on other interfaces.
os.environ.setdefault("SCHEDCORE_PROMETHEUS_PORT", "0")
os.environ.setdefault("SCHEDCORE_PROMETHEUS_ADDR", "127.0.0.1")
