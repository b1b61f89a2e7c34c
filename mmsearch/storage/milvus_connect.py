"""Reaching a Milvus: Milvus Lite (a local `.db` folder, served inside this process) or a
Milvus server (`http://HOST:19530`), through pymilvus, imported only when asked for.

Every call is bounded: a server that does not answer fails within CONNECT_TIMEOUT_S on
connect and within the caller's timeout on each call, with a message saying which URI.
Milvus Lite holds a lock on its folder while a process has it open (one process per file):
a second process gets MilvusLockedError, which says so.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 60.0  # one insert, delete, query or search
BUILD_TIMEOUT_S = 3600.0  # a flush or index build over a whole collection
LITE_LOCK_FILE = "LOCK"  # milvus_lite's lock inside the .db folder (milvus_lite/db.py)
MISSING_PYMILVUS = "the milvus backend needs pymilvus: pip install 'mmsearch[milvus]'"


class MilvusUnavailableError(RuntimeError):
    """The Milvus named by the settings could not be reached or opened."""


class MilvusLockedError(MilvusUnavailableError):
    """Another process has the Milvus Lite file open."""


def pymilvus():
    """The pymilvus module, or an error saying how to install it."""
    try:
        import pymilvus as module
    except ImportError as e:
        raise MilvusUnavailableError(MISSING_PYMILVUS) from e
    return module


def resolve_uri(uri: str | None, library_dir: Path) -> str:
    """The URI pymilvus is given: a server URL as it is; a local path made absolute (relative
    paths are the library folder's); none: milvus.db in the library folder."""
    if not uri:
        return str((Path(library_dir) / "milvus.db").resolve())
    if is_server(uri):
        return uri
    path = Path(uri).expanduser()
    if not path.is_absolute():
        path = Path(library_dir) / path
    if path.suffix != ".db":
        raise MilvusUnavailableError(f"a Milvus Lite path must end in .db (pymilvus's rule), got {uri!r}")
    return str(path.resolve())


def is_server(uri: str) -> bool:
    return urlparse(uri).scheme.lower() in ("http", "https", "tcp", "unix")


def connect(uri: str, token: str | None = None, timeout: float = CONNECT_TIMEOUT_S):
    """A MilvusClient on `uri` (resolve_uri's), within `timeout` seconds. A Milvus Lite folder
    is created if missing; one another process holds raises MilvusLockedError."""
    module = pymilvus()
    if not is_server(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        return module.MilvusClient(uri=uri, token=token or "", timeout=timeout)
    except module.MilvusException as e:
        if not is_server(uri) and lite_locked(uri):
            raise MilvusLockedError(
                f"Milvus Lite {uri} is open in another process: Milvus Lite allows one process per file. "
                "Stop that process (a server or an index job on this library), or serve the vectors from a "
                "Milvus server (MMSEARCH_MILVUS_URI=http://HOST:19530)."
            ) from e
        raise MilvusUnavailableError(f"could not open Milvus at {uri} within {timeout:g} s: {_message(e)}") from e


def lite_locked(uri: str) -> bool:
    """Whether another process holds the lock of the Milvus Lite folder `uri`. Only asked after
    opening failed: this process's own lock (a flock on another file description) would
    answer True too."""
    lock = Path(uri) / LITE_LOCK_FILE
    if not lock.exists():
        return False
    import fcntl

    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def release_lite(uri: str) -> None:
    """Stop this process's Milvus Lite server of `uri` and release its lock (another process may
    then open it). Clients on it stop working."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    server_manager_instance.release_server(uri)


def _message(e: Exception) -> str:
    return getattr(e, "message", None) or str(e) or type(e).__name__
