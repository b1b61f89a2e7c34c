"""Index jobs over folders that hold what a careless or hostile user may put there: file names
that are not UTF-8, FIFOs and other special files, and symlinks leading out of the root."""

import json
import os
import socket
import threading
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from mmsearch.indexer.scan import display_path, sniff
from mmsearch.storage.store import JobError, Media

from ..helpers import open_library

BAD_NAME = b"bad\xff\xfe.png"
BAD_SHOWN = "bad\\xff\\xfe.png"  # how the name is stored and shown: its bytes, escaped


def _png(path: Path | bytes, colour=(200, 30, 40)) -> None:
    with open(path, "wb") as f:
        Image.new("RGB", (16, 12), colour).save(f, format="PNG")


def _rows(lib) -> dict[str, str | None]:
    """Media path -> error of every media row."""
    with lib.store.session() as s:
        return dict(s.execute(select(Media.path, Media.error)).all())


def _job_errors(lib, job_id: int) -> list[str]:
    with lib.store.session() as s:
        return list(s.scalars(select(JobError.path).where(JobError.job_id == job_id)))


def test_display_path_shows_the_bytes_of_a_name_that_is_not_utf8():
    assert display_path("/m/" + os.fsdecode(BAD_NAME)) == "/m/" + BAD_SHOWN
    assert display_path("/m/ok-é.png") == "/m/ok-é.png"
    assert display_path("/m/\ud800.png") == "/m/\\ud800.png"  # a surrogate no file system name decodes to
    for shown in (display_path("/m/" + os.fsdecode(BAD_NAME)), display_path("/m/\ud800")):
        shown.encode("utf-8")  # storable in SQL text and JSON


@pytest.mark.slow
def test_a_name_that_is_not_utf8_becomes_an_error_row_and_the_job_goes_on(tmp_path, mini_encoder):
    root = tmp_path / "photos"
    root.mkdir()
    _png(root / "ok.png")
    _png(os.path.join(os.fsencode(root), BAD_NAME), (10, 200, 10))
    shown = str(root / BAD_SHOWN)
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        job = lib.index([root])
        assert (job["state"], job["total"], job["done"], job["new"], job["errors"]) == ("done", 2, 2, 2, 1)
        rows = _rows(lib)
        assert set(rows) == {str(root / "ok.png"), shown}
        assert rows[str(root / "ok.png")] is None
        assert rows[shown] == "the file name is not valid UTF-8; rename the file to index it"
        assert _job_errors(lib, job["id"]) == [shown]
        assert lib.indexes.size("image") == 1
        summary = lib.job(job["id"])
        assert summary["recent_errors"] == [{"path": shown, "error": rows[shown]}]
        json.dumps(summary, ensure_ascii=False).encode("utf-8")
        # A rerun finds the recorded file unchanged: no new error, no duplicate row, nothing deleted.
        again = lib.index([root])
        assert (again["state"], again["new"], again["unchanged"], again["deleted"], again["errors"]) == (
            "done",
            0,
            2,
            0,
            0,
        )
        assert set(_rows(lib)) == {str(root / "ok.png"), shown}


@pytest.mark.slow
def test_the_files_of_a_folder_whose_name_is_not_utf8_become_error_rows(tmp_path, mini_encoder):
    root = tmp_path / "photos"
    bad_dir = os.path.join(os.fsencode(root), b"dir\xff")
    os.makedirs(bad_dir)
    _png(os.path.join(bad_dir, b"inner.png"))
    _png(root / "ok.png")
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        job = lib.index([root])
        assert (job["state"], job["new"], job["errors"]) == ("done", 2, 1)
        assert set(_rows(lib)) == {str(root / "ok.png"), str(root / "dir\\xff" / "inner.png")}


def _fifo_unblocker(fifo: Path) -> None:
    """Open the FIFO's write end: a reader stuck in open() (the bug) is let go."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def test_sniff_does_not_block_on_a_fifo(tmp_path):
    fifo = tmp_path / "p.png"
    os.mkfifo(fifo)
    result = []
    t = threading.Thread(target=lambda: result.append(sniff(fifo)), daemon=True)
    t.start()
    t.join(10)
    blocked = t.is_alive()
    if blocked:
        _fifo_unblocker(fifo)
        t.join(10)
    assert not blocked and result == [None]


@pytest.mark.slow
def test_fifos_and_sockets_are_skipped_without_being_opened(tmp_path, mini_encoder):
    root = tmp_path / "photos"
    root.mkdir()
    _png(root / "ok.png")
    os.mkfifo(root / "p")
    os.mkfifo(root / "named-like.png")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "s.png"))
    outcome = []
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        t = threading.Thread(target=lambda: outcome.append(lib.index([root])), daemon=True)
        t.start()
        t.join(120)
        if t.is_alive():
            for name in ("p", "named-like.png"):
                _fifo_unblocker(root / name)
            t.join(60)
        sock.close()
        assert len(outcome) == 1, "the job hung on a special file"
        job = outcome[0]
        assert (job["state"], job["total"], job["new"], job["errors"]) == ("done", 1, 1, 0)
        assert set(_rows(lib)) == {str(root / "ok.png")}
        assert "skipped special files (FIFOs, sockets, devices): 3" in job["message"]


@pytest.mark.slow
def test_symlinks_leading_out_of_the_root_are_not_indexed_those_inside_are(tmp_path, mini_encoder):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    _png(outside / "secret.png", (0, 0, 255))
    _png(root / "sub" / "real.png")
    (root / "to-secret.png").symlink_to(outside / "secret.png")
    (root / "to-secret-relative.png").symlink_to(Path("..") / "secret" / "secret.png")
    (root / "secret-folder").symlink_to(outside, target_is_directory=True)
    (root / "to-real.png").symlink_to(root / "sub" / "real.png")  # inside the root: indexed as today
    (root / "dangling.png").symlink_to(tmp_path / "gone.png")
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        job = lib.index([root])
        assert (job["state"], job["total"], job["new"], job["errors"]) == ("done", 2, 2, 0)
        assert set(_rows(lib)) == {str(root / "sub" / "real.png"), str(root / "to-real.png")}
        assert "skipped symlinks that lead out of the indexed folders: 3" in job["message"]
        # A link indexed before (as this version's predecessor did) is dropped on the next run.
        with lib.store.session() as s:
            s.add(Media(path=str(root / "to-secret.png"), root=str(root), kind="image", size=1, mtime=0))
        again = lib.index([root])
        assert (again["deleted"], again["unchanged"]) == (1, 2)
        assert set(_rows(lib)) == {str(root / "sub" / "real.png"), str(root / "to-real.png")}
        # A link into another root of the same job stays inside the job: indexed.
        both = lib.index([root, outside])
        assert (both["state"], both["new"]) == ("done", 3)
        assert set(_rows(lib)) == {
            str(root / "sub" / "real.png"),
            str(root / "to-real.png"),
            str(outside / "secret.png"),
            str(root / "to-secret.png"),
            str(root / "to-secret-relative.png"),
        }
