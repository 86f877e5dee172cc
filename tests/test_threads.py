"""The skeleton of the background threads (schedcore._threads): start, stop, join."""

from __future__ import annotations

import threading

from schedcore._threads import StoppableThread


class Waker(StoppableThread):
    def __init__(self, stop_itself_after: int | None = None) -> None:
        super().__init__("test-waker")
        self.wakes = 0
        self.woke = threading.Event()
        self.stop_itself_after = stop_itself_after

    def _run(self) -> None:
        while not self._stopped.wait(0.001):
            self.wakes += 1
            self.woke.set()
            if self.wakes == self.stop_itself_after:
                self.stop()  # from the thread itself: must not join itself


def test_stop_ends_the_thread_and_is_idempotent() -> None:
    waker = Waker()
    assert waker._thread.daemon
    waker.start()
    assert waker.woke.wait(10)
    waker.stop()
    assert not waker._thread.is_alive()
    wakes = waker.wakes
    waker.stop()
    assert waker.wakes == wakes


def test_stop_before_start_and_from_the_thread_itself() -> None:
    Waker().stop()  # never started: nothing to join
    waker = Waker(stop_itself_after=3)
    waker.start()
    waker._thread.join(10)
    assert not waker._thread.is_alive()
    assert waker.wakes == 3
