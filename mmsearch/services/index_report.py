"""What a library's vector indexes are: per space and vector kind, the index type, size,
estimated memory, search setting and the recall and latency measured at its last tuning.
Read from the sidecars of the saved index files (no index is loaded), overlaid with the
live state of the indexes a process has open."""

from __future__ import annotations

import logging
from pathlib import Path

from ..storage.index_files import read_meta
from ..storage.index_set import index_entry

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".faiss.meta.json"


def saved_indexes(directory: Path) -> list[dict]:
    """One entry per saved index in `directory`, sorted by space and kind."""
    out = []
    for sidecar in sorted(Path(directory).glob(f"*{SIDECAR_SUFFIX}")):
        index_path = sidecar.with_name(sidecar.name[: -len(".meta.json")])
        try:
            meta = read_meta(index_path)
        except (OSError, ValueError) as e:
            log.warning("skipping %s: %s", sidecar.name, e)
            continue
        vectors = int(meta["ntotal"]) - len(meta["tombstones"])
        entry = index_entry(
            meta.get("space"),
            meta.get("kind"),
            meta["factory"],
            vectors,
            int(meta["ntotal"]),
            int(meta["dim"]),
            meta.get("tuning"),
            meta.get("compared"),
        )
        out.append({**entry, "file_bytes": index_path.stat().st_size if index_path.is_file() else None})
    return sorted(out, key=lambda e: (str(e["space"]), str(e["kind"])))


def overlay(saved: list[dict], live: list[dict]) -> list[dict]:
    """The saved entries with those of open indexes replaced by their live state (an open
    index may hold rows or a tuning not saved yet)."""
    by_key = {(e["space"], e["kind"]): e for e in saved}
    for entry in live:
        by_key[(entry["space"], entry["kind"])] = {**by_key.get((entry["space"], entry["kind"]), {}), **entry}
    return sorted(by_key.values(), key=lambda e: (str(e["space"]), str(e["kind"])))
