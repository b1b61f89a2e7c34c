"""Jobs left 'running' or 'pending' by a process that died (kill -9, a server stopped with jobs
queued) are marked 'interrupted' when the library is next opened, unless a live process
still holds the writer lock; a library knows whether another process is writing to it."""

import subprocess
import sys
import textwrap
import threading
import time

import pytest
from PIL import Image

from mmsearch.config import Settings
from mmsearch.indexer.job_runs import INTERRUPTED_PENDING, INTERRUPTED_RUNNING, create_job
from mmsearch.indexer.lock import writer_lock
from mmsearch.library import Library
from mmsearch.storage.store import Job

from ..helpers import open_library

pytestmark = pytest.mark.slow  # builds libraries (and some run child processes)

# A child that takes the library's writer lock and holds it until its stdin closes or it is killed.
HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mmsearch.indexer.lock import writer_lock
    with writer_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        sys.stdin.read()
    """
)


def _holder(library_dir) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(library_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "locked"
    return child


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _add_job(lib, state: str, pid: int, done: int = 3, total: int = 10) -> int:
    with lib.store.session() as s:
        job = Job(roots=["/m"], space="s", state=state, pid=pid, done=done, total=total)
        s.add(job)
        s.flush()
        return job.id


def _states(lib) -> dict[int, tuple[str, str | None]]:
    with lib.store.session() as s:
        return {j.id: (j.state, j.message) for j in s.query(Job).all()}


def test_jobs_of_a_dead_process_are_interrupted_when_the_library_opens(tmp_path):
    dead = _dead_pid()
    with open_library(tmp_path / "lib") as lib:
        running = _add_job(lib, "running", dead)
        queued = _add_job(lib, "pending", dead)
        done = _add_job(lib, "done", dead, done=10)
        failed = _add_job(lib, "failed", dead)
        assert dict(lib.counts()["job_progress"]) == {running: 0.3, queued: 0.3}
    with open_library(tmp_path / "lib") as lib:
        assert _states(lib) == {
            running: ("interrupted", INTERRUPTED_RUNNING),
            queued: ("interrupted", INTERRUPTED_PENDING),
            done: ("done", None),
            failed: ("failed", None),
        }
        counts = lib.counts()
        assert counts["job_progress"] == []
        assert dict(counts["jobs"]) == {"interrupted": 2, "done": 1, "failed": 1}


def test_jobs_this_process_queued_before_a_restart_are_interrupted_too(tmp_path):
    """A server in a container is pid 1 in every life: a pending job of the opener's own pid
    was queued by an earlier life (a fresh library has queued nothing yet)."""
    with open_library(tmp_path / "lib") as lib:
        queued = create_job(lib.store, [tmp_path], "s")
    with open_library(tmp_path / "lib") as lib:
        assert _states(lib) == {queued: ("interrupted", INTERRUPTED_PENDING)}


def test_nothing_is_touched_while_a_live_process_holds_the_writer_lock_then_kill_9_frees_it(tmp_path):
    lib_dir = tmp_path / "lib"
    with open_library(lib_dir):
        pass
    child = _holder(lib_dir)
    try:
        with open_library(lib_dir) as lib:
            running = _add_job(lib, "running", child.pid)
            queued = _add_job(lib, "pending", child.pid)
        with open_library(lib_dir) as lib:
            assert _states(lib) == {running: ("running", None), queued: ("pending", None)}
            assert "already running" in lib.other_writer()
    finally:
        child.kill()
        child.wait()
    with open_library(lib_dir) as lib:
        assert _states(lib) == {
            running: ("interrupted", INTERRUPTED_RUNNING),
            queued: ("interrupted", INTERRUPTED_PENDING),
        }
        assert lib.other_writer() is None


def test_a_pending_job_of_another_live_process_is_left_alone(tmp_path):
    """Another live process queued it (its own job ended a moment ago and the next is about
    to start): only a pending job whose process is gone is stale."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with open_library(tmp_path / "lib") as lib:
            queued = _add_job(lib, "pending", sleeper.pid)
        with open_library(tmp_path / "lib") as lib:
            assert _states(lib) == {queued: ("pending", None)}
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_library_running_a_job_does_not_count_itself_as_another_writer(tmp_path, mini_encoder):
    root = tmp_path / "photos"
    root.mkdir()
    for k in range(3):
        Image.new("RGB", (16, 16), (80 * k, 20, 20)).save(root / f"{k}.png")
    seen = []
    settings = Settings(library_dir=tmp_path / "lib", batch_size=1, decode_workers=0)
    with Library.open(settings=settings, encoder=mini_encoder) as lib:
        assert lib.other_writer() is None
        job = lib.index([root], progress=lambda summary: seen.append(lib.other_writer()))
        assert job["state"] == "done" and job["new"] == 3
        assert len(seen) >= 3 and set(seen) == {None}


def test_a_job_whose_start_collides_with_a_lock_probe_waits_for_it(tmp_path, mini_encoder):
    """Another process opening the library (or a server answering POST /jobs) takes the
    writer lock for an instant to look; a job starting in that instant waits, not fails."""
    root = tmp_path / "photos"
    root.mkdir()
    Image.new("RGB", (16, 16), (200, 20, 20)).save(root / "a.png")
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        job_id = lib.create_job([root])
        with writer_lock(lib.dir):
            started = time.monotonic()
            result = []
            t = threading.Thread(target=lambda: result.append(lib.run_job(job_id)))
            t.start()
            time.sleep(0.3)
        t.join(60)
        assert result[0]["state"] == "done" and time.monotonic() - started >= 0.3
