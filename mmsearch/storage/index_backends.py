"""The index set of a space, from the backend the settings name: FAISS index files in the
library folder (the default), or Milvus (Milvus Lite at MMSEARCH_MILVUS_URI or milvus.db in
the library folder; or a Milvus server). Both answer the same calls, so nothing above this
knows which one serves."""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from .index_set import IndexSet
from .store import Store


def open_index_set(settings: Settings, store: Store, library_dir: Path, space: str, dim: int, **kwargs):
    """An IndexSet (faiss) or MilvusIndexSet (milvus) for `space`, tuned for the settings'
    target recall within their memory budget; `kwargs` are the sets' shared options
    (kind_spaces, text_queries, save_every_s)."""
    options = {"target_recall": settings.target_recall, "memory_budget": settings.index_memory, **kwargs}
    if settings.vector_backend == "milvus":
        from .milvus_connect import resolve_uri
        from .milvus_index import MilvusIndexSet

        return MilvusIndexSet(store, resolve_uri(settings.milvus_uri, library_dir), space, dim, **options)
    return IndexSet(store, Path(library_dir) / "indexes", space, dim, **options)


def drop_collections(settings: Settings, store: Store, library_dir: Path, space_kinds) -> int:
    """Drop the Milvus collections of these (space, kind) pairs (a dropped model's), when the
    settings' backend is Milvus; how many there were. FAISS files are services/models.py's."""
    if settings.vector_backend != "milvus":
        return 0
    from .milvus_connect import CALL_TIMEOUT_S, connect, resolve_uri
    from .milvus_names import collection_name, library_id

    client = connect(resolve_uri(settings.milvus_uri, library_dir))
    try:
        library, dropped = library_id(store), 0
        for space, kind in space_kinds:
            name = collection_name(library, space, kind)
            if client.has_collection(name, timeout=CALL_TIMEOUT_S):
                client.drop_collection(name, timeout=CALL_TIMEOUT_S)
                dropped += 1
        return dropped
    finally:
        client.close()
