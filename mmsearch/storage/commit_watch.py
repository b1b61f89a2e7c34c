"""Whether anything has been committed to a library's database since a reader last looked,
answered without reading a table.

A server catches up with rows another process committed (IndexSet._refresh) by comparing
the highest id and the count of a kind's vectors with its index. That count walks every
entry of the space's vectors in the index on (space, kind, id): at 1M vectors 0.4-0.55 s
(bench_filtered's library, 2 busy cores), paid by one search a second. SQLite's
`PRAGMA data_version` changes whenever another connection commits, and costs microseconds,
so the count is read only when it has changed. Other databases cannot tell this way: there
every check reads the count.
"""

from __future__ import annotations

import sqlite3
import threading

from sqlalchemy.engine import Engine


class CommitWatch:
    """A number that changes whenever another connection commits to the database."""

    def __init__(self, engine: Engine):
        url = engine.url
        on_disk = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        # A connection of its own: data_version counts commits by every connection but this one.
        self._conn = sqlite3.connect(url.database, check_same_thread=False) if on_disk else None
        self._lock = threading.Lock()

    def version(self) -> int | None:
        """The database's commit counter as this connection sees it; None where the database
        cannot tell (every caller must then look for itself)."""
        if self._conn is None:
            return None
        with self._lock:
            return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
