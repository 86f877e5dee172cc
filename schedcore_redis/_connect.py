"""The connection of :class:`~schedcore_redis.RedisStore`: building a client from a URL, the
first contact with the server (reachable, AUTH, ACL), its configuration warnings, and closing."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import redis
import redis.exceptions as rex
from redis.cluster import RedisCluster

from schedcore.exceptions import SchedcoreError, StoreError, ValidationError
from schedcore_redis._codec import text
from schedcore_redis._core import _StoreCore, log
from schedcore_redis._errors import translate
from schedcore_redis._keys import check_namespace
from schedcore_redis._timeouts import COMMAND_TIMEOUT, command_options, service_options
from schedcore_redis.connection import redact_url

if TYPE_CHECKING:
    from typing import Self

_URL_SCHEMES = ("redis", "rediss", "unix")


_CLUSTER_SCHEMES = ("redis", "rediss")


_PROBE = "return redis.call('PEXPIRE', KEYS[1], 1)"  # see check_server


def _slow(options: Mapping[str, Any]) -> bool:
    """Whether the client may wait longer for a reply than a one-shot command would."""
    timeout = options.get("socket_timeout")
    return timeout is None or float(timeout) > COMMAND_TIMEOUT


def _probe(url: str, options: Mapping[str, Any], shown: str) -> None:
    """PING ``url`` once with ``options``; StoreUnavailable (one line, naming the server) if that fails."""
    client = redis.Redis.from_url(url, **{k: v for k, v in options.items() if k != "health_check_interval"})
    try:
        client.ping()
    except (rex.RedisError, OSError) as exc:
        raise _unreachable(exc, shown) from None
    finally:
        client.close()


def _unreachable(exc: BaseException, where: str) -> SchedcoreError:
    """The one-line error of a failed first contact with ``where`` (a redacted URL)."""
    err = translate(exc, f"connecting to {where}")
    message = str(err)
    if where.lower().startswith("rediss:") and isinstance(exc, rex.TimeoutError | rex.ConnectionError):
        # The usual cause: a plain (non-TLS) port, which never completes the TLS handshake.
        message += " (rediss:// needs the server's TLS port, e.g. redis-server --tls-port)"
    return type(err)(message)


class _Connection(_StoreCore):
    """Connects a store to its server (``from_url``, ``check_server``) and closes it."""

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "default",
        history_limit: int = 50,
        history_ttl: float | timedelta | None = None,
        check: bool = True,
        cluster: bool = False,
        **client_options: Any,
    ) -> Self:
        """A store on the server at ``url``: ``redis://[user:password@]host[:port][/db]``,
        ``rediss://...`` (TLS) or ``unix:///path/to/socket[?db=N]``.

        With ``cluster=True`` the URL names any one node of a Redis Cluster
        (``redis://[user:password@]host:port`` or ``rediss://...``; no ``unix://``, no
        database other than 0) and the store uses a :class:`redis.cluster.RedisCluster`,
        which discovers the other nodes; ``client_options`` then go to
        :meth:`redis.cluster.RedisCluster.from_url`.

        An unparsable URL or invalid namespace raises ValidationError; with ``check`` (the
        default) the server is contacted at once (:meth:`check_server`), so that an
        unreachable server or a refused AUTH is a one-line StoreUnavailable here rather
        than an error later. ``client_options`` go to :meth:`redis.Redis.from_url`.
        """
        shown = redact_url(url)
        check_namespace(namespace)
        if not isinstance(url, str) or not url.strip():
            raise ValidationError("url", url, "expected a redis://, rediss:// or unix:// URL")
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if cluster and scheme not in _CLUSTER_SCHEMES:
                raise ValueError("a cluster takes a redis:// or rediss:// URL")
            if scheme not in _URL_SCHEMES:
                raise ValueError("expected a redis://, rediss:// or unix:// URL")
            if scheme != "unix" and not parts.hostname:
                raise ValueError("no host given")
            if scheme == "unix" and not parts.path:
                raise ValueError("no socket path given")
            _ = parts.port  # raises ValueError for a bad port
            db = parts.path.strip("/") if scheme != "unix" else ""
            for key, value in parse_qsl(parts.query):
                if key == "db":
                    db = value
            if db and not db.isdigit():
                raise ValueError(f"database {db!r} is not a number")
            if cluster and db and int(db) != 0:
                raise ValueError("a cluster has only database 0")
            options = service_options(url)
            options.update(client_options)
            if check and not cluster and _slow(options):
                # First contact with the short timeouts of a command: a server that
                # never answers (or rediss:// at a plain port) fails in seconds, not minutes.
                _probe(url, {**options, **command_options()}, shown)
            client: redis.Redis | RedisCluster = (
                RedisCluster.from_url(url, **options) if cluster else redis.Redis.from_url(url, **options)
            )
        except ValidationError:
            raise
        except (ValueError, TypeError) as exc:
            raise ValidationError("url", shown, str(exc) or "cannot be parsed") from None
        store = cls(client, namespace=namespace, history_limit=history_limit, history_ttl=history_ttl)
        store._owns_client = True
        store._url = shown
        if check:
            try:
                store.check_server()
            except BaseException:
                store.close()
                raise
        return store

    _url: str | None = None

    def check_server(self) -> None:
        """Contact the server; warn when its configuration can silently lose schedules.

        Raises StoreUnavailable (one line, naming the server) when it cannot be reached or
        refuses AUTH, and StoreError when an ACL user may not run scripts on the
        namespace's keys (one no-op script call checks it). Logs a warning when
        ``maxmemory-policy`` is not ``noeviction`` (keys may be evicted) or when neither
        RDB snapshots nor AOF are enabled (a restart loses everything). Servers that
        refuse CONFIG (managed services, ACLs) are not checked.
        """
        where = self._url or repr(self._client)
        try:
            self._client.ping()
        except (rex.RedisError, OSError) as exc:
            raise _unreachable(exc, where) from None
        try:
            # A write by script on a key of the namespace (a no-op: the key never exists):
            # an ACL user without scripts or without the namespace's keys is one clear
            # line now, not a scheduler that starts and then fails every tick.
            self._client.eval(_PROBE, 1, self.keys.prefix + "probe")
        except rex.NoPermissionError as exc:
            raise StoreError(
                f"redis at {where}: the user lacks a permission schedcore needs ({exc}); "
                "see the ACL section of docs/operations.md"
            ) from None
        except (rex.RedisError, OSError) as exc:
            raise translate(exc, f"checking {where}") from None
        for warning in self.warnings():
            log.warning("%s", warning)

    def warnings(self) -> list[str]:
        """What in the server's configuration can silently lose schedules, one sentence each:
        a ``maxmemory-policy`` other than ``noeviction`` (keys may be evicted) and persistence
        off (neither RDB snapshots nor AOF: a restart loses everything). Empty when the server
        refuses CONFIG (managed services, ACLs) or cannot be reached: nothing can be said then.
        """
        where = self._url or repr(self._client)
        try:
            policy = self._config("maxmemory-policy")
            save = self._config("save")
            appendonly = self._config("appendonly")
        except (rex.RedisError, OSError):
            return []  # CONFIG refused or unknown: nothing to check
        found = []
        if policy is not None and policy != "noeviction":
            found.append(
                f"redis at {where} has maxmemory-policy={policy}: schedules may be evicted under memory "
                "pressure; use maxmemory-policy noeviction"
            )
        if save is not None and appendonly is not None and not save.strip() and appendonly == "no":
            found.append(
                f"redis at {where} has persistence off (no RDB snapshots, appendonly no): "
                "a restart loses every schedule"
            )
        return found

    def _node_client(self) -> redis.Redis:
        """The client itself, or on a cluster the client of the node serving the namespace."""
        if isinstance(self._client, RedisCluster):
            node = self._client.get_node_from_key(self.keys.prefix)  # type: ignore[no-untyped-call]
            return self._client.get_redis_connection(node)
        return self._client

    def _config(self, name: str) -> str | None:
        reply = self._node_client().config_get(name)
        for key, value in dict(reply).items():
            if text(key) == name:
                return text(value)
        return None

    def close(self) -> None:
        """Stop the watchers and, when the store made its own client (``from_url``), close it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watchers, self._watchers = self._watchers, []
        for stop in watchers:
            stop()
        if self._owns_client:
            with contextlib.suppress(rex.RedisError, OSError):
                if isinstance(self._client, RedisCluster):  # its close() leaves the nodes' pools open
                    self._client.disconnect_connection_pools()  # type: ignore[no-untyped-call]
                self._client.close()

    def __repr__(self) -> str:
        return f"<RedisStore namespace={self.namespace!r} {self._url or self._client!r}>"
