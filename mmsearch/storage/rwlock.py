"""A readers-writer lock with bounded waits: many searches read an index at once, an index
job's write waits for them and then goes alone.

A waiting writer goes before readers that come after it, so a steady stream of searches
cannot starve an index job. The thread holding the write side may take either side again
(a rebuild saves, a catch-up searches SQL); a reader must not ask for the write side (it
would wait for itself), so callers take what they may need to write before they read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

READ_TIMEOUT_S = 30.0  # a search that waits longer for an index job's write gives up
WRITE_TIMEOUT_S = 120.0  # an index job waits this long for the searches in flight


class LockTimeout(TimeoutError):
    """The lock was not free within the caller's bound."""


class ReadWriteLock:
    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer: int | None = None  # thread ident of the writer
        self._write_depth = 0
        self._writers_waiting = 0

    @property
    def writers_waiting(self) -> int:
        return self._writers_waiting

    @contextmanager
    def read(self, timeout: float = READ_TIMEOUT_S) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            inside_write = self._writer == me
            if not inside_write:
                if not self._cond.wait_for(lambda: self._writer is None and not self._writers_waiting, timeout):
                    raise LockTimeout(f"an index update held the index for over {timeout:g} s")
                self._readers += 1
        try:
            yield
        finally:
            if not inside_write:
                with self._cond:
                    self._readers -= 1
                    self._cond.notify_all()

    @contextmanager
    def write(self, timeout: float = WRITE_TIMEOUT_S) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._writer != me:
                self._writers_waiting += 1
                try:
                    free = self._cond.wait_for(lambda: self._writer is None and self._readers == 0, timeout)
                finally:
                    self._writers_waiting -= 1
                if not free:
                    self._cond.notify_all()  # readers held back by this writer may go
                    raise LockTimeout(f"searches held the index for over {timeout:g} s")
                self._writer = me
            self._write_depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._write_depth -= 1
                if not self._write_depth:
                    self._writer = None
                    self._cond.notify_all()
