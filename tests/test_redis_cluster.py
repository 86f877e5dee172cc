"""RedisStore on a real Redis Cluster: a private 3-master cluster started by the test itself.

Three ``redis-server`` processes on free ports of 127.0.0.1 (cluster mode, no persistence,
files in a temporary directory), joined with ``redis-cli --cluster create``; all are killed
at the end. Nothing else is ever touched. Skips loudly when redis-server is missing,
unless ``SCHEDCORE_REQUIRE_REDIS=1`` (then fails).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import redis
from hypothesis import HealthCheck, settings
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis_helpers import fresh_namespace

from schedcore import FakeClock, Interval, Schedule, Scheduler
from schedcore.plugins import get_plugin_manager
from schedcore.testing import StoreConformance
from schedcore.testing.executors import CallbackExecutor, Result
from schedcore.testing.factories import NOOP, T0, at
from schedcore.testing.redis_server import require_redis_server
from schedcore_redis import RedisStore

pytestmark = [pytest.mark.redis, pytest.mark.slow]

MASTERS = 3


def _free_port() -> int:
    # The cluster bus listens on port + 10000: that must be free too.
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        if port != 6379:
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _cluster_ok(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
    try:
        info = client.execute_command("CLUSTER INFO")  # parsed into a dict by redis-py
        if isinstance(info, bytes | str):
            return "cluster_state:ok" in (info.decode() if isinstance(info, bytes) else info)
        return bool(dict(info).get("cluster_state") == "ok")
    except redis.RedisError:
        return False
    finally:
        client.close()


def _ping(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    """``redis://127.0.0.1:<port>`` of one node of a private 3-master cluster."""
    executable = require_redis_server()
    cli = shutil.which("redis-cli", path=str(Path(executable).parent)) or shutil.which("redis-cli")
    if cli is None:
        missing = "REDIS-CLI NOT FOUND: the Redis Cluster tests need it to create the cluster"
        if os.environ.get("SCHEDCORE_REQUIRE_REDIS") == "1":
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    directory = Path(tempfile.mkdtemp(prefix="schedcore-cluster-"))
    processes: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    try:
        for n in range(MASTERS):
            port = _free_port()
            while port in ports:
                port = _free_port()
            ports.append(port)
            args = [
                executable,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(directory / f"nodes-{n}.conf"),
                "--cluster-node-timeout", "5000",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(directory),
                "--daemonize", "no",
                "--logfile", str(directory / f"redis-{n}.log"),
            ]  # fmt: skip
            processes.append(
                subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        deadline = time.monotonic() + 15
        while not all(_ping(p) for p in ports):
            if any(proc.poll() is not None for proc in processes) or time.monotonic() > deadline:
                logs = "".join(
                    (directory / f"redis-{n}.log").read_text(errors="replace")[-500:] for n in range(MASTERS)
                )
                raise RuntimeError(f"cluster nodes did not start: {logs}")
            time.sleep(0.05)
        created = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout!r} {created.stderr!r}")
        deadline = time.monotonic() + 30
        while not all(_cluster_ok(p) for p in ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok within 30 s")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{ports[0]}"
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in processes:
            proc.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def cluster_store(url: str, namespace: str | None = None, **options: object) -> RedisStore:
    store = RedisStore.from_url(url, namespace=namespace or fresh_namespace(), cluster=True, **options)  # type: ignore[arg-type]
    assert isinstance(store._client, RedisCluster)
    return store


class TestRedisStoreOnCluster(StoreConformance):
    """The shared conformance suite on a RedisCluster client (a fresh namespace per test)."""

    history_limit = 50
    stateful_settings: ClassVar[settings] = settings(
        max_examples=10,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )

    @pytest.fixture
    def store(self, cluster_url: str) -> Iterator[RedisStore]:
        store = cluster_store(cluster_url, history_limit=self.history_limit)
        yield store
        store.close()


def test_the_cluster_has_three_masters_and_the_client_takes_a_redis_cluster(cluster_url: str) -> None:
    client = RedisCluster.from_url(cluster_url)
    try:
        assert len(client.get_primaries()) == MASTERS
        store = RedisStore(client, namespace=fresh_namespace())  # an existing RedisCluster client
        store.check_server()
        assert store.next_due() is None
        store.close()
        assert client.ping()  # the store does not close a client it did not create
    finally:
        client.disconnect_connection_pools()
        client.close()


def test_a_scheduler_dispatches_schedules_stored_on_the_cluster(cluster_url: str) -> None:
    clock = FakeClock(T0)
    store = cluster_store(cluster_url)
    executor = CallbackExecutor(lambda run: Result(duration=1), clock=clock)
    scheduler = Scheduler(store, executor, clock=clock, plugins=get_plugin_manager(entry_points=False))
    try:
        for sid in ("a", "b", "c"):
            scheduler.add(Schedule(id=sid, task=NOOP, trigger=Interval(60, start=T0)))
        assert scheduler.tick() == at(60)
        clock.set(at(60))
        scheduler.tick()
        clock.set(at(120))
        scheduler.tick()
        clock.set(at(121))
        scheduler.tick()
        runs = [(r.schedule_id, r.nominal) for r in executor.executed]
        assert len(runs) == len(set(runs)) == 9
        for sid in ("a", "b", "c"):
            assert sorted(r.nominal for r in store.history(sid)) == [T0, at(60), at(120)]
    finally:
        store.close()


def test_two_namespaces_hash_to_different_slots_and_each_works(cluster_url: str) -> None:
    client = RedisCluster.from_url(cluster_url)
    try:  # two namespaces whose slots are served by different masters
        by_node: dict[str, str] = {}
        for n in range(100):
            ns = f"{fresh_namespace()}-{n}"
            by_node.setdefault(client.get_node_from_key(f"{{schedcore:{ns}}}").name, ns)
        assert len(by_node) == MASTERS
    finally:
        client.disconnect_connection_pools()
        client.close()
    names = list(by_node.values())[:2]
    stores = [cluster_store(cluster_url, ns) for ns in names]
    try:
        assert len({key_slot(s.keys.prefix.encode()) for s in stores}) == 2
        for n, store in enumerate(stores):
            clock = FakeClock(T0)
            executor = CallbackExecutor(lambda run: Result(duration=1), clock=clock)
            scheduler = Scheduler(store, executor, clock=clock, plugins=get_plugin_manager(entry_points=False))
            scheduler.add(Schedule(id=f"job{n}", task=NOOP, trigger=Interval(60, start=T0)))
            scheduler.tick()
            assert [r.schedule_id for r in executor.executed] == [f"job{n}"]
            assert [s.schedule.id for s in store.list_schedules()] == [f"job{n}"]
    finally:
        for store in stores:
            store.close()
