"""``python -m bench [--quick]``: every scenario, schedcore and its peers, one private redis-server.

Writes ``bench/results.json``, ``docs/benchmarks.md`` and ``docs/img/{lateness,scale}.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import scenarios as S
from bench.common import ROOT, median, private_server, versions

log = logging.getLogger("bench")

#: Sizes per mode. The full run follows the issue; --quick shrinks every size (and says so in the report).
#: The memory scenario is measured on the schedules of the add scenario's first repetition
#: (``add_n``), and idle runs on the schedules the scale scenario stored (topped up to
#: ``idle_stored`` / ``idle_peer_stored``).
MODES: dict[str, dict[str, Any]] = {
    "full": {
        "reps": 3,
        "add_n": 5_000,
        "dispatch_due": 50_000,
        "dispatch_reps": 3,
        "scale_sizes": [1_000, 100_000, 1_000_000],
        "scale_due": 2_000,
        "scale_peers_max": 100_000,
        "late_rate": 1_000,
        "late_seconds": 30,
        "late_default_rate": 1_000,
        "idle_stored": 1_000_000,
        "idle_peer_stored": 100_000,
        "idle_window": 30.0,
        "scaleout_due": 50_000,
        "scaleout_procs": [1, 2, 4],
        "ceiling_requests": 1_000_000,
        "ceiling_requests_p1": 250_000,
        "burst_reps": 50,
    },
    "quick": {
        "reps": 3,
        "add_n": 1_000,
        "dispatch_due": 3_000,
        "dispatch_reps": 1,
        "scale_sizes": [1_000, 10_000, 100_000],
        "scale_due": 1_000,
        "scale_peers_max": 10_000,
        "late_rate": 1_000,
        "late_seconds": 6,
        "late_default_rate": 100,
        "idle_stored": 100_000,
        "idle_peer_stored": 10_000,
        "idle_window": 6.0,
        "scaleout_due": 5_000,
        "scaleout_procs": [1, 2, 4],
        "ceiling_requests": 200_000,
        "ceiling_requests_p1": 50_000,
        "burst_reps": 20,
    },
}


def run_scale(mode: str) -> dict[str, Any]:
    """Only the scale scenario (``--only scale``): its own JSON file, the report is left alone."""
    cfg = MODES[mode]
    results: dict[str, Any] = {
        "mode": mode,
        "config": {k: cfg[k] for k in ("reps", "scale_sizes", "scale_due", "scale_peers_max")},
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": versions(),
        "scale": {},
    }
    with private_server() as server:
        stored = S.Stored(server)
        for size in cfg["scale_sizes"]:
            _step(f"scale: {size} stored")
            runs = S.scale(server, stored, size, cfg["scale_due"], cfg["reps"], peers=size <= cfg["scale_peers_max"])
            results["scale"][str(size)] = {system: median(values) for system, values in runs.items()}
            results["scale"][str(size)]["runs"] = runs
    results["elapsed_s"] = round(time.monotonic() - _T0, 1)
    results["machine"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: median(r[key] for r in runs) for key in runs[0]}


def _step(name: str) -> None:
    at = time.monotonic() - _T0
    STEPS.append((round(at, 1), name))
    log.warning("[%6.1fs] %s", at, name)


_T0 = time.monotonic()
STEPS: list[tuple[float, str]] = []  # (seconds since start, step) as logged: the report's run-time table
LAST = Path(tempfile.gettempdir()) / "schedcore-bench-last.json"


def run(mode: str) -> dict[str, Any]:
    cfg = MODES[mode]
    results: dict[str, Any] = {
        "mode": mode,
        "config": cfg,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": versions(),
    }
    with private_server() as server:
        # rq-scheduler at its default 60 s interval spends most of a minute asleep: it runs in
        # the background (on its own database) while everything else runs, and is waited for last.
        background: dict[str, Any] = {"pass_at": time.monotonic() + 61.0, "waited_s": 0.0}

        def ready() -> None:  # its first pass is now; the one that finds the stream due, 60 s later
            background["pass_at"] = time.monotonic() + 60.0

        def default_interval() -> None:
            try:
                background["result"] = S.lateness_rqs(
                    server, cfg["late_default_rate"], cfg["late_seconds"], 60, db=S.DB_LATE_DEFAULT, on_ready=ready
                )
            except Exception as exc:  # reported, not fatal
                background["error"] = f"{type(exc).__name__}: {exc}"

        thread = threading.Thread(target=default_interval, daemon=True)

        def quiet(seconds: float) -> None:
            """Before a timed part of about ``seconds``: if the background run's pass could fall
            into it, wait until that run is over (a second or two of rq-scheduler's CPU)."""
            if threading.current_thread() is thread or not thread.is_alive():
                return
            if time.monotonic() + seconds < background["pass_at"] - 1.0:
                return
            started = time.monotonic()
            log.warning("[%6.1fs]   (waiting for the default-interval run to hand over its jobs)", started - _T0)
            thread.join()
            background["waited_s"] += time.monotonic() - started

        _step("lateness: rq-scheduler (default 60 s interval) in the background")
        thread.start()
        S.set_quiet_hook(quiet)
        try:
            _scenarios(server, cfg, results)
        finally:
            S.set_quiet_hook(None)
            S.reap()
        _step("lateness: waiting for the default-interval run")
        thread.join()
        results["lateness"][S.RQS] = background.get("result") or {"error": background.get("error", "did not finish")}
        results["background_wait_s"] = round(background["waited_s"], 1)
    results["elapsed_s"] = round(time.monotonic() - _T0, 1)
    results["steps"] = list(STEPS)
    return results


def _scenarios(server: Any, cfg: dict[str, Any], results: dict[str, Any]) -> None:
    """Everything but the background run, in order (lateness first: the machine is quietest)."""
    late: dict[str, Any] = {}
    results["lateness"] = late
    # each lateness run lets its scheduler stop while the next one starts its processes
    _step("lateness: schedcore")
    late[S.SC] = S.lateness_sc(server, cfg["late_rate"], cfg["late_seconds"], stop_later=True)
    _step("lateness: rq enqueue_at")
    late[S.RQ] = S.lateness_rq(server, cfg["late_rate"], cfg["late_seconds"], stop_later=True)
    _step("lateness: rq-scheduler -i 1")
    late[S.RQS1] = S.lateness_rqs(server, cfg["late_rate"], cfg["late_seconds"], 1, stop_later=True)

    _step("add (and memory, on the first repetition)")
    memory: dict[str, float] = {}
    results["add"] = _medians([S.add(server, cfg["add_n"], memory if r == 0 else None) for r in range(cfg["reps"])])
    results["memory"] = memory
    _step("dispatch")
    results["dispatch"] = _medians([S.dispatch(server, cfg["dispatch_due"]) for _ in range(cfg["dispatch_reps"])])

    stored = S.Stored(server)
    scale: dict[str, dict[str, float]] = {}
    for size in cfg["scale_sizes"]:
        _step(f"scale: {size} stored")
        runs = S.scale(server, stored, size, cfg["scale_due"], cfg["reps"], peers=size <= cfg["scale_peers_max"])
        scale[str(size)] = {system: median(values) for system, values in runs.items()}
    results["scale"] = scale
    _step("idle (on the schedules stored for scale)")
    idle = S.idle(server, stored, cfg["idle_stored"], cfg["idle_peer_stored"], cfg["idle_window"])
    results["idle"], results["idle_stored"] = idle["cpu"], idle["stored"]
    stored.close()

    scale_out: dict[str, Any] = {}
    for procs in cfg["scaleout_procs"]:
        _step(f"scale-out: {procs} processes")
        scale_out[str(procs)] = S.scale_out(server, cfg["scaleout_due"], procs)
    results["scale_out"] = scale_out
    _step("ceiling: redis-benchmark")
    results["ceiling"] = S.ceiling(server, cfg["ceiling_requests"], cfg.get("ceiling_requests_p1"))
    _step("burst fixed cost")
    results["burst"] = S.burst_fixed_cost(server, cfg["burst_reps"])


def run_burst(mode: str) -> dict[str, Any]:
    """Only the burst fixed cost (``--only burst``): its own JSON file and its section of the report."""
    cfg = MODES[mode]
    results: dict[str, Any] = {
        "mode": mode,
        "config": {"burst_reps": cfg["burst_reps"]},
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": versions(),
    }
    with private_server() as server:
        _step("burst fixed cost")
        results["burst"] = S.burst_fixed_cost(server, cfg["burst_reps"])
    results["machine"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _machine() -> dict[str, Any]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as info:
            lines = info.read().splitlines()
        for line in lines:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_at_start": [round(x, 2) for x in load],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, about two minutes")
    parser.add_argument("--no-report", action="store_true", help="only write the JSON file")
    parser.add_argument(
        "--report-only", action="store_true", help=f"rewrite the report from the last run's {LAST.name} (no run)"
    )
    parser.add_argument(
        "--only",
        choices=["scale", "sqlite", "burst"],
        help="run one scenario into bench/results-<name>-<mode>.json (burst: its report section too)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for name in ("rq", "rq_scheduler", "rq.scheduler", "schedcore"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.simplefilter("ignore")  # rq-scheduler's crontab FutureWarning
    if args.only:
        mode = "quick" if args.quick else "full"
        only = ROOT / "bench" / f"results-{args.only}-{mode}.json"
        if args.only == "sqlite":
            from bench.sqlite import run_sqlite

            result = run_sqlite(mode, _machine(), versions())
        else:
            result = run_scale(mode) if args.only == "scale" else run_burst(mode)
        only.write_text(json.dumps(result, indent=2) + "\n")
        log.warning("wrote %s", only.relative_to(ROOT))
        if args.only == "burst" and not args.no_report:
            from bench.report import write_burst_section

            log.warning("wrote %s", write_burst_section(result).relative_to(ROOT))
        return 0
    if args.report_only:
        results = json.loads(LAST.read_text())
    else:
        results = run("quick" if args.quick else "full")
        results["machine"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
        LAST.write_text(json.dumps(results))  # with the lateness samples, for --report-only
    out = ROOT / "bench" / "results.json"
    out.write_text(json.dumps(_without_samples(results), indent=2) + "\n")
    log.warning("wrote %s", out.relative_to(ROOT))
    if not args.no_report:
        from bench.report import write_report

        for path in write_report(results):
            log.warning("wrote %s", path.relative_to(ROOT))
    return 0


def _without_samples(results: dict[str, Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(results))
    for entry in copy.get("lateness", {}).values():
        entry.pop("samples", None)
    return copy
