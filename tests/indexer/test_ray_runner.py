"""The Ray runner (indexer/ray_runner.py) against a real local Ray: the same library as the local
runner, a killed driver resumed with nothing doubled, and clear refusals without Ray.

The jobs run as `mmsearch index` children, each starting its own local Ray and leaving none
behind in the test process. Both runners' encoders run on one thread (OMP_NUM_THREADS=1): an
encoder's float results depend on its thread count for some batch shapes, and Ray gives an
actor of one CPU one thread."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from mmsearch.datasets import synth
from mmsearch.indexer.runners import check_runner
from mmsearch.search.query import SearchRequest, parse_text
from mmsearch.storage.store import JobError, Media, Segment, Vector, decode_embeddings

from ..helpers import child_env, library_exists, make_corpus, open_library

pytest.importorskip("ray", reason="Ray is in the dev extra")

QUERIES = ["red circle", "a large blue square", "yellow star in the top left", "a small green triangle"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MMSEARCH_BATCH_SIZE": "8", "MMSEARCH_DECODE_WORKERS": "0"}


def _index(root: Path, library: Path, runner: str, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mmsearch", "index", str(root), "--library", str(library), "--runner", runner]
    env = child_env(library, ENV)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def _indexed(root: Path, library: Path, runner: str) -> None:
    child = _index(root, library, runner)
    out, _ = child.communicate(timeout=900)
    assert child.returncode == 0, out


def _vectors(library: Path) -> dict[tuple, np.ndarray]:
    """Every vector row by (path, kind, frame time, its segment's start)."""
    with open_library(library) as lib, lib.store.session() as s:
        rows = s.execute(
            select(Media.path, Vector.kind, Vector.t, Segment.t_start, Vector.embedding, Vector.dim)
            .join(Vector, Vector.media_id == Media.id)
            .outerjoin(Segment, Segment.id == Vector.segment_id)
        ).all()
    return {(path, kind, t, start): decode_embeddings([e], dim)[0] for path, kind, t, start, e, dim in rows}


def _count(library: Path) -> int:
    with open_library(library) as lib:
        return lib.store.count(Vector)


def _top5(library: Path) -> list[list[str]]:
    with open_library(library) as lib:
        return [[h.path for h in lib.search(SearchRequest(terms=parse_text(q), k=5))] for q in QUERIES]


@pytest.fixture(scope="module")
def mixed_corpus(tmp_path_factory) -> Path:
    """Images, videos and a file that is not media."""
    root = tmp_path_factory.mktemp("ray") / "media"
    make_corpus(root / "photos", n=60, seed=5)
    synth.generate(root / "clips", 0, 3, seed=21, split="train")
    (root / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return root


@pytest.mark.slow
def test_the_ray_runner_makes_the_library_the_local_runner_makes(mixed_corpus, tmp_path):
    _indexed(mixed_corpus, tmp_path / "local", "local")
    _indexed(mixed_corpus, tmp_path / "ray", "ray")

    local, ray = _vectors(tmp_path / "local"), _vectors(tmp_path / "ray")
    assert sorted(local) == sorted(ray)
    assert [_count(tmp_path / name) for name in ("local", "ray")] == [len(local)] * 2  # no row twice
    assert {kind for _, kind, _, _ in local} == {"image", "frame", "segment", "video"}
    assert max(float(np.abs(local[key] - ray[key]).max()) for key in local) < 1e-5
    assert _top5(tmp_path / "local") == _top5(tmp_path / "ray")
    with open_library(tmp_path / "ray") as lib, lib.store.session() as s:
        errors = list(s.scalars(select(JobError.path)))
        videos = list(s.scalars(select(Media.path).where(Media.kind == "video")))
    assert errors == [str(mixed_corpus / "photos" / "broken.jpg")]
    assert len(videos) == 3
    assert sorted(p.name for p in (tmp_path / "ray" / "keyframes").rglob("*.jpg")) == sorted(
        p.name for p in (tmp_path / "local" / "keyframes").rglob("*.jpg")
    )


@pytest.mark.slow
def test_a_ray_job_killed_mid_way_resumes_and_indexes_everything_exactly_once(tmp_path):
    root = tmp_path / "photos"
    make_corpus(root, n=240, seed=21)
    killed = tmp_path / "killed"
    # A session of its own: Ray's helper processes of the killed driver go with its group.
    child = _index(root, killed, "ray", start_new_session=True)
    deadline, committed = time.time() + 600, 0
    while time.time() < deadline and child.poll() is None and committed < 40:
        if library_exists(killed):
            with open_library(killed) as lib:
                committed = lib.store.count(Vector)
        time.sleep(0.2)
    assert child.poll() is None, "the job finished before it could be killed"
    os.killpg(child.pid, signal.SIGKILL)
    child.communicate()
    with open_library(killed) as lib:
        assert 0 < lib.store.count(Vector) < 240
    _indexed(root, killed, "ray")
    _indexed(root, tmp_path / "clean", "local")

    files = sorted(str(p) for p in root.rglob("*") if p.suffix in (".png", ".jpg"))
    with open_library(killed) as lib:
        with lib.store.session() as s:
            paths = sorted(s.scalars(select(Media.path)))
            vector_ids = sorted(s.scalars(select(Vector.id)))
            per_media = dict(s.execute(select(Vector.media_id, func.count()).group_by(Vector.media_id)).all())
            states = list(s.scalars(select(Media.error)))
        assert paths == files
        assert len(per_media) == len(files) and set(per_media.values()) == {1}
        assert states == [None] * len(files)
        assert sorted(lib.indexes.get("image").ids().tolist()) == vector_ids
    assert _top5(killed) == _top5(tmp_path / "clean")


def test_an_unknown_runner_is_refused_before_a_job_is_queued(tmp_path):
    with pytest.raises(ValueError, match="unknown runner 'spark'; use one of local, ray"):
        check_runner("spark")
    child = subprocess.run(
        [sys.executable, "-m", "mmsearch", "index", str(tmp_path), "--library", str(tmp_path / "lib")]
        + ["--runner", "spark"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 2
    assert "runner" in child.stdout + child.stderr and "'local' or 'ray'" in child.stdout + child.stderr
    assert not (tmp_path / "lib").exists()  # refused before the library was opened


def _job_count(library: Path) -> int:
    from mmsearch.storage.store import Job

    with open_library(library) as lib:
        return lib.store.count(Job)


# `mmsearch index` where `import ray` fails, as on an install without the ray extra.
WITHOUT_RAY = """
import sys
sys.modules["ray"] = None
from mmsearch.cli import app
sys.argv = ["mmsearch", *sys.argv[1:]]
app()
"""


def test_the_ray_runner_without_ray_says_how_to_install_it_and_queues_nothing(tmp_path):
    make_corpus(tmp_path / "photos", n=2)
    child = subprocess.run(
        [sys.executable, "-c", WITHOUT_RAY, "index", str(tmp_path / "photos"), "--library", str(tmp_path / "lib")]
        + ["--runner", "ray"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 2, child.stdout + child.stderr
    assert "the ray runner needs Ray: pip install 'mmsearch[ray]'" in child.stdout + child.stderr
    assert _job_count(tmp_path / "lib") == 0
