"""A private ``redis-server`` for tests: started by the test suite, never anyone else's.

The server listens only on a unix socket in a fresh temporary directory (``--port 0``,
no TCP at all), without persistence and in the foreground; it is killed at the end. It
can be stopped and started again on the same socket (with its data, saved on the way
down) for outage tests::

    from schedcore.testing.redis_server import redis_server

    with redis_server() as server:        # pytest.skip when redis-server is missing
        store = RedisStore.from_url(server.url)
        server.stop()                     # SHUTDOWN SAVE: clients now get errors
        server.start()                    # same socket, same data

When ``redis-server`` is not installed the helper calls ``pytest.skip`` with a loud
reason -- unless the environment sets ``SCHEDCORE_REQUIRE_REDIS=1`` (CI does), then
it fails the test instead. Set ``SCHEDCORE_REDIS_SERVER`` to use another executable.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["RedisServer", "find_redis_server", "redis_server", "require_redis_server"]

_MISSING = (
    "REDIS-SERVER NOT FOUND: the tests against a real Redis are SKIPPED. Install it "
    "(apt-get install redis-server) or set SCHEDCORE_REDIS_SERVER; CI sets SCHEDCORE_REQUIRE_REDIS=1 "
    "so that this is an error there."
)


def find_redis_server() -> str | None:
    """The ``redis-server`` executable to use, or None."""
    configured = os.environ.get("SCHEDCORE_REDIS_SERVER")
    if configured:
        return configured if Path(configured).exists() else shutil.which(configured)
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if Path(p).exists()), None
    )


def require_redis_server() -> str:
    """The executable, or ``pytest.skip`` (``pytest.fail`` with SCHEDCORE_REQUIRE_REDIS=1)."""
    import pytest

    found = find_redis_server()
    if found is None:
        if os.environ.get("SCHEDCORE_REQUIRE_REDIS") == "1":
            pytest.fail("SCHEDCORE_REQUIRE_REDIS=1 but " + _MISSING, pytrace=False)
        pytest.skip(_MISSING)
    return found


class RedisServer:
    """One private server process on a unix socket in its own temporary directory."""

    def __init__(self, executable: str, *, extra_args: tuple[str, ...] = (), password: str | None = None) -> None:
        self.executable = executable
        self.extra_args = extra_args
        self.password = password
        self.directory = Path(tempfile.mkdtemp(prefix="schedcore-redis-"))
        self.socket = self.directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``unix://`` URL of the server (database 0), with the password if it has one."""
        if self.password:
            return f"unix://:{self.password}@{self.socket}"
        return f"unix://{self.socket}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start (or start again, with the data saved by :meth:`stop`) and wait for PING."""
        if self.running:
            return
        args = [
            self.executable,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
            *(("--requirepass", self.password) if self.password else ()),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                log = self._log_tail()
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {err or log}")
            if self._ping():
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer PING within {timeout} s: {self._log_tail()}")

    def _client(self, timeout: float) -> Any:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis(
            unix_socket_path=str(self.socket),
            socket_timeout=timeout,
            password=self.password,
            retry=Retry(NoBackoff(), 0),
        )

    def _ping(self) -> bool:
        import redis

        if not self.socket.exists():
            return False
        try:
            client = self._client(1.0)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False

    def _log_tail(self) -> str:
        try:
            return (self.directory / "redis.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down cleanly, saving the data (``SHUTDOWN SAVE``) so that :meth:`start` restores it."""
        import redis

        if not self.running:
            return
        client = self._client(timeout)
        try:
            client.shutdown(save=True)
        except redis.RedisError:
            pass  # the connection drops as the server exits
        finally:
            client.close()
        self._wait(timeout)

    def kill(self) -> None:
        """SIGKILL the server (its data is lost)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self._wait(10.0)

    def _wait(self, timeout: float) -> None:
        assert self.process is not None
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def close(self) -> None:
        """Kill the server and delete its directory."""
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def redis_server(*, extra_args: tuple[str, ...] = ()) -> Iterator[RedisServer]:
    """A started private server, killed and cleaned up on exit (skips when none is installed)."""
    server = RedisServer(require_redis_server(), extra_args=extra_args)
    try:
        server.start()
        yield server
    finally:
        server.close()
