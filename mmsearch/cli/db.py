"""`mmsearch db`: the library's database itself. A library's schema is upgraded when it opens;
where several servers share one PostgreSQL database, `mmsearch db upgrade` upgrades it once,
before the new version's servers start, and `mmsearch db status` says where it stands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import Settings
from .common import LIBRARY_OPT, console, fail

db_app = typer.Typer(help="The library's database: its schema revision, and upgrading it.", no_args_is_help=True)
DATABASE_URL_OPT = typer.Option(
    None, "--database-url", help="SQLAlchemy URL (default: MMSEARCH_DATABASE_URL, else the library folder's SQLite)."
)


@db_app.command("status")
def status(library: Optional[Path] = LIBRARY_OPT, database_url: Optional[str] = DATABASE_URL_OPT) -> None:
    """The database's schema revision and the one this mmsearch writes (nothing is changed)."""
    from ..storage import schema

    engine = _engine(library, database_url)
    try:
        with engine.connect() as connection:
            current = schema.revision(connection)
    except Exception as e:  # noqa: BLE001 - any driver's connection error, reported as such
        fail(f"cannot read {_shown(engine)}: {e}")
    finally:
        engine.dispose()
    verdict = "up to date" if current == schema.head() else "`mmsearch db upgrade` brings it there"
    print(f"{_shown(engine)}: revision {current or 'none'}; this mmsearch writes {schema.head()}: {verdict}")


@db_app.command("upgrade")
def upgrade(library: Optional[Path] = LIBRARY_OPT, database_url: Optional[str] = DATABASE_URL_OPT) -> None:
    """Bring the database to this mmsearch's schema (creating it in an empty database)."""
    from ..storage import schema

    engine = _engine(library, database_url)
    try:
        with engine.connect() as connection:
            before = schema.revision(connection)
        schema.upgrade(engine)
    except schema.NewerSchemaError as e:
        fail(str(e))
    except Exception as e:  # noqa: BLE001 - any driver's connection error, reported as such
        fail(f"cannot upgrade {_shown(engine)}: {e}")
    finally:
        engine.dispose()
    if before == schema.head():
        console.print(f"{_shown(engine)} is already at revision {before}")
    else:
        console.print(f"upgraded {_shown(engine)} from revision {before or 'none'} to {schema.head()}")


def _engine(library: Optional[Path], database_url: Optional[str]):
    from sqlalchemy import create_engine, make_url

    settings = Settings().with_overrides(library_dir=library, database_url=database_url)
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        fail(f"no library database at {url.database} (index something into {settings.library_dir} first)")
    return create_engine(url)


def _shown(engine) -> str:
    return engine.url.render_as_string(hide_password=True)
