"""Keyword search: media whose words (path, caption, camera, description, place, generation
prompt) hold every word of a query, best first: on SQLite through the FTS5 index of revision
0004, ranked by BM25; on PostgreSQL through the tsvector column of revision 0005 and its GIN
index, ranked by ts_rank_cd (cover density: more of the words, closer together).

Every word must match (FTS5's implicit AND): a description typed as a query ("beach photos
from last summer") then finds nothing here and is left to the vector side, while a file
name, a folder, a caption's words or a place ("IMG_2041", "Lisbon") find their media. A
quoted query is one phrase: its words adjacent and in order.

On other databases keyword search is not available and a hybrid query is answered by its
vectors alone.
"""

from __future__ import annotations

import re

from sqlalchemy import column, func, literal_column, select, table, text

from ..storage.store import Media, Store
from .media_filters import media_conditions
from .query import SearchRequest

MAX_WORDS = 16  # a longer query's first words
_WORD = re.compile(r"\w+")
_ALNUM = re.compile(r"[^\W_]+")  # words as revision 0005's tsvector splits them (underscores separate)
_WORDS_TABLE = table("media_words", column("rowid"))
_PG_WORDS = literal_column("media.words")


def fts_query(words_of: str, phrase: bool = False) -> str | None:
    """An FTS5 query: each word quoted (so no word is read as an operator: AND, NEAR, *),
    all required; or one quoted phrase. None when the text has no word."""
    words = _WORD.findall(words_of)[:MAX_WORDS]
    if not words:
        return None
    return f'"{" ".join(words)}"' if phrase else " ".join(f'"{w}"' for w in words)


def pg_query(words_of: str, phrase: bool = False):
    """A PostgreSQL tsquery: every word required, or the words as one phrase; None when the
    text has no word. Only letters and digits reach it, so nothing is read as an operator."""
    words = _ALNUM.findall(words_of)[:MAX_WORDS]
    if not words:
        return None
    return (func.phraseto_tsquery if phrase else func.plainto_tsquery)(literal_column("'simple'"), " ".join(words))


class KeywordSearch:
    def __init__(self, store: Store):
        self.store = store
        self.dialect = store.engine.dialect.name
        self.available = self.dialect in ("sqlite", "postgresql")

    def search(self, words_of: str, req: SearchRequest, limit: int, phrase: bool = False) -> list[int]:
        """Ids of the media whose words match, passing the request's filters, best first."""
        if not self.available or limit < 1:
            return []
        if self.dialect == "postgresql":
            return self._search_postgres(words_of, req, limit, phrase)
        query = fts_query(words_of, phrase)
        if query is None:
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

    def _search_postgres(self, words_of: str, req: SearchRequest, limit: int, phrase: bool) -> list[int]:
        query = pg_query(words_of, phrase)
        if query is None:
            return []
        statement = (
            select(Media.id)
            .where(_PG_WORDS.op("@@")(query), Media.error.is_(None), *media_conditions(self.store, req))
            .order_by(func.ts_rank_cd(_PG_WORDS, query).desc(), Media.id)
            .limit(limit)
        )
        with self.store.engine.connect() as c:
            return list(c.scalars(statement))
