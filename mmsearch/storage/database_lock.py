"""A lock kept by the database itself, for what runs once per library however many machines
share it: on PostgreSQL a session-level advisory lock, on a connection of its own, which the
server releases when that connection ends (its process killed included). A SQLite database is
one machine's file, and the library folder's lock file covers it (indexer/lock.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Engine

# The key of the library's one writer (index and model jobs); advisory locks are per database.
WRITER_KEY = 0x6D6D_7365_6172_6368  # "mmsearch"
MIGRATION_KEY = WRITER_KEY + 1  # one process at a time reads and upgrades the schema
POLL_S = 0.1


@contextmanager
def database_lock(engine: Engine, key: int, wait_s: float = 0.0) -> Iterator[bool]:
    """Try for `wait_s` seconds to take lock `key`; yields whether it is held (always True
    where the database keeps no such locks), and releases it after."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    held = False
    try:
        deadline = time.monotonic() + wait_s
        while not held:
            held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
            if held or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        yield held
    finally:
        try:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        finally:
            connection.close()
