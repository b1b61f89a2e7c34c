"""One index job per library at a time, across processes (a CLI job beside `mmsearch serve`)."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

from ..storage.database_lock import WRITER_KEY, database_lock
from ..storage.files import lock_within
from ..storage.store import Store


class LibraryBusyError(RuntimeError):
    """Another process is indexing this library."""


@contextmanager
def writer_lock(library_dir: Path, wait_s: float = 0.0, store: Store | None = None) -> Iterator[None]:
    """Held for the whole job; the OS releases it when the process dies, even by kill -9.
    Refused at once, or after trying for `wait_s` seconds, while another holder has it. With
    the library's `store` on PostgreSQL, also a lock in the database: processes on other
    machines, with library folders of their own, share that one."""
    with _folder_lock(library_dir, wait_s):
        with database_lock(store.engine, WRITER_KEY, wait_s) if store else nullcontext(True) as held:
            if not held:
                raise LibraryBusyError(
                    f"an index job is already running on this library's database ({store.engine.url.database}), "
                    "from another machine or library folder; wait for it to finish"
                )
            yield


@contextmanager
def _folder_lock(library_dir: Path, wait_s: float) -> Iterator[None]:
    path = Path(library_dir) / "index.lock"
    with open(path, "a+") as f:
        if not lock_within(f, wait_s):
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise LibraryBusyError(
                f"an index job is already running on {library_dir} (pid {holder}); wait for it to finish"
            )
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def is_locked(library_dir: Path, store: Store | None = None) -> bool:
    try:
        with writer_lock(library_dir, store=store):
            return False
    except LibraryBusyError:
        return True
