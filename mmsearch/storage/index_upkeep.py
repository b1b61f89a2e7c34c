"""Index upkeep off the search path: one worker thread per index set runs the slow work
(tuning an index's search parameters, rebuilding it as another index type) while searches go
on with the index they have. Each kind has at most one task waiting; waits are bounded."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class IndexUpkeep:
    def __init__(self, name: str):
        self._name = name
        self._cond = threading.Condition()
        self._pending: dict[tuple[str, str], Callable[[], None]] = {}  # (task, kind) -> work
        self._running: tuple[str, str] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.errors: list[str] = []  # the latest failures, for index-info and the log

    def submit(self, task: str, kind: str, work: Callable[[], None]) -> bool:
        """Queue `work` unless the same task for the kind is already waiting; False when it was
        (or the upkeep is closed)."""
        with self._cond:
            key = (task, kind)
            if self._closed or key in self._pending:
                return False
            self._pending[key] = work
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name=f"index-upkeep-{self._name}", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return True

    def busy(self, kind: str | None = None) -> bool:
        with self._cond:
            keys = list(self._pending) + ([self._running] if self._running else [])
            return any(kind is None or k == kind for _, k in keys)

    def wait(self, timeout: float) -> bool:
        """Wait until nothing is waiting or running; False when `timeout` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and self._running is None, timeout)

    def in_worker(self) -> bool:
        return threading.current_thread() is self._thread

    def close(self) -> None:
        """Drop waiting tasks; the one running finishes on its own (its thread is a daemon)."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._thread = None
                    self._cond.notify_all()
                    return
                key = next(iter(self._pending))
                work = self._pending.pop(key)
                self._running = key
            try:
                work()
            except Exception as e:  # noqa: BLE001 - upkeep must not die; searches keep the index they have
                log.exception("index upkeep %s of %s failed", *key)
                self.errors = [*self.errors[-9:], f"{key[0]} {key[1]}: {type(e).__name__}: {e}"]
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()
