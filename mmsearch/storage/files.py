"""Files the library writes and reads: atomic writes, content digests and locks between
processes. One of each, used everywhere."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make renames inside `directory` durable (POSIX only: Windows cannot open a folder so)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = True) -> Iterator[Path]:
    """A temporary path beside `path` to write to; on leaving the block it is renamed over
    `path`, so a reader sees the old file or the new one, never half of one.

    The temporary name is unique per call, so two writers of the same file never clash on
    it (the last rename wins); on an error it is removed and `path` is left as it was.
    durable: fsync the file and its folder, so the new content survives a power cut too
    (about 3 ms a file here); caches that can be made again pass False."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, data: bytes | str, durable: bool = True) -> Path:
    """Write bytes (or UTF-8 text) to `path` atomically (see atomic_path)."""
    with atomic_path(path, durable) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


def digest(data: bytes | str, algorithm: str = "sha256", length: int | None = None) -> str:
    """Hex digest of bytes (or UTF-8 text), cut to `length` characters when given."""
    h = hashlib.new(algorithm, data.encode() if isinstance(data, str) else data)
    return h.hexdigest()[:length]


def file_digest(
    path: str | os.PathLike, algorithm: str = "sha256", length: int | None = None, ends_only: int | None = None
) -> str:
    """Hex digest of a file's content, read in chunks. With `ends_only=N`, only its size and
    its first and last N bytes are hashed: cheap on multi-GB weights, still a fingerprint."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        if ends_only is not None:
            size = os.fstat(f.fileno()).st_size
            h.update(str(size).encode())
            h.update(f.read(ends_only))
            f.seek(max(0, size - ends_only))
            h.update(f.read(ends_only))
        else:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:length]


def lock_within(f, wait_s: float) -> bool:
    """Take an exclusive lock (flock) on the open file `f`, trying for up to `wait_s` seconds;
    False if another holder kept it. The OS releases it when the holder dies, even by kill -9."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
