"""A VectorIndex on disk: the FAISS file and its sidecar `<path>.meta.json`, saved atomically
together and checked against each other on load."""

from __future__ import annotations

import json
from pathlib import Path

import faiss

from .files import atomic_path

FORMAT_VERSION = 1
META_KEYS = ("factory", "dim", "watermark", "ntotal", "tombstones", "format")


def meta_path(path: Path) -> Path:
    """The sidecar of the index file at `path`."""
    return path.with_name(path.name + ".meta.json")


def write_index_files(index: faiss.Index, path: Path, meta: dict) -> None:
    """Write `index` to `path` and `meta` to its sidecar.

    Each goes to its own uniquely named temporary file, fsynced, then is renamed over the
    old one: the index first, then the sidecar. A save interrupted between the two renames
    leaves a pair that load_index_files rejects as disagreeing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # The inner block is left first: the index is renamed into place before the sidecar.
    with atomic_path(meta_path(path)) as meta_tmp, atomic_path(path) as index_tmp:
        faiss.write_index(index, str(index_tmp))
        meta_tmp.write_text(json.dumps(meta), encoding="utf-8")


def read_meta(path: Path) -> dict:
    """The sidecar of `path`, checked for the reserved keys and the format version."""
    sidecar = meta_path(path)
    if not sidecar.is_file():
        raise FileNotFoundError(f"no index metadata at {sidecar}")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"corrupt index metadata {sidecar}: {e}") from e
    if not isinstance(meta, dict) or any(key not in meta for key in META_KEYS):
        raise ValueError(f"index metadata {sidecar} lacks some of {list(META_KEYS)}")
    if meta["format"] != FORMAT_VERSION:
        raise ValueError(f"index metadata {sidecar} has format {meta['format']}, expected {FORMAT_VERSION}")
    return meta


def load_index_files(path: Path) -> tuple[faiss.Index, dict]:
    """(index, meta) saved by write_index_files. FileNotFoundError if either file is missing;
    ValueError if either is unreadable or they disagree."""
    meta = read_meta(path)
    if not path.is_file():
        raise FileNotFoundError(f"no index file at {path}")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as e:
        raise ValueError(f"corrupt index file {path}: {e}") from e
    if faiss.try_extract_index_ivf(index) is None and not isinstance(index, faiss.IndexIDMap2):
        raise ValueError(f"{path} holds a {type(index).__name__}, not an index saved by VectorIndex")
    if index.d != meta["dim"] or index.ntotal != meta["ntotal"]:
        raise ValueError(
            f"{path} holds {index.ntotal} vectors of dim {index.d} but its metadata says "
            f"{meta['ntotal']} of dim {meta['dim']} (interrupted save?)"
        )
    return index, meta
