"""Names of a library's Milvus collections: one per (embedding space, vector kind).

Milvus names allow letters, digits and underscores (255 at most) and a server may hold
several libraries, so a name is built from hashes: the library's id (a random one kept in
SQL's schema_info, the same for every process sharing the database), the space's and the
kind. The space and kind themselves are kept as collection properties."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .files import digest
from .store import SchemaInfo, Store

LIBRARY_ID_KEY = "milvus_library_id"
SPACE_PROPERTY = "mmsearch.space"
KIND_PROPERTY = "mmsearch.kind"
INDEX_PROPERTY = "mmsearch.index"  # the index, its build parameters and its tuning (JSON)


def library_id(store: Store) -> str:
    """The library's id (12 hex digits), made on first use; processes racing to make it
    agree on the first one committed."""
    for _ in range(2):
        with store.session() as s:
            found = s.scalar(select(SchemaInfo.value).where(SchemaInfo.key == LIBRARY_ID_KEY))
            if found:
                return found
        try:
            with store.session() as s:
                s.add(SchemaInfo(key=LIBRARY_ID_KEY, value=uuid.uuid4().hex[:12]))
        except IntegrityError:
            continue  # another process made it first: read theirs
    raise RuntimeError("could not record the library's Milvus id in schema_info")


def collection_name(library: str, space: str, kind: str) -> str:
    """mms_<library>_<space hash>_<kind>: letters, digits and underscores only."""
    safe_kind = re.sub(r"[^A-Za-z0-9]", "_", kind)
    return f"mms_{library}_{digest(space, 'sha1', 16)}_{safe_kind}"
