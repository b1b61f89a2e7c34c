"""CommitWatch: a number that changes when another connection commits a write, and only then,
so a server reads a kind's vector counts only after a commit (SQLite: data_version;
PostgreSQL: the notifications of migration 0007's triggers)."""

import time

import numpy as np
import pytest
from sqlalchemy import select, text

from mmsearch.storage import commit_watch
from mmsearch.storage.commit_watch import CommitWatch
from mmsearch.storage.store import Media, Store, Vector, encode_embedding

from ..helpers import POSTGRES_URL, new_postgres_database

NOTIFY_WAIT_S = 10.0  # a notification arrives after its commit, not with it


def _changed(watch: CommitWatch, seen: int) -> bool:
    deadline = time.monotonic() + NOTIFY_WAIT_S
    while time.monotonic() < deadline:
        if watch.version() != seen:
            return True
        time.sleep(0.05)
    return False


def _write_a_vector(store: Store) -> None:
    with store.session() as s:
        media = Media(path=f"/x/{time.monotonic_ns()}.png", root="/x", kind="image", size=1, mtime=1.0)
        s.add(media)
        s.flush()
        s.add(Vector(media_id=media.id, kind="image", space="s", dim=4, embedding=encode_embedding(np.ones(4) / 2)))


def _reads_and_rollbacks(store: Store) -> None:
    with store.session() as s:
        s.scalars(select(Media)).all()
        s.execute(text("SELECT count(*) FROM vectors")).scalar()
    with store.engine.connect() as connection:  # a write never committed
        connection.execute(text("DELETE FROM vectors"))
        connection.rollback()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'library.db'}"
    if not POSTGRES_URL:
        pytest.skip("set MMSEARCH_TEST_POSTGRES_URL (.ci/run does)")
    return new_postgres_database()


def test_the_version_moves_with_another_connections_commits_and_only_with_them(url):
    writer, reader = Store(url), Store(url)
    watch = reader.commits
    try:
        seen = watch.version()
        assert seen is not None
        _write_a_vector(writer)
        assert _changed(watch, seen)
        seen = watch.version()
        _reads_and_rollbacks(writer)
        time.sleep(0.5)  # time for a notification, were one sent
        assert watch.version() == seen
        with writer.session() as s:  # a delete is a change too
            s.execute(text("DELETE FROM vectors"))
        assert _changed(watch, seen)
    finally:
        writer.close()
        reader.close()


@pytest.mark.skipif(not POSTGRES_URL, reason="set MMSEARCH_TEST_POSTGRES_URL (.ci/run does)")
def test_a_listener_whose_connection_is_killed_says_so_then_listens_again(monkeypatch):
    url = new_postgres_database()
    store = Store(url)
    try:
        watch = store.commits
        seen = watch.version()
        with store.engine.connect() as admin:  # end every other session of the database: the listener's
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert watch.version() is None  # unknown: callers read the counts themselves
        monkeypatch.setattr(commit_watch, "RECONNECT_EVERY_S", 0.0)
        again = watch.version()
        assert again is not None and again != seen  # commits may have been missed meanwhile
    finally:
        store.close()
