"""`mmsearch db status` and `mmsearch db upgrade`: a library's schema revision, and upgrading
it in one step (a database shared by several servers is upgraded once, before they start)."""

import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmsearch.cli import app
from mmsearch.storage import schema

from ..helpers import POSTGRES_URL, new_postgres_database

runner = CliRunner()
V1 = Path(__file__).parents[1] / "fixtures" / "libraries" / "v1"


def test_a_library_from_before_migrations_is_upgraded_in_one_step_keeping_its_rows(tmp_path):
    shutil.copytree(V1 / "lib", tmp_path / "lib")
    lib = str(tmp_path / "lib")
    before = runner.invoke(app, ["db", "status", "--library", lib])
    assert before.exit_code == 0, before.output
    wanted = f"revision none; this mmsearch writes {schema.head()}: `mmsearch db upgrade` brings it there"
    assert wanted in before.stdout

    upgraded = runner.invoke(app, ["db", "upgrade", "--library", lib])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"from revision none to {schema.head()}" in upgraded.output
    with sqlite3.connect(tmp_path / "lib" / "mmsearch.db") as c:
        assert c.execute("SELECT count(*) FROM media").fetchone() == (8,)
        assert c.execute("SELECT version_num FROM alembic_version").fetchall() == [(schema.head(),)]

    after = runner.invoke(app, ["db", "status", "--library", lib])
    assert f"revision {schema.head()}; this mmsearch writes {schema.head()}: up to date" in after.stdout
    again = runner.invoke(app, ["db", "upgrade", "--library", lib])
    assert again.exit_code == 0 and f"already at revision {schema.head()}" in again.output


def test_a_folder_without_a_library_or_a_later_schema_is_refused(tmp_path):
    missing = runner.invoke(app, ["db", "upgrade", "--library", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no library database at" in missing.output
    assert not (tmp_path / "nothing").exists()  # nothing created

    shutil.copytree(V1 / "lib", tmp_path / "lib")
    assert runner.invoke(app, ["db", "upgrade", "--library", str(tmp_path / "lib")]).exit_code == 0
    with sqlite3.connect(tmp_path / "lib" / "mmsearch.db") as c:
        c.execute("UPDATE alembic_version SET version_num = '0099'")
    later = runner.invoke(app, ["db", "upgrade", "--library", str(tmp_path / "lib")])
    assert later.exit_code == 2 and "revision 0099 was written by a later mmsearch" in later.output


@pytest.mark.skipif(not POSTGRES_URL, reason="set MMSEARCH_TEST_POSTGRES_URL (.ci/run does)")
def test_an_empty_postgresql_database_gets_the_schema(tmp_path):
    url = new_postgres_database()
    upgraded = runner.invoke(app, ["db", "upgrade", "--database-url", url, "--library", str(tmp_path)])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"from revision none to {schema.head()}" in upgraded.output and "***" in upgraded.output  # password hidden
    status = runner.invoke(app, ["db", "status", "--database-url", url])
    assert f"revision {schema.head()}; this mmsearch writes {schema.head()}: up to date" in status.stdout
