"""Keyword search: media whose words (path, caption, camera, description, place, generation
prompt; the FTS5 index of revision 0004) hold every word of a query, best first by BM25.

Every word must match (FTS5's implicit AND): a description typed as a query ("beach photos
from last summer") then finds nothing here and is left to the vector side, while a file
name, a folder, a caption's words or a place ("IMG_2041", "Lisbon") find their media. A
quoted query is one phrase: its words adjacent and in order.

The index is SQLite's (FTS5); on another database keyword search is not available yet and
a hybrid query is answered by its vectors alone.
"""

from __future__ import annotations

import re

from sqlalchemy import column, select, table, text

from ..storage.store import Media, Store
from .media_filters import media_conditions
from .query import SearchRequest

MAX_WORDS = 16  # a longer query's first words
_WORD = re.compile(r"\w+")
_WORDS_TABLE = table("media_words", column("rowid"))


def fts_query(words_of: str, phrase: bool = False) -> str | None:
    """An FTS5 query: each word quoted (so no word is read as an operator: AND, NEAR, *),
    all required; or one quoted phrase. None when the text has no word."""
    words = _WORD.findall(words_of)[:MAX_WORDS]
    if not words:
        return None
    return f'"{" ".join(words)}"' if phrase else " ".join(f'"{w}"' for w in words)


class KeywordSearch:
    def __init__(self, store: Store):
        self.store = store
        self.available = store.engine.dialect.name == "sqlite"

    def search(self, words_of: str, req: SearchRequest, limit: int, phrase: bool = False) -> list[int]:
        """Ids of the media whose words match, passing the request's filters, best first."""
        query = fts_query(words_of, phrase)
        if query is None or not self.available or limit < 1:
            return []
        statement = (
            select(Media.id)
            .join(_WORDS_TABLE, _WORDS_TABLE.c.rowid == Media.id)
            .where(text("media_words MATCH :query"), *media_conditions(self.store, req))
            .order_by(text("bm25(media_words)"), Media.id)
            .limit(limit)
        )
        with self.store.engine.connect() as c:
            return list(c.scalars(statement, {"query": query}))
