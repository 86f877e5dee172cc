"""Prometheus metrics for schedcore, fed by its lifecycle hooks and served over HTTP.

The ``schedcore`` entry point of this distribution names :data:`plugin`, one
:class:`PrometheusPlugin` per process. Schedulers built with the default plugin manager
(``schedcore run`` among them) call its hooks; the first one to start opens the HTTP
endpoint, the last one to stop closes it. To use it on a scheduler of your own::

    from prometheus_client import CollectorRegistry
    from schedcore import Scheduler
    from schedcore.plugins import get_plugin_manager
    from schedcore_prometheus import PrometheusPlugin

    metrics = PrometheusPlugin(registry=CollectorRegistry(), port=0, addr="127.0.0.1")
    sched = Scheduler(plugins=get_plugin_manager(entry_points=False, plugins=(metrics,)))
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from schedcore.hookspecs import hookimpl

if TYPE_CHECKING:
    from collections.abc import Iterable

    from schedcore import Scheduler
    from schedcore.records import Outcome, Run, RunRecord

__all__ = ["DEFAULT_ADDR", "DEFAULT_PORT", "LATENESS_BUCKETS", "PrometheusPlugin", "plugin"]

log = logging.getLogger("schedcore_prometheus")

DEFAULT_PORT = 9464  # the port OpenTelemetry's Prometheus exporter uses by default
# Loopback: the endpoint has no authentication and its labels name every schedule, so
# exposing it is the operator's choice (SCHEDCORE_PROMETHEUS_ADDR), never the default.
DEFAULT_ADDR = "127.0.0.1"
PORT_ENV = "SCHEDCORE_PROMETHEUS_PORT"
ADDR_ENV = "SCHEDCORE_PROMETHEUS_ADDR"

#: Seconds from an occurrence's nominal fire time to its hand-over. On time is
#: milliseconds; catch-up after downtime is minutes to hours.
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, float("inf"))


class PrometheusPlugin:
    """The metrics of one registry, updated by schedcore's hooks.

    ``registry`` defaults to a new :class:`~prometheus_client.CollectorRegistry` (never
    the process-wide default one, so that two instances do not clash). ``port`` and
    ``addr`` default to ``SCHEDCORE_PROMETHEUS_PORT`` / ``SCHEDCORE_PROMETHEUS_ADDR``,
    read when the first scheduler starts, then to 9464 on loopback (127.0.0.1); port ``0``
    picks a free port (see :attr:`port_bound`), ``"off"`` serves nothing.
    """

    def __init__(
        self, *, registry: CollectorRegistry | None = None, port: int | str | None = None, addr: str | None = None
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._port = port
        self._addr = addr
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._running: dict[str, Scheduler] = {}  # the started schedulers, by owner
        self.port_bound: int | None = None  #: the port served on, once serving

        r = self.registry
        self.dispatched = Counter(
            "schedcore_runs_dispatched", "Runs handed to the executor.", ["schedule", "kind"], registry=r
        )
        self.succeeded = Counter(
            "schedcore_runs_succeeded", "Runs that finished successfully.", ["schedule"], registry=r
        )
        self.failed = Counter(
            "schedcore_runs_failed",
            "Runs that failed, were lost or were stopped (status label); a retry may follow.",
            ["schedule", "status"],
            registry=r,
        )
        self.retried = Counter(
            "schedcore_runs_retried", "Retries scheduled after a failed or lost run.", ["schedule"], registry=r
        )
        self.exhausted = Counter(
            "schedcore_runs_exhausted", "Runs that failed on their last allowed attempt.", ["schedule"], registry=r
        )
        self.misfires = Counter(
            "schedcore_misfires",
            "Occurrences skipped (catchup, overlap, max_runs, end_at).",
            ["schedule", "reason"],
            registry=r,
        )
        self.lateness = Histogram(
            "schedcore_firing_lateness_seconds",
            "Seconds from an occurrence's nominal fire time to its hand-over (jitter included).",
            ["kind"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.start_lateness = Histogram(
            "schedcore_start_lateness_seconds",
            "Seconds from an occurrence's nominal fire time to its task really starting, as the executor"
            " reported it: firing lateness plus the wait for a worker (runs whose executor cannot tell"
            " are not counted). attempt: first, or retry (whose nominal time is the first attempt's).",
            ["attempt"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "schedcore_runs_in_flight",
            "Runs this scheduler dispatched that have no outcome yet (dispatched minus finished).",
            ["scheduler"],
            registry=r,
        )
        r.register(_StoreStats(self))

    def track(self, scheduler: Scheduler) -> None:
        """Report ``scheduler``'s store statistics too (done by ``scheduler_started``)."""
        with self._lock:
            self._running[scheduler.owner] = scheduler

    def tracked(self) -> list[Scheduler]:
        """The schedulers whose store statistics are reported."""
        with self._lock:
            return list(self._running.values())

    # -- hooks -----------------------------------------------------------------------------

    @hookimpl
    def schedcore_scheduler_started(self, scheduler: Scheduler) -> None:
        self.track(scheduler)
        self.serve()

    @hookimpl
    def schedcore_scheduler_stopped(self, scheduler: Scheduler) -> None:
        with self._lock:
            self._running.pop(scheduler.owner, None)
            last = not self._running
        if last:
            self.close()

    @hookimpl
    def schedcore_run_dispatched(self, scheduler: Scheduler, run: Run, record: RunRecord) -> None:
        self.dispatched.labels(run.schedule_id, run.kind.value).inc()
        if record.lateness is not None:
            self.lateness.labels(run.kind.value).observe(max(record.lateness, 0.0))
        self.in_flight.labels(scheduler.owner).inc()

    @hookimpl
    def schedcore_run_succeeded(self, scheduler: Scheduler, outcome: Outcome) -> None:
        self.succeeded.labels(outcome.schedule_id).inc()
        self.in_flight.labels(scheduler.owner).dec()
        self._observe_start(outcome)

    @hookimpl
    def schedcore_run_failed(self, scheduler: Scheduler, outcome: Outcome) -> None:
        self.failed.labels(outcome.schedule_id, outcome.status.value).inc()
        self.in_flight.labels(scheduler.owner).dec()
        self._observe_start(outcome)

    def _observe_start(self, outcome: Outcome) -> None:
        # Observed once the outcome is recorded (the hooks run once per run): only then is the
        # start known. An outcome carries no kind, so retries -- late by their back-off -- are
        # told apart by attempt instead.
        if outcome.started_at is not None:
            late = (outcome.started_at - outcome.nominal).total_seconds()
            self.start_lateness.labels("first" if outcome.attempt <= 1 else "retry").observe(max(late, 0.0))

    @hookimpl
    def schedcore_run_retry_scheduled(self, outcome: Outcome) -> None:
        self.retried.labels(outcome.schedule_id).inc()

    @hookimpl
    def schedcore_run_exhausted(self, outcome: Outcome) -> None:
        self.exhausted.labels(outcome.schedule_id).inc()

    @hookimpl
    def schedcore_misfire_skipped(self, schedule_id: str, reason: str) -> None:
        self.misfires.labels(schedule_id, reason).inc()

    # -- the HTTP endpoint -------------------------------------------------------------------

    def serve(self) -> int | None:
        """Serve ``/metrics`` on a daemon thread (once); returns the port, or None when off.

        A port that is taken is logged as one warning: metrics are never worth stopping
        a scheduler for.
        """
        with self._lock:
            if self._server is not None:
                return self.port_bound
            port = self._port if self._port is not None else os.environ.get(PORT_ENV, str(DEFAULT_PORT))
            addr = self._addr if self._addr is not None else os.environ.get(ADDR_ENV, DEFAULT_ADDR)
            if str(port).strip().lower() in ("off", ""):
                return None
            try:
                self._server, self._thread = start_http_server(int(port), addr=addr, registry=self.registry)
            except (OSError, ValueError) as exc:
                log.warning(
                    "Prometheus metrics not served on %s:%s: %s",
                    addr,
                    port,
                    exc,
                    extra={"event": "metrics_unavailable", "port": str(port), "error": str(exc)},
                )
                return None
            self.port_bound = int(self._server.server_address[1])
        log.info(
            "Prometheus metrics on http://%s:%d/metrics",
            addr,
            self.port_bound,
            extra={"event": "metrics_serving", "port": self.port_bound},
        )
        return self.port_bound

    def close(self) -> None:
        """Stop serving (the metrics keep their values); safe to call again."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            self.port_bound = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()


class _StoreStats(Collector):
    """Gauges read from ``Store.stats`` of each tracked scheduler's store at scrape time."""

    def __init__(self, plugin: PrometheusPlugin) -> None:
        self._plugin = plugin

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        labels = ["scheduler"]
        return (
            GaugeMetricFamily("schedcore_schedules", "Schedules in the store.", labels=labels),
            GaugeMetricFamily(
                "schedcore_claims_in_flight", "Claims held in the store whose lease has not expired.", labels=labels
            ),
            GaugeMetricFamily("schedcore_due_entries", "Index entries due now and not claimed.", labels=labels),
            GaugeMetricFamily(
                "schedcore_oldest_due_seconds", "How long the oldest due, unclaimed entry has waited.", labels=labels
            ),
        )

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        schedules, in_flight, due, oldest = families = self._families()
        for scheduler in self._plugin.tracked():
            now = scheduler.clock.now()
            try:
                stats = scheduler.store.stats(now)
            except Exception as exc:  # a store outage must not fail the scrape
                log.debug("no store stats for %s: %s: %s", scheduler.owner, type(exc).__name__, exc)
                continue
            owner = [scheduler.owner]
            schedules.add_metric(owner, stats.schedules)
            in_flight.add_metric(owner, stats.in_flight)
            due.add_metric(owner, stats.due)
            waited = (now - stats.oldest_due).total_seconds() if stats.oldest_due is not None else 0.0
            oldest.add_metric(owner, max(waited, 0.0))
        return families


#: The instance the ``schedcore`` entry point registers.
plugin = PrometheusPlugin()
