"""Whether anything has been committed to a library's database since a reader last looked,
answered without reading a table.

A server catches up with rows another process committed (IndexSet._refresh) by comparing
the highest id and the count of a kind's vectors with its index. That count walks every
entry of the space's vectors in the index on (space, kind, id): at 1M vectors 0.4-0.55 s
(bench_filtered's library, 2 busy cores), paid by one search a second. SQLite's
`PRAGMA data_version` changes whenever another connection commits, and costs microseconds,
so the count is read only when it has changed. On PostgreSQL, a trigger sends NOTIFY when a
transaction writes the tables searches follow (migration 0007) and a connection of our own
LISTENs: its count of notifications is the version. Elsewhere, and while that connection is
down, there is no version: every check reads the count.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from sqlalchemy.engine import URL, Engine

log = logging.getLogger(__name__)

CHANNEL = "mmsearch_commits"  # migrations/versions/r0007_commit_notify.py notifies on it
CONNECT_TIMEOUT_S = 5
RECONNECT_EVERY_S = 10.0  # a listener whose connection failed tries again at most this often
SILENT_SERVER_S = 10.0  # how long a look waits for a server that stopped answering


class CommitWatch:
    """A number that changes whenever another connection commits to the database."""

    def __init__(self, engine: Engine):
        url = engine.url
        on_disk = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        # A connection of its own: data_version counts commits by every connection but this one.
        self._conn = sqlite3.connect(url.database, check_same_thread=False) if on_disk else None
        listens = url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg"
        self._listener = _Listener(url) if listens else None
        self._lock = threading.Lock()

    def version(self) -> int | None:
        """The database's commit counter as this connection sees it; None where the database
        cannot tell (every caller must then look for itself)."""
        if self._listener is not None:
            return self._listener.version()
        if self._conn is None:
            return None
        with self._lock:
            return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._listener is not None:
            self._listener.close()


class _Listener:
    """Counts the notifications on CHANNEL, on a connection of its own (autocommit: LISTEN
    takes effect at once, and an idle session holds no transaction open)."""

    def __init__(self, url: URL):
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._lock = threading.Lock()
        self._conn = None
        self._count = 0
        self._failed_at = float("-inf")

    def version(self) -> int | None:
        import psycopg

        with self._lock:
            if self._conn is None and not self._connect():
                return None
            try:
                # A round trip: it takes in the notifications waiting (counted by _notified), and
                # fails at once on a connection the server ended, where a poll would read nothing.
                self._conn.execute("SELECT 1")
            except psycopg.Error as e:  # the server went away: look for ourselves until it is back
                log.warning("lost the commit notifications of the library's database: %s", e)
                self._drop()
                return None
            return self._count

    def _connect(self) -> bool:
        import psycopg

        if time.monotonic() - self._failed_at < RECONNECT_EVERY_S:
            return False
        try:
            # A round trip on a connection whose server vanished (no reset) fails within
            # SILENT_SERVER_S, not at TCP's retransmission timeout of minutes.
            self._conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                tcp_user_timeout=int(SILENT_SERVER_S * 1000),
                keepalives=1,
                keepalives_idle=int(SILENT_SERVER_S),
                keepalives_interval=2,
                keepalives_count=3,
            )
            self._conn.add_notify_handler(self._notified)
            self._conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as e:
            log.warning("cannot listen for the library database's commits: %s", e)
            self._drop()
            return False
        # Commits made while no one listened were not counted: a new number, so callers look.
        self._count += 1
        return True

    def _notified(self, _notify) -> None:  # called inside version()'s round trip, under its lock
        self._count += 1

    def _drop(self) -> None:
        self._failed_at = time.monotonic()
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
