"""A library's database on its own, without opening the library (`mmsearch db`): the schema
revision it holds, and upgrading it to this mmsearch's."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from ..storage import schema
from ..storage.schema import NewerSchemaError

__all__ = ["NewerSchemaError", "DatabaseError", "shown", "schema_status", "upgrade_schema"]


class DatabaseError(RuntimeError):
    """The database cannot be reached or read (or, for SQLite, is not there)."""


def shown(url: str) -> str:
    """The URL with its password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def schema_status(url: str) -> tuple[str | None, str]:
    """(the database's revision, None before migrations; the revision this mmsearch writes)."""
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            return schema.revision(connection), schema.head()
    except SQLAlchemyError as e:
        raise DatabaseError(f"cannot read {shown(url)}: {e}") from e
    finally:
        engine.dispose()


def upgrade_schema(url: str) -> tuple[str | None, str]:
    """Bring the database to this mmsearch's schema (creating it in an empty one): (the revision
    before, the one now). Raises NewerSchemaError for a database of a later mmsearch."""
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            before = schema.revision(connection)
        schema.upgrade(engine)
    except SQLAlchemyError as e:
        raise DatabaseError(f"cannot upgrade {shown(url)}: {e}") from e
    finally:
        engine.dispose()
    return before, schema.head()


def _engine(url: str):
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise DatabaseError(f"no library database at {parsed.database}")
    return create_engine(parsed)
