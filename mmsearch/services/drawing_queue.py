"""Drawings run off the search path: on worker threads of their own, behind a bounded queue.

A search never waits for a drawing it did not ask for. A request that asks for a drawing
already queued or running under the same key (a repeated generate-on-miss prompt) waits for
that one instead of drawing it twice; when the queue is full a new drawing is refused at
once (DrawingBusy), as is a request beyond the bound on waiting requests, and a wait for a
drawing has a bound of time (DrawingTimeout)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

T = TypeVar("T")

DRAWING_WORKERS = 1  # drawing is CPU-bound: one at a time leaves the other cores to searches
MAX_WAITING = 4  # drawings queued behind the running ones; more are refused
# Requests waiting for drawings, joiners of a drawing in flight included: each holds a server
# thread, so a crowd repeating one prompt cannot take the threads searches need.
MAX_WAITERS = 16
WAIT_TIMEOUT_S = 600.0  # the longest a request waits for its drawing


class DrawingBusy(RuntimeError):
    """Too many drawings are queued: the request is refused, to be tried again later."""


class DrawingTimeout(TimeoutError):
    """A drawing took longer than the request may wait (it goes on, and is stored when done)."""


class DrawingQueue:
    def __init__(self, workers: int = DRAWING_WORKERS, max_waiting: int = MAX_WAITING, max_waiters: int = MAX_WAITERS):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drawing")
        self._capacity = workers + max_waiting
        self._lock = threading.Lock()
        self._in_flight: dict[Hashable, Future] = {}
        self._max_waiters = max_waiters
        self._waiters = 0

    def submit(self, key: Hashable | None, draw: Callable[[], T]) -> Future:
        """The drawing's future. With a key already queued or running, that drawing's future;
        key None: always a drawing of its own."""
        return self._submit(key, draw)[0]

    def run(self, key: Hashable | None, draw: Callable[[], T], timeout: float = WAIT_TIMEOUT_S) -> T:
        """Submit (or join) a drawing and wait for its result, at most `timeout` seconds."""
        return self.run_shared(key, draw, timeout)[0]

    def run_shared(
        self, key: Hashable | None, draw: Callable[[], T], timeout: float = WAIT_TIMEOUT_S
    ) -> tuple[T, bool]:
        """run(), and whether the result came from another request's drawing (joined)."""
        with self._lock:
            if self._waiters >= self._max_waiters:
                raise DrawingBusy(f"{self._waiters} requests are waiting for drawings; try again shortly")
            self._waiters += 1
        try:
            future, joined = self._submit(key, draw)
            return future.result(timeout), joined
        except FutureTimeout as e:
            raise DrawingTimeout(f"the drawing took longer than {timeout:g} s; it is stored when done") from e
        finally:
            with self._lock:
                self._waiters -= 1

    def _submit(self, key: Hashable | None, draw: Callable[[], T]) -> tuple[Future, bool]:
        with self._lock:
            if key is not None and key in self._in_flight:
                return self._in_flight[key], True
            if len(self._in_flight) >= self._capacity:
                raise DrawingBusy(f"{len(self._in_flight)} drawings are queued or running; try again shortly")
            key = key if key is not None else object()
            future = self._pool.submit(self._draw_then_forget, key, draw)
            self._in_flight[key] = future
        return future, False

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def close(self) -> None:
        """Drop queued drawings; the running ones finish."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _draw_then_forget(self, key: Hashable, draw: Callable[[], T]) -> T:
        # Forgotten before the waiters wake: a repeat from then on starts afresh (and, for a
        # generate-on-miss prompt, finds the stored drawing instead of drawing again).
        try:
            return draw()
        finally:
            with self._lock:
                self._in_flight.pop(key, None)
