"""What a library holds and what is known of an item: counts, where a file may be served from,
and its caption."""

from __future__ import annotations

from pathlib import Path

from ..storage.captions import CaptionFinder
from ..storage.store import Media, Store, Vector


def stats(store: Store, encoder) -> dict:
    """The model in use and how much the library holds."""
    return {
        "model": encoder.name,
        "space": encoder.space,
        "media": store.count(Media),
        "vectors": store.count(Vector),
        "unreadable": store.count(Media, Media.error.is_not(None)),
    }


def serving_roots(media: Media, library_dir: Path) -> list[Path]:
    """Where a media item's file may be served from: the root it was indexed from, and the
    library folder for media the library made itself (generated images)."""
    roots = [Path(media.root)] if media.root else []
    return roots + [library_dir] if media.generated else roots


def caption(captions: CaptionFinder, media: Media, library_dir: Path) -> str | None:
    """A media item's first caption (sidecar .txt or synth manifest), or a generated image's prompt."""
    if media.generated:
        return (media.generation or {}).get("prompt")
    roots = [r for r in serving_roots(media, library_dir) if Path(media.path).is_relative_to(r)]
    found = captions(Path(media.path), roots[0] if roots else None)
    return found[0] if found else None
