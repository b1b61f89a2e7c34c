"""writer_lock(): one index job per library at a time, in this process or another (a CLI job
beside `mmsearch serve`), or on another machine sharing its PostgreSQL database; the lock is
let go when the job ends, fails, or its process dies."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from mmsearch.indexer.lock import LibraryBusyError, is_locked, writer_lock
from mmsearch.storage.store import Store
from tests.helpers import POSTGRES_URL, new_postgres_database

# A child process that takes the lock, says so, and holds it until its stdin closes (or it is killed).
HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mmsearch.indexer.lock import writer_lock
    with writer_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        sys.stdin.read()
    print("released", flush=True)
    """
)

# A child process that tries the lock once and reports what happened.
TRIER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mmsearch.indexer.lock import LibraryBusyError, writer_lock
    try:
        with writer_lock(Path(sys.argv[1])):
            print("acquired")
    except LibraryBusyError as e:
        print("busy:", e)
    """
)


def _python(code: str, library, **kwargs):
    return subprocess.Popen([sys.executable, "-c", code, str(library)], stdout=subprocess.PIPE, text=True, **kwargs)


def _try_in_child(library) -> str:
    child = _python(TRIER, library)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    return out.strip()


def test_a_second_holder_in_the_same_process_is_refused(tmp_path):
    with writer_lock(tmp_path):
        with pytest.raises(LibraryBusyError, match=f"pid {os.getpid()}"):
            with writer_lock(tmp_path):
                pytest.fail("two writers held the lock at once")


def test_library_busy_error_is_a_runtime_error_naming_the_library(tmp_path):
    with writer_lock(tmp_path):
        with pytest.raises(RuntimeError, match=re.escape(str(tmp_path))):
            with writer_lock(tmp_path):
                pass


def test_the_lock_is_released_when_the_block_ends(tmp_path):
    with writer_lock(tmp_path):
        assert is_locked(tmp_path)
    assert not is_locked(tmp_path)
    with writer_lock(tmp_path):  # taken again without error
        pass


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with writer_lock(tmp_path):
            1 / 0
    assert not is_locked(tmp_path)
    with writer_lock(tmp_path):
        pass


def test_a_refused_attempt_does_not_release_the_holders_lock(tmp_path):
    with writer_lock(tmp_path):
        with pytest.raises(LibraryBusyError):
            with writer_lock(tmp_path):
                pass
        assert is_locked(tmp_path)
        assert _try_in_child(tmp_path).startswith("busy:")


def test_locks_of_different_libraries_are_independent(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with writer_lock(tmp_path / "a"):
        with writer_lock(tmp_path / "b"):
            assert is_locked(tmp_path / "a") and is_locked(tmp_path / "b")


def test_another_process_is_refused_while_this_one_holds_the_lock(tmp_path):
    with writer_lock(tmp_path):
        assert (
            _try_in_child(tmp_path)
            == f"busy: an index job is already running on {tmp_path} (pid {os.getpid()}); wait for it to finish"
        )
    assert _try_in_child(tmp_path) == "acquired"


def test_this_process_is_refused_while_another_holds_the_lock_until_it_exits(tmp_path):
    holder = _python(HOLDER, tmp_path, stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LibraryBusyError, match=f"pid {holder.pid}"):
            with writer_lock(tmp_path):
                pass
        holder.stdin.close()  # lets the holder leave its `with` block
        assert holder.stdout.readline().strip() == "released"
        assert holder.wait(timeout=60) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    with writer_lock(tmp_path):
        pass


def test_a_killed_holder_releases_the_lock(tmp_path):
    holder = _python(HOLDER, tmp_path, stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert is_locked(tmp_path)
        holder.kill()  # SIGKILL: no finally block runs, the OS drops the lock
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert not is_locked(tmp_path)
    with writer_lock(tmp_path):
        pass


# A holder as above, its library's database on PostgreSQL (argv[2]).
DATABASE_HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mmsearch.indexer.lock import writer_lock
    from mmsearch.storage.store import Store
    with writer_lock(Path(sys.argv[1]), store=Store(sys.argv[2])):
        print("locked", flush=True)
        sys.stdin.read()
    """
)
on_postgres = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="set MMSEARCH_TEST_POSTGRES_URL to a PostgreSQL role that may create databases (.ci/run does)",
)


@on_postgres
def test_folders_on_other_machines_share_the_lock_of_their_postgresql_database(tmp_path):
    url = new_postgres_database()
    here, there = Store(url), Store(url)
    (tmp_path / "here").mkdir()
    (tmp_path / "there").mkdir()  # another machine's library folder: its lock file is not ours
    with writer_lock(tmp_path / "here", store=here):
        with pytest.raises(LibraryBusyError, match="already running on this library's database"):
            with writer_lock(tmp_path / "there", store=there):
                pass
        assert is_locked(tmp_path / "there", store=there) and not is_locked(tmp_path / "there")
    with writer_lock(tmp_path / "there", store=there):
        pass
    here.close()
    there.close()


@on_postgres
def test_a_killed_holder_releases_the_lock_of_its_postgresql_database(tmp_path):
    url = new_postgres_database()
    (tmp_path / "there").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", DATABASE_HOLDER, str(tmp_path / "there"), url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    store = Store(url)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert is_locked(tmp_path, store=store)
        holder.kill()  # its connection closes with it, and the server drops the lock
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    with writer_lock(tmp_path, wait_s=10, store=store):
        pass
    store.close()
