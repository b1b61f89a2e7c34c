"""Creating and upgrading a library's database with the Alembic migrations in migrations/.

A new database is built by running every migration; one at an older revision is upgraded;
one written before migrations existed (schema_info version 1, no alembic_version table) is
first stamped with the baseline revision, whose schema it holds. A database at a revision
this mmsearch does not know was written by a later one, and is refused rather than misread.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from .database_lock import MIGRATION_KEY, database_lock
from .files import lock_within

MIGRATIONS = Path(__file__).parent / "migrations"
BASELINE = "0001"  # the schema of the releases before migrations (schema_info version 1)
# Alembic runs env.py through module-level proxies (alembic.context): one migration at a time
# per process. Between processes, _between_processes serialises them.
_ALEMBIC = threading.Lock()
# How long a process waits for another one's migration (a large library's index build) to end.
MIGRATION_WAIT_S = 3600.0
# Alembic says "Context impl SQLiteImpl." at INFO each time a library is opened: not news in a
# server's log. Its migrations still log at WARNING and above.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)


class NewerSchemaError(RuntimeError):
    """The database was written by a later mmsearch."""


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    """The revision this mmsearch writes."""
    return _scripts().get_current_head()


def revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _between_processes(engine: Engine, wait_s: float) -> Iterator[None]:
    """Held by one process at a time while it reads and migrates a database.

    SQLite runs DDL outside transactions (pysqlite), so an index job and the server migrating a
    new library together interleaved Alembic's steps and left two version rows. A lock file
    beside the database serialises them. On PostgreSQL, processes creating a new database at
    once both found no alembic_version table and one failed creating it: an advisory lock
    serialises them there.
    """
    if engine.dialect.name == "postgresql":
        with database_lock(engine, MIGRATION_KEY, wait_s) as held:
            if not held:
                raise TimeoutError(f"another process has been migrating {engine.url.database} for over {wait_s:.0f} s")
            yield
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        if not lock_within(lock, wait_s):
            raise TimeoutError(f"another process has been migrating {database} for over {wait_s:.0f} s")
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade(engine: Engine, wait_s: float = MIGRATION_WAIT_S) -> None:
    """Bring the database to this mmsearch's revision (a no-op when it is there)."""
    # Another process's migration is waited for before taking _ALEMBIC (alembic's state is
    # process-wide), so it never holds up this process's other libraries.
    with _between_processes(engine, wait_s), _ALEMBIC, engine.begin() as connection:
        current = revision(connection)
        if current is None and inspect(connection).has_table("schema_info"):
            version = connection.execute(text("SELECT value FROM schema_info WHERE key = 'schema_version'")).scalar()
            if version is not None and int(version) > 1:
                raise NewerSchemaError(
                    f"database schema v{version} is newer than this mmsearch understands; upgrade mmsearch"
                )
            command.stamp(_config(connection), BASELINE)
            current = BASELINE
        known = {r.revision for r in _scripts().walk_revisions()}
        if current is not None and current not in known:
            raise NewerSchemaError(
                f"database revision {current} was written by a later mmsearch (this one knows up to {head()}); "
                "upgrade mmsearch"
            )
        if current != head():
            command.upgrade(_config(connection), "head")
