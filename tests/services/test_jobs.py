"""services.jobs: which folders a job walks, its pipeline settings, and its summaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsearch.config import Settings
from mmsearch.indexer.jobs import create_job
from mmsearch.indexer.pipeline import PipelineConfig, default_decode_workers
from mmsearch.services.jobs import (
    RECENT_JOB_ERRORS,
    job_roots,
    job_with_errors,
    outermost,
    pipeline_config,
    recent_jobs,
)
from mmsearch.storage.store import JobError, Store


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


def test_pipeline_config_workers_asked_then_configured_then_per_machine(tmp_path):
    configured = Settings(library_dir=tmp_path, batch_size=16, decode_workers=3, max_pixels=1000)
    assert pipeline_config(configured, 1) == PipelineConfig(workers=1, batch_size=16, max_pixels=1000)
    assert pipeline_config(configured) == PipelineConfig(workers=3, batch_size=16, max_pixels=1000)
    unset = Settings(library_dir=tmp_path, batch_size=8, decode_workers=None, max_pixels=1000)
    assert pipeline_config(unset) == PipelineConfig(workers=default_decode_workers(), batch_size=8, max_pixels=1000)
    assert pipeline_config(unset, 0).workers == 0


@pytest.fixture()
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'lib.db'}")
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
