"""Send Redis commands now, read their replies later.

The round trip of the optional ``*_nowait`` methods (``RedisStore.commit_nowait``, the RQ
executor's ``submit_nowait``; see :mod:`schedcore.protocols`): the request leaves at once,
the server runs it while the engine plans its next batch in the same thread, and the reply
is read when the engine needs it. No second thread, so nothing waits for the interpreter
lock while the engine computes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis.exceptions as rex

__all__ = ["send_now"]


def _checkout(pool: Any) -> Any:
    try:
        return pool.get_connection()
    except TypeError:  # redis-py before 5.3 wants the command name
        return pool.get_connection("EVALSHA")


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
