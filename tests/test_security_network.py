"""The network side of the security and fault suite, against real redis-servers started here.

Threat model (docs/operations.md): someone who can reach the network or read the process
table must not learn the Redis password, hang a scheduler or CLI process, or talk to
Redis in the clear when TLS is asked for. Each test starts its own server (unix socket,
or TCP on a free loopback port) and never touches 127.0.0.1:6379.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue, Worker
from test_rq_support import wait_for, worker_env

from schedcore.exceptions import StoreUnavailable
from schedcore.testing.redis_server import RedisServer, redis_server, require_redis_server
from schedcore_redis import RedisStore
from schedcore_rq import WorkerPool

PASSWORD = "s3cret-Pa55word-for-the-test"


@pytest.fixture
def password_server() -> Iterator[RedisServer]:
    """A private redis-server with ``requirepass``."""
    server = RedisServer(require_redis_server(), password=PASSWORD)
    try:
        server.start()
        yield server
    finally:
        server.close()


def free_port() -> int:
    """A TCP port free on loopback now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def hung_listener() -> Iterator[int]:
    """A loopback TCP port that accepts connections and never answers (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)  # kept open and silent

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        server.close()
        for conn in held:
            conn.close()


@pytest.fixture
def plain_tcp_server() -> Iterator[RedisServer]:
    """A private redis-server that also listens, without TLS, on a loopback TCP port."""
    port = free_port()
    server = RedisServer(require_redis_server(), extra_args=("--port", str(port), "--bind", "127.0.0.1"))
    server.tcp_port = port  # type: ignore[attr-defined]
    try:
        server.start()
        yield server
    finally:
        server.close()


def schedcore_cli(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the real ``schedcore`` command line; its result and how long it took."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDCORE_") or "PROMETHEUS" in k}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "schedcore.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    return result, time.monotonic() - started


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line a failed command printed (and nothing else: no traceback)."""
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _proc(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


# -- secrets: the password never reaches a command line ------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_supervised_workers_get_the_password_through_their_environment_only(password_server: RedisServer) -> None:
    url = password_server.url
    conn = redis.Redis.from_url(url)
    pool = WorkerPool(url, ["default"], 2, worker_class="rq.worker.SimpleWorker", env=worker_env(), grace=5)
    assert PASSWORD not in " ".join(pool.command(0))
    pool.start()
    try:
        wait_for(lambda: len(Worker.all(connection=conn)) == 2, what="two workers to register")
        pids = pool.pids()
        assert len(pids) == 2
        for pid in pids:
            assert PASSWORD.encode() not in _proc(pid, "cmdline")
            # The URL reaches the worker through its environment, private to its user (mode 0400).
            assert f"RQ_REDIS_URL={url}".encode() in _proc(pid, "environ").split(b"\0")
            assert os.stat(f"/proc/{pid}/environ").st_mode & 0o077 == 0
        # And the workers are connected with it: they run jobs.
        Queue("default", connection=conn).enqueue("test_rq_tasks.incr", url, "n:secret")
        wait_for(lambda: conn.get("n:secret") == b"1", what="the job to run on the pool")
    finally:
        pool.stop()
        conn.close()


# -- hangs: a server that never answers is an error in seconds -----------------------------


@pytest.mark.parametrize("command", [["list"], ["show", "x"], ["status"]])
def test_cli_command_against_a_listener_that_never_answers_fails_in_seconds(
    hung_listener: int, command: list[str]
) -> None:
    result, took = schedcore_cli(*command, "--store", "redis", "-S", f"url=redis://127.0.0.1:{hung_listener}/0")
    line = one_error_line(result)
    assert f"127.0.0.1:{hung_listener}" in line and "Timeout" in line
    assert took < 15, took  # it was 2 minutes (30 s socket timeout x retries)


def test_run_against_a_listener_that_never_answers_fails_in_seconds(hung_listener: int) -> None:
    url = f"redis://user:{PASSWORD}@127.0.0.1:{hung_listener}"
    result, took = schedcore_cli("--log-level", "debug", "run", "--burst", "--store", "redis", "--redis-url", url)
    line = one_error_line(result)
    assert "Timeout" in line and "user:***@" in line
    assert PASSWORD not in result.stderr + result.stdout  # no log line or error shows it
    assert took < 15, took


def test_a_long_running_store_checks_the_server_with_short_timeouts_first(hung_listener: int) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="Timeout"):
        RedisStore.from_url(f"redis://127.0.0.1:{hung_listener}/0")
    assert time.monotonic() - started < 15


def test_a_long_running_store_keeps_long_timeouts_and_health_checks(plain_tcp_server: RedisServer) -> None:
    port = plain_tcp_server.tcp_port  # type: ignore[attr-defined]
    store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        kwargs = store._client.connection_pool.connection_kwargs  # type: ignore[union-attr]
        assert kwargs["socket_timeout"] == 30.0 and kwargs["socket_keepalive"] is True
        assert kwargs["health_check_interval"] == 30
    finally:
        store.close()


def test_rediss_at_a_plain_port_fails_in_seconds_with_a_hint(plain_tcp_server: RedisServer) -> None:
    port = plain_tcp_server.tcp_port  # type: ignore[attr-defined]
    result, took = schedcore_cli("list", "--store", "redis", "--redis-url", f"rediss://127.0.0.1:{port}/0")
    line = one_error_line(result)
    assert "TLS port" in line, line
    assert took < 15, took


# -- TLS with a private CA -------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: its certificate and key."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    return directory / "ca.crt", directory / "ca.key"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, int, Path, Path]]:
    """A redis-server with TLS only on a loopback port, its certificate signed by a private CA.

    Yields the server, its TLS port, the right CA certificate and another CA's certificate.
    """
    if not any(Path(d, "openssl").exists() for d in os.environ.get("PATH", "").split(os.pathsep)):
        if os.environ.get("SCHEDCORE_REQUIRE_REDIS") == "1":  # CI installs it: never skipped there
            pytest.fail("the openssl command is needed to make the test certificates (SCHEDCORE_REQUIRE_REDIS=1)")
        pytest.skip("the openssl command is needed to make the test certificates")
    base = tmp_path_factory.mktemp("tls")
    ca_crt, _ = make_ca(base / "ca", "schedcore test CA")
    other_crt, _ = make_ca(base / "other", "some other CA")
    server_dir = base / "ca"
    _openssl(
        "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
        cwd=server_dir,
    )  # fmt: skip
    (server_dir / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf",
        cwd=server_dir,
    )  # fmt: skip
    port = free_port()
    server = RedisServer(
        require_redis_server(),
        extra_args=(
            "--bind", "127.0.0.1",
            "--tls-port", str(port),
            "--tls-cert-file", str(server_dir / "server.crt"),
            "--tls-key-file", str(server_dir / "server.key"),
            "--tls-ca-cert-file", str(ca_crt),
            "--tls-auth-clients", "no",
        ),
    )  # fmt: skip
    try:
        server.start()
        yield server, port, ca_crt, other_crt
    finally:
        server.close()


def test_store_over_tls_with_a_private_ca(tls_server: tuple[RedisServer, int, Path, Path]) -> None:
    from schedcore import Interval, Schedule
    from schedcore.model import Conflict

    _, port, ca, _ = tls_server
    store = RedisStore.from_url(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}", namespace="tls")
    try:
        store.add(Schedule(id="over-tls", task="schedcore.demo:hello", trigger=Interval(60)), None, Conflict.REPLACE)
        stored = store.get("over-tls")
        assert stored is not None and stored.schedule.task == "schedcore.demo:hello"
    finally:
        store.close()


def test_cli_over_tls_with_a_private_ca(tls_server: tuple[RedisServer, int, Path, Path]) -> None:
    _, port, ca, _ = tls_server
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    result, _ = schedcore_cli(
        "add", "--store", "redis", "--redis-url", url, "cli-tls", "schedcore.demo:hello", "--every", "60"
    )
    assert result.returncode == 0, result.stderr
    result, _ = schedcore_cli("list", "--store", "redis", "--redis-url", url)
    assert result.returncode == 0 and "cli-tls" in result.stdout, result.stderr


def test_a_certificate_from_another_ca_is_refused_in_one_line(tls_server: tuple[RedisServer, int, Path, Path]) -> None:
    _, port, _, other = tls_server
    result, took = schedcore_cli(
        "list", "--store", "redis", "--redis-url", f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={other}"
    )
    line = one_error_line(result)
    assert "certificate verify failed" in line, line
    assert took < 15, took
    with pytest.raises(StoreUnavailable, match="certificate verify failed"):
        RedisStore.from_url(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={other}")


def test_plain_redis_at_the_tls_port_fails_in_seconds(tls_server: tuple[RedisServer, int, Path, Path]) -> None:
    _, port, _, _ = tls_server
    result, took = schedcore_cli("list", "--store", "redis", "--redis-url", f"redis://127.0.0.1:{port}/0")
    one_error_line(result)
    assert took < 15, took


# -- an ACL user limited to the documented key patterns ----------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs"


def documented_acl(namespace: str) -> tuple[str, ...]:
    """The rules of the ``ACL SETUSER`` line in docs/operations.md, for ``namespace``:
    the test runs what the documentation says, so the two cannot drift apart."""
    text = (DOCS / "operations.md").read_text()
    (line,) = [line for line in text.splitlines() if line.startswith("ACL SETUSER scheduler ")]
    rules = line.split()[3:]
    return tuple(r.replace("{schedcore:prod}", f"{{schedcore:{namespace}}}") for r in rules if not r.startswith(">"))


ACL_RULES = documented_acl("acl")


@pytest.fixture(scope="module")
def acl_server() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def acl_user(server: RedisServer, name: str, *rules: str) -> str:
    """Create ACL user ``name`` with ``rules``; its ``unix://`` URL."""
    admin = redis.Redis.from_url(server.url)
    try:
        admin.execute_command("ACL", "SETUSER", name, "reset", f">{name}-pw", *rules)
    finally:
        admin.close()
    return f"unix://{name}:{name}-pw@{server.socket}"


@pytest.mark.slow
def test_scheduler_rq_executor_and_worker_work_with_the_documented_acl(acl_server: RedisServer) -> None:
    from test_rq_support import run_burst_worker

    from schedcore import FakeClock, Interval, Schedule
    from schedcore.records import RunStatus
    from schedcore.scheduler import Scheduler
    from schedcore_rq import RQExecutor

    url = acl_user(acl_server, "sched", *ACL_RULES)
    conn = redis.Redis.from_url(url)
    store = RedisStore.from_url(url, namespace="acl")
    executor = RQExecutor(conn, namespace="acl", heartbeat_interval=0.3, reconcile_interval=0.3, poll_interval=0.1)
    scheduler = Scheduler(store=store, executor=executor, clock=FakeClock(), heartbeat=None)
    counter = "{schedcore:acl}:test-count"  # inside the user's keys: the task runs as that user too
    try:
        scheduler.add(Schedule(id="acl", task="test_rq_tasks:incr", trigger=Interval(3600), args=(url, counter)))
        scheduler.trigger_now("acl")
        scheduler.tick()
        run_burst_worker(url, "rq.worker.SimpleWorker")
        deadline = time.monotonic() + 30
        while not scheduler.history("acl") or any(s.running for s in scheduler.list()):
            assert time.monotonic() < deadline, scheduler.history("acl")
            executor.reconcile()
            executor.process_outcomes()
            scheduler.tick()
            time.sleep(0.05)
        runs = scheduler.history("acl")
        assert runs and all(r.status is RunStatus.SUCCEEDED for r in runs), runs
        assert conn.get(counter) == str(len(runs)).encode()  # each ran once, as the ACL user
    finally:
        executor.shutdown(wait=False)
        store.close()
        conn.close()


def test_a_missing_permission_is_one_clear_line(acl_server: RedisServer) -> None:
    no_scripts = acl_user(acl_server, "noscripts", *ACL_RULES, "-@scripting")
    result, took = schedcore_cli(
        "add", "--store", "redis", "--redis-url", no_scripts, "-S", "namespace=acl", "x", "m:f", "--every", "60"
    )
    line = one_error_line(result)
    assert "lacks a permission" in line and "ACL" in line, line
    assert took < 15


def test_keys_outside_the_allowed_pattern_are_one_clear_line(acl_server: RedisServer) -> None:
    url = acl_user(acl_server, "other", *ACL_RULES)
    result, _ = schedcore_cli("list", "--store", "redis", "--redis-url", url, "-S", "namespace=not-mine")
    line = one_error_line(result)
    assert "lacks a permission" in line and "ACL" in line, line


def test_run_burst_without_a_permission_exits_non_zero(acl_server: RedisServer) -> None:
    url = acl_user(acl_server, "burst", *ACL_RULES, "-@scripting")
    result, took = schedcore_cli("run", "--burst", "--store", "redis", "--redis-url", url, "-S", "namespace=acl")
    assert result.returncode != 0, result.stderr
    line = one_error_line(result)  # refused at start: not a scheduler failing every tick
    assert "lacks a permission" in line and "ACL" in line, line
    assert took < 30
