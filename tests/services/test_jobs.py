"""services.jobs: which folders a job walks, its pipeline settings, and its summaries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmsearch.config import Settings
from mmsearch.indexer.job_runs import create_job
from mmsearch.indexer.pipeline import PipelineConfig, default_decode_workers
from mmsearch.services.jobs import (
    RECENT_JOB_ERRORS,
    BadRootError,
    RootNotAllowedError,
    job_roots,
    job_with_errors,
    outermost,
    pipeline_config,
    recent_jobs,
)
from mmsearch.storage.store import JobError, Store
from tests.helpers import store_url


def test_outermost_drops_roots_inside_other_roots_and_repeats():
    paths = [Path("/m/b/deep"), Path("/m/a"), Path("/m/b"), Path("/m/a/x/y"), Path("/m/a"), Path("/m/ab")]
    assert outermost(paths) == [Path("/m/a"), Path("/m/ab"), Path("/m/b")]


def test_outermost_keeps_siblings_and_a_lone_root():
    assert outermost([Path("/m/c"), Path("/m/a")]) == [Path("/m/a"), Path("/m/c")]
    assert outermost([Path("/m")]) == [Path("/m")]


def test_job_roots_resolve_and_de_nest(tmp_path, monkeypatch):
    (tmp_path / "photos" / "2024").mkdir(parents=True)
    (tmp_path / "clips").mkdir()
    monkeypatch.chdir(tmp_path)
    roots = ["photos/2024", tmp_path / "clips", "photos", "./photos/../photos"]
    assert job_roots(roots) == [(tmp_path / "clips").resolve(), (tmp_path / "photos").resolve()]


def test_job_roots_refuse_what_is_not_a_folder(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"a\.jpg is not a folder"):
        job_roots([tmp_path, tmp_path / "a.jpg"])
    with pytest.raises(FileNotFoundError, match="missing is not a folder"):
        job_roots([tmp_path / "missing"])


@pytest.mark.parametrize(
    ("root", "reason"),
    [
        ("/tmp/a\x00b", r"^/tmp/a\\x00b cannot be indexed: it holds a NUL character$"),
        ("/tmp/\udcff", r"^/tmp/\\xff cannot be indexed: its name is not valid UTF-8$"),  # the byte it escapes
        ("/tmp/" + "x" * 5000, r"^/tmp/x{192}\.\.\. cannot be indexed: File name too long$"),
        ("~nosuchuser/x", r"^~nosuchuser/x cannot be indexed: no such user's home folder$"),
    ],
)
def test_job_roots_refuse_names_no_folder_can_have_with_a_printable_reason(root, reason):
    with pytest.raises(BadRootError, match=reason) as caught:
        job_roots([root])
    assert isinstance(caught.value, FileNotFoundError)  # the CLI and the API answer it as a missing folder
    str(caught.value).encode("utf-8")  # JSON-safe


def test_job_roots_refuse_a_link_to_a_folder_whose_name_is_not_utf8(tmp_path):
    bad = os.path.join(os.fsencode(tmp_path), b"bad\xff")
    os.mkdir(bad)
    (tmp_path / "ok").symlink_to(os.fsdecode(bad), target_is_directory=True)
    with pytest.raises(BadRootError, match=r"ok cannot be indexed: it leads to .*/bad\\xff, whose name is not valid"):
        job_roots([tmp_path / "ok"])


def test_job_roots_under_allowed_folders_only_absolute_inside_and_existing(tmp_path, monkeypatch):
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    (allowed / "photos").mkdir(parents=True)
    other.mkdir()
    (allowed / "escape").symlink_to(other, target_is_directory=True)
    monkeypatch.chdir(allowed)
    assert job_roots([str(allowed / "photos"), str(allowed)], allowed=[allowed]) == [allowed.resolve()]
    for relative in ("", ".", "photos", "~", "~/photos"):
        with pytest.raises(BadRootError, match="is not an absolute path"):
            job_roots([relative], allowed=[allowed])
    with pytest.raises(BadRootError, match="^an empty root is not an absolute path"):
        job_roots([""], allowed=[allowed])
    for outside in (other, allowed / "escape", allowed / ".." / "other", "/"):
        with pytest.raises(RootNotAllowedError, match="outside the folders MMSEARCH_INDEX_ROOTS allows"):
            job_roots([str(outside)], allowed=[allowed])
    with pytest.raises(FileNotFoundError, match=r"/allowed/missing is not a folder$"):
        job_roots([str(allowed / "missing")], allowed=[allowed])
    # Outside the allowed folders, a missing folder is refused as an existing one is: a client
    # cannot tell which exist. (Before: "is not a folder", a 400, for the missing ones only.)
    with pytest.raises(RootNotAllowedError, match="outside the folders MMSEARCH_INDEX_ROOTS allows"):
        job_roots(["/no/such/folder"], allowed=[allowed])
    with pytest.raises(RootNotAllowedError, match=r"MMSEARCH_INDEX_ROOTS is empty"):
        job_roots([str(allowed)], allowed=[])
    with pytest.raises(RootNotAllowedError, match=r"MMSEARCH_INDEX_ROOTS is empty"):
        job_roots(["/no/such/folder"], allowed=[])
    with pytest.raises(FileNotFoundError, match=r"^/no/such/folder is not a folder$"):
        job_roots(["/no/such/folder"])  # the CLI: not restricted, so told what is missing
    assert isinstance(RootNotAllowedError("x"), PermissionError)


def test_index_roots_setting_is_a_comma_separated_list_of_absolute_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSEARCH_INDEX_ROOTS", f"{tmp_path}/a, {tmp_path}/b ,")
    assert Settings().index_roots == [tmp_path / "a", tmp_path / "b"]
    monkeypatch.setenv("MMSEARCH_INDEX_ROOTS", "")
    assert Settings().index_roots == []
    monkeypatch.delenv("MMSEARCH_INDEX_ROOTS")
    assert Settings().index_roots == []
    with pytest.raises(ValueError, match="absolute"):
        Settings(index_roots=["relative/photos"])


def test_pipeline_config_workers_asked_then_configured_then_per_machine(tmp_path):
    configured = Settings(library_dir=tmp_path, batch_size=16, decode_workers=3, max_pixels=1000)
    assert pipeline_config(configured, 1) == PipelineConfig(workers=1, batch_size=16, max_pixels=1000)
    assert pipeline_config(configured) == PipelineConfig(workers=3, batch_size=16, max_pixels=1000)
    unset = Settings(library_dir=tmp_path, batch_size=8, decode_workers=None, max_pixels=1000)
    assert pipeline_config(unset) == PipelineConfig(workers=default_decode_workers(), batch_size=8, max_pixels=1000)
    assert pipeline_config(unset, 0).workers == 0


@pytest.fixture()
def store(tmp_path):
    store = Store(store_url(tmp_path))
    yield store
    store.close()


def test_recent_jobs_newest_first_and_limited(store, tmp_path):
    ids = [create_job(store, [tmp_path / str(i)], "space-a") for i in range(3)]
    jobs = recent_jobs(store, limit=2)
    assert [j["id"] for j in jobs] == ids[::-1][:2]
    assert jobs[0]["roots"] == [str(tmp_path / "2")] and jobs[0]["state"] == "pending"
    assert "recent_errors" not in jobs[0]


def test_job_with_errors_lists_the_latest_errors_oldest_first(store, tmp_path):
    job_id = create_job(store, [tmp_path], "space-a")
    other = create_job(store, [tmp_path], "space-a")
    with store.session() as s:
        s.add_all([JobError(job_id=job_id, path=f"/m/{i}.jpg", error=f"bad {i}") for i in range(RECENT_JOB_ERRORS + 5)])
        s.add(JobError(job_id=other, path="/m/other.jpg", error="elsewhere"))
    summary = job_with_errors(store, job_id)
    assert summary["id"] == job_id
    assert summary["recent_errors"] == [
        {"path": f"/m/{i}.jpg", "error": f"bad {i}"} for i in range(5, RECENT_JOB_ERRORS + 5)
    ]
    assert job_with_errors(store, other)["recent_errors"] == [{"path": "/m/other.jpg", "error": "elsewhere"}]
    assert job_with_errors(store, other + 1) is None
