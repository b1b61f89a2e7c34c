"""`mmsearch db`: the library's database itself. A library's schema is upgraded when it opens;
where several servers share one PostgreSQL database, `mmsearch db upgrade` upgrades it once,
before the new version's servers start, and `mmsearch db status` says where it stands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import Settings
from ..services.database import DatabaseError, NewerSchemaError, schema_status, shown, upgrade_schema
from .common import LIBRARY_OPT, console, failing_on

db_app = typer.Typer(help="The library's database: its schema revision, and upgrading it.", no_args_is_help=True)
DATABASE_URL_OPT = typer.Option(
    None, "--database-url", help="SQLAlchemy URL (default: MMSEARCH_DATABASE_URL, else the library folder's SQLite)."
)


@db_app.command("status")
def status(library: Optional[Path] = LIBRARY_OPT, database_url: Optional[str] = DATABASE_URL_OPT) -> None:
    """The database's schema revision and the one this mmsearch writes (nothing is changed)."""
    url = _url(library, database_url)
    with failing_on(DatabaseError):
        current, head = schema_status(url)
    verdict = "up to date" if current == head else "`mmsearch db upgrade` brings it there"
    print(f"{shown(url)}: revision {current or 'none'}; this mmsearch writes {head}: {verdict}")


@db_app.command("upgrade")
def upgrade(library: Optional[Path] = LIBRARY_OPT, database_url: Optional[str] = DATABASE_URL_OPT) -> None:
    """Bring the database to this mmsearch's schema (creating it in an empty database)."""
    url = _url(library, database_url)
    with failing_on(DatabaseError, NewerSchemaError):
        before, now = upgrade_schema(url)
    if before == now:
        console.print(f"{shown(url)} is already at revision {now}")
    else:
        console.print(f"upgraded {shown(url)} from revision {before or 'none'} to {now}")


def _url(library: Optional[Path], database_url: Optional[str]) -> str:
    return Settings().with_overrides(library_dir=library, database_url=database_url).resolved_database_url
