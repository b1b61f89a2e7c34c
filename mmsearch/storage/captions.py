"""Captions people keep beside their images: a sidecar text file (`photo.jpg` -> `photo.txt`,
one caption per line) or, for a corpus written by `mmsearch synth`, its manifest's captions."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"  # the file a synthetic corpus lists its items and captions in


class CaptionFinder:
    """Captions of an image file: its sidecar .txt, else its synth manifest entry.

    Parsed manifests are kept (a 50,000-image one is 32 MB of JSON, seconds to read) and read
    again only when the file changes, so one finder can serve a long-running process."""

    def __init__(self):
        # folder -> (the manifest's (mtime_ns, size) when read, or None when absent; its table)
        self._manifests: dict[Path, tuple[tuple[int, int] | None, dict[str, list[str]]]] = {}

    def _manifest(self, folder: Path) -> dict[str, list[str]]:
        path = folder / MANIFEST
        try:
            stat = path.stat()
            version = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            version = None
        cached = self._manifests.get(folder)
        if cached is not None and cached[0] == version:
            return cached[1]
        table: dict[str, list[str]] = {}
        if version is not None:
            try:
                for item in json.loads(path.read_text())["items"]:
                    table[str((folder / item["file"]).resolve())] = item.get("captions") or [item["caption"]]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable manifest %s: %s", path, exc)
        self._manifests[folder] = (version, table)
        return table

    def __call__(self, image: Path, root: Path | None) -> list[str]:
        sidecar = image.with_suffix(".txt")
        if sidecar.is_file():
            return [line.strip() for line in sidecar.read_text(errors="replace").splitlines() if line.strip()]
        # A synth corpus keeps its manifest at its top folder, which may sit above the file.
        folder = image.parent
        while True:
            captions = self._manifest(folder).get(str(image.resolve()))
            if captions:
                return captions
            if root is None or folder == root or folder == folder.parent or not folder.is_relative_to(root):
                return []
            folder = folder.parent
