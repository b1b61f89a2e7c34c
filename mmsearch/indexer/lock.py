"""One index job per library at a time, across processes (a CLI job beside `mmsearch serve`)."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..storage.files import lock_within


class LibraryBusyError(RuntimeError):
    """Another process is indexing this library."""


@contextmanager
def writer_lock(library_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Held for the whole job; the OS releases it when the process dies, even by kill -9.
    Refused at once, or after trying for `wait_s` seconds, while another holder has it."""
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


def is_locked(library_dir: Path) -> bool:
    try:
        with writer_lock(library_dir):
            return False
    except LibraryBusyError:
        return True
