"""The embedding spaces a library holds vectors in, as SQL sees them: which one is active,
how much of the library each covers, and removing one.

A space's own vectors (image, frame, segment) carry its name; its pooled video vectors carry
"<space>|pool=<pooling>", so a space's rows are those whose space is the name or starts so.
"""

from __future__ import annotations

from sqlalchemy import delete, exists, func, or_, select, update

from .store import Media, Space, Store, Vector

OWN_KINDS = ("image", "frame", "segment")  # vectors in the encoder's own space (not pooled)


def _of_space(space: str):
    """A SQL condition: the vector is one of the space's, pooled video vectors included."""
    return or_(Vector.space == space, Vector.space.startswith(space + "|pool=", autoescape=True))


def _has_vector_in(space: str):
    """A SQL condition on Media: it has a vector in the space (looked up by media id)."""
    return exists().where(Vector.media_id == Media.id, Vector.space == space, Vector.kind.in_(OWN_KINDS))


def active_space(store: Store) -> Space | None:
    with store.session() as s:
        return s.scalars(select(Space).where(Space.active.is_(True)).order_by(Space.id.desc())).first()


def find_space(store: Store, space: str | None = None, spec: str | None = None) -> Space | None:
    """The row of a space, by its name or by the model spec that makes it."""
    condition = Space.space == space if space is not None else Space.spec == spec
    with store.session() as s:
        return s.scalars(select(Space).where(condition).order_by(Space.id)).first()


def all_spaces(store: Store) -> list[Space]:
    with store.session() as s:
        return list(s.scalars(select(Space).order_by(Space.id)))


def record_space(store: Store, spec: str, space: str, dim: int, active: bool) -> Space:
    """The space's row, added when missing (made active when asked, and then the only
    active one); a row recorded without its spec gets it."""
    with store.session() as s:
        row = s.scalars(select(Space).where(Space.space == space)).first()
        if row is None:
            row = Space(spec=spec, space=space, dim=dim, active=False)
            s.add(row)
        elif row.spec is None:
            row.spec = spec
        if active:
            s.execute(update(Space).where(Space.space != space).values(active=False))
            row.active = True
        s.flush()
        return row


def activate(store: Store, space: str) -> None:
    """Make a recorded space the active one, in one transaction."""
    with store.session() as s:
        s.execute(update(Space).values(active=Space.space == space))


def coverage(store: Store, space: str) -> tuple[int, int]:
    """(media with vectors in the space, media that can have them): every image and video
    row without an error, generated ones included."""
    with store.session() as s:
        indexable = (Media.error.is_(None), Media.kind.in_(("image", "video")))
        total = s.scalar(select(func.count()).select_from(Media).where(*indexable)) or 0
        covered = s.scalar(select(func.count()).select_from(Media).where(*indexable, _has_vector_in(space))) or 0
    return int(covered), int(total)


def media_without(store: Store, space: str, after_id: int = 0, limit: int = 256) -> list[Media]:
    """Indexable media with no vector in the space yet, by id from after_id (a job's next batch)."""
    with store.session() as s:
        return list(
            s.scalars(
                select(Media)
                .where(
                    Media.error.is_(None),
                    Media.kind.in_(("image", "video")),
                    Media.id > after_id,
                    ~_has_vector_in(space),
                )
                .order_by(Media.id)
                .limit(limit)
            )
        )


def vector_counts(store: Store, space: str) -> dict[tuple[str, str], int]:
    """The space's vectors per (space name, kind): its own and its pooled video spaces."""
    with store.session() as s:
        rows = s.execute(
            select(Vector.space, Vector.kind, func.count()).where(_of_space(space)).group_by(Vector.space, Vector.kind)
        )
        return {(name, kind): int(n) for name, kind, n in rows}


def forget_space(store: Store, space: str) -> int:
    """Delete the space's vectors and its row; the number of vectors deleted."""
    with store.session() as s:
        deleted = s.execute(delete(Vector).where(_of_space(space))).rowcount
        s.execute(delete(Space).where(Space.space == space))
    return int(deleted or 0)
