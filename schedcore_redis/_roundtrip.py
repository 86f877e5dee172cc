"""Send Redis commands now, read their replies later.

The round trip of the ``*_nowait`` methods (``RedisStore.claim_due_nowait``, the RQ
executor's ``submit_nowait``; see :mod:`schedcore.protocols`): the request leaves at once,
the server runs it while the engine goes on with its work in the same thread, and the reply
is read when the engine needs it. No second thread, so nothing waits for the interpreter
lock while the engine computes.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

import redis.exceptions as rex

__all__ = ["send_now"]


#: The socket send buffer a connection gets before an early send (bytes, at least). A
#: batch's hand-off is ~100 KB; it is sent while the server still runs the claim sent just
#: before it, and a unix socket's default buffer (~200 KB of accounted memory) holds less
#: than that: the send then blocks until the server is free again -- the very wait the early
#: send exists to avoid (measured: 18 µs per run of blocked sends, 1 µs with the larger buffer).
SEND_BUFFER = 1 << 22


def _checkout(pool: Any) -> Any:
    try:
        connection = pool.get_connection()
    except TypeError:  # redis-py before 5.3 wants the command name
        connection = pool.get_connection("EVALSHA")
    sock: Any = getattr(connection, "_sock", None)  # connected by get_connection (redis-py 5 and later)
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < SEND_BUFFER:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    except (AttributeError, OSError):  # no socket (a fake connection), or a platform that refuses
        pass
    return connection


def send_now(client: Any, commands: Sequence[Sequence[Any]]) -> Callable[[], list[Any]] | None:
    """Send ``commands`` (each a command name and its arguments) in one write on a connection
    of ``client``'s pool; return a function that reads their replies in order (an error reply
    as its exception, in its place) and gives the connection back.

    None when the client has no pool to take a connection from (a cluster client, a
    single-connection client): the caller makes its calls the usual way then. A connection
    error raises here or from the returned function; either way the connection is dropped,
    so a reply left unread never reaches the next user of the pool.
    """
    pool = getattr(client, "connection_pool", None)
    if pool is None or getattr(client, "connection", None) is not None:
        return None
    connection = _checkout(pool)
    try:
        connection.send_packed_command(connection.pack_commands(commands))
    except BaseException:
        connection.disconnect()
        pool.release(connection)
        raise

    def read() -> list[Any]:
        try:
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except rex.ResponseError as exc:  # consumed like any reply: the connection stays in step
                    replies.append(exc)
            return replies
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    return read
