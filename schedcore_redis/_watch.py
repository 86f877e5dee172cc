"""``RedisStore.watch``: a pub/sub subscription on the namespace's wake channel, read by a
background thread that reconnects after errors."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import redis.exceptions as rex

from schedcore._time import from_ms
from schedcore.exceptions import StoreError
from schedcore_redis._codec import text
from schedcore_redis._core import log

if TYPE_CHECKING:
    from schedcore_redis._index import _TimeIndex


class _Watcher:
    """One ``watch`` subscription: a daemon thread reading the wake channel."""

    def __init__(self, store: _TimeIndex, callback: Callable[[datetime], None]) -> None:
        self._store = store
        self._callback = callback
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"schedcore-redis-watch-{store.namespace}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(timeout=5.0)  # subscribed (or failed once and retrying in the background)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _call(self, due: datetime) -> None:
        try:
            self._callback(due)
        except Exception:
            log.exception("store watch callback %r failed", self._callback)

    def _run(self) -> None:
        channel = self._store.keys.channel
        backoff = 0.05
        failed = False
        while not self._stopped.is_set():
            pubsub = self._store._client.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(channel)
                while (confirm := pubsub.get_message(timeout=1.0)) is None or confirm.get("type") != "subscribe":
                    if self._stopped.is_set():
                        return
                self._ready.set()
                if failed:
                    log.warning("redis watch on %s reconnected", channel)
                    failed, backoff = False, 0.05
                    due = self._store.next_due()  # notifications may have been missed meanwhile
                    if due is not None:
                        self._call(due)
                while not self._stopped.is_set():
                    message = pubsub.get_message(timeout=0.25)
                    if message is not None and message.get("type") == "message":
                        try:
                            dues = [from_ms(int(part)) for part in text(message["data"]).split(",")]
                        except (ValueError, OverflowError):
                            continue  # not ours
                        for due in dues:
                            self._call(due)
            except (rex.RedisError, OSError, StoreError) as exc:
                self._ready.set()
                if not failed:
                    log.warning("redis watch on %s lost its connection (%s); reconnecting", channel, exc)
                failed = True
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(rex.RedisError, OSError):
                    pubsub.close()
