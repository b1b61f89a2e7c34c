"""A library's models: the one it searches with (recorded in SQL when first indexed), and the
others it holds vectors of, side by side: added, switched to when complete, dropped.

`mmsearch model add` fills a space (indexer/space_filler.py) while the active one serves;
`model use` switches once the new space covers every media item; `model drop` removes a
space that is not active, vectors and index files.

A library may also hold vectors made elsewhere by a model it does not have (`mmsearch import
clip-retrieval` without --model): their space is an external one, named by its dimension
("external:512"), and searched through ExternalEncoder, which answers vector queries and
refuses text and image ones with NoModelError.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..config import Settings
from ..encoders.base import EncoderError
from ..storage.index_backends import drop_collections
from ..storage.index_set import space_slug
from ..storage.spaces import (
    active_space,
    all_spaces,
    coverage,
    find_space,
    forget_space,
    record_space,
    vector_counts,
)
from ..storage.store import Store

# Libraries indexed before models were recorded used this model unless told otherwise.
LEGACY_MODEL = "mini"


class ModelMismatchError(ValueError):
    """The model asked for is not the library's: searching with it would find nothing."""


class ModelNotAdded(LookupError):
    """The library holds no vectors of that model."""


class ModelStateError(RuntimeError):
    """Not now: the space is incomplete, or is the active one."""


class NoModelError(EncoderError):
    """The library's vectors were made by a model it does not have: only vectors can query
    them. An EncoderError, so the API answers 400 and the CLI exits 2."""


EXTERNAL_SPEC = re.compile(r"external:([1-9][0-9]{0,5})")


def external_spec(dim: int) -> str:
    """The spec (and space name) of vectors of `dim` dimensions made by an unknown model."""
    return f"external:{dim}"


def is_external(spec: str | None) -> bool:
    return spec is not None and EXTERNAL_SPEC.fullmatch(spec) is not None


class ExternalEncoder:
    """Stands in for the unknown model of an external space: it has the space's name and
    dimension, so vector queries are checked and answered, and it embeds nothing."""

    def __init__(self, spec: str):
        found = EXTERNAL_SPEC.fullmatch(spec)
        if found is None:
            raise ValueError(f"{spec!r} is not an external space (external:DIM)")
        self.name = self.space = spec
        self.dim = int(found.group(1))

    def _refuse(self, what: str) -> NoModelError:
        return NoModelError(
            f"{what} needs the model that made this library's vectors, and it has none: they were imported "
            f"without a model ({self.dim}-d, space {self.space!r}). Query with a vector, or import them again "
            f"into a new library with `mmsearch import clip-retrieval FOLDER --model SPEC` naming the model "
            f"that made them (see `mmsearch model`)"
        )

    def embed_texts(self, texts):
        raise self._refuse("a text query")

    def embed_images(self, images):
        raise self._refuse("an image query (or indexing files)")


def without_model(doing: str) -> str:
    """Why a library whose vectors were imported without their model cannot be doing something."""
    return (
        f"{doing} needs the model that made this library's vectors, and it has none (they were imported "
        "without one); use a library of a model for it (--library DIR --model SPEC)"
    )


def has_model(encoder) -> bool:
    """Whether the encoder can embed texts and images (not an external space's stand-in)."""
    return not isinstance(encoder, ExternalEncoder)


def how_to_switch(spec: str) -> str:
    return f"to search with {spec!r}: `mmsearch model add {spec}`, then `mmsearch model use {spec}`"


def library_spec(store: Store, requested: str | None, default: str) -> str:
    """The model spec the library searches with: its recorded one; a library not indexed yet
    takes the one asked for, else the default. Asking for another is a ModelMismatchError."""
    row = active_space(store)
    if row is None:
        return requested or default
    if row.spec is None:  # recorded by the migration; the open checks its space (adopt)
        return requested or LEGACY_MODEL
    if requested is not None and requested != row.spec:
        raise ModelMismatchError(
            f"this library searches with model {row.spec!r}, not {requested!r} (leave out --model / "
            f"MMSEARCH_MODEL to use it); {how_to_switch(requested)}"
        )
    return row.spec


def import_spec(store: Store, requested: str | None, dim: int) -> str:
    """The spec whose space vectors imported from elsewhere go to: the model named, else
    an external space of their dimension. A library searching with another model refuses
    them (ModelMismatchError): its vectors and these would be in two spaces."""
    spec = requested or external_spec(dim)
    row = active_space(store)
    if row is None or row.spec == spec or (row.spec is None and requested is not None):
        return spec  # a legacy row (no spec recorded) is checked when the model loads (adopt)
    if requested is not None:
        raise ModelMismatchError(
            f"this library searches with model {row.spec!r}, not {requested!r}: import vectors made by "
            f"{requested!r} into a new library (--library DIR)"
        )
    if is_external(row.spec):
        raise ModelMismatchError(
            f"this library holds {row.dim}-d vectors of an unknown model; these have {dim}: import them into "
            f"a new library (--library DIR)"
        )
    known = row.spec or LEGACY_MODEL
    raise ModelMismatchError(
        f"this library searches with model {known!r}: to import vectors made by it, pass --model {known}; "
        f"vectors of an unknown model go to a new library (--library DIR)"
    )


def adopt(store: Store, spec: str, space: str) -> None:
    """Once the encoder of library_spec() is loaded: its space must be the active one's. A
    library from before specs were recorded learns its spec here."""
    row = active_space(store)
    if row is None or row.space == space:
        if row is not None and row.spec is None:
            record_space(store, spec, row.space, row.dim, active=True)
        return
    if row.spec is None:
        raise ModelMismatchError(
            f"this library's vectors are in space {row.space!r}, indexed before mmsearch recorded its models; "
            f"model {spec!r} makes {space!r}: open it once with --model set to the model that indexed it"
        )
    raise ModelMismatchError(
        f"model {spec!r} now makes space {space!r}, not the library's {row.space!r} (were its weights changed?); "
        f"re-embed with `mmsearch model add` of the changed model, then `model use` it"
    )


def _index_files(index_dir: Path, names: list[str]) -> list[Path]:
    """The index files (and their metadata) of the given space names."""
    if not index_dir.is_dir():
        return []
    slugs = {space_slug(name) for name in names}
    return sorted(p for p in index_dir.iterdir() if p.name.split(".", 1)[0] in slugs)


def describe(store: Store, index_dir: Path) -> list[dict]:
    """Each space: its model, whether active, how much of the library it covers, its vectors
    per kind and the bytes of its index files."""
    out = []
    for row in all_spaces(store):
        covered, total = coverage(store, row.space)
        counts = vector_counts(store, row.space)
        per_kind: dict[str, int] = {}
        for (_, kind), n in counts.items():
            per_kind[kind] = per_kind.get(kind, 0) + n
        out.append(
            {
                "spec": row.spec,
                "space": row.space,
                "dim": row.dim,
                "active": row.active,
                "covered": covered,
                "total": total,
                "coverage": covered / total if total else 1.0,
                "vectors": per_kind,
                "index_bytes": sum(
                    p.stat().st_size for p in _index_files(index_dir, [row.space, *{name for name, _ in counts}])
                ),
            }
        )
    return out


def space_of(store: Store, spec: str):
    row = find_space(store, spec=spec)
    if row is None:
        raise ModelNotAdded(f"this library has no vectors of model {spec!r}; add them with `mmsearch model add {spec}`")
    return row


def check_complete(store: Store, spec: str):
    """The space of a model the library may switch to: added, and covering every media item."""
    row = space_of(store, spec)
    covered, total = coverage(store, row.space)
    if covered < total:
        raise ModelStateError(
            f"model {spec!r} covers {covered} of {total} media items ({covered / total:.0%}); "
            f"finish it with `mmsearch model add {spec}` (it resumes), then switch"
        )
    return row


def drop(store: Store, settings: Settings, library_dir: Path, spec: str) -> dict:
    """Remove a model's vectors, index files (or Milvus collections) and row; the active model
    cannot be dropped."""
    row = space_of(store, spec)
    if row.active:
        raise ModelStateError(f"{spec!r} is the library's active model: switch to another before dropping it")
    held = vector_counts(store, row.space)
    files = _index_files(library_dir / "indexes", [row.space, *{name for name, _ in held}])
    collections = drop_collections(settings, store, library_dir, held)
    vectors = forget_space(store, row.space)
    for path in files:
        path.unlink(missing_ok=True)
    return {"spec": spec, "space": row.space, "vectors": vectors, "files": len(files), "collections": collections}
