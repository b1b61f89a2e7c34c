"""The service's URLs of a media item, and a hit as the API and `mmsearch search --json` show it.

Built here alone: the engine below knows media, not routes."""

from __future__ import annotations

from dataclasses import asdict


def file_url(media_id: int) -> str:
    return f"/media/{media_id}/file"


def thumbnail_url(media_id: int, at_s: float | None = None) -> str:
    """A thumbnail; for a video, `at_s` names the moment to show (its frame there)."""
    return f"/media/{media_id}/thumbnail" + (f"?t={at_s:.3f}" if at_s is not None else "")


def hit_json(hit) -> dict:
    """A search hit with its URLs; a video hit's thumbnail shows the middle of its moment."""
    moment = (hit.t_start + hit.t_end) / 2 if hit.kind == "video" and hit.t_start is not None else None
    return asdict(hit) | {"file_url": file_url(hit.id), "thumbnail_url": thumbnail_url(hit.id, moment)}


def duplicate_group_json(group) -> dict:
    """A group of services.duplicates: its keeper's id and its members as hits with their URLs,
    hash distance to the keeper, pixels and bytes."""
    members = [hit_json(m.hit) | {k: v for k, v in asdict(m).items() if k != "hit"} for m in group.members]
    return {"keeper": group.keeper.id, "members": members}
