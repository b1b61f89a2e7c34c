"""Replicas on shared state: two `mmsearch serve` processes, each with a library folder of its
own (its own FAISS files, caught up from SQL), on one PostgreSQL database. What is written
through one (an index job, a generated image, its deletion) the other answers within the bound
docs/SCALING.md states: a replica looks for new commits at most once a second, on a search."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ..helpers import POSTGRES_URL, free_port, make_corpus, new_postgres_database, wait_healthy

pytestmark = [
    pytest.mark.slow,  # two servers, each loading torch and the model
    pytest.mark.skipif(not POSTGRES_URL, reason="set MMSEARCH_TEST_POSTGRES_URL (.ci/run does)"),
]

REFRESH_S = 1.0  # how often a replica looks for other replicas' commits (IndexSet._refresh)
# The bound asserted: the refresh, then reading the new rows and adding them, on 2 busy cores.
VISIBLE_WITHIN_S = REFRESH_S + 9.0
QUERY = {"text": "a red circle", "k": 5}


def _serve(library: Path, database: str, roots: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {
        "MMSEARCH_DATABASE_URL": database,
        "MMSEARCH_INDEX_ROOTS": str(roots),
        "MMSEARCH_DECODE_WORKERS": "0",
        "MMSEARCH_BATCH_SIZE": "16",
    }
    cmd = [sys.executable, "-m", "mmsearch", "serve", "--library", str(library), "--port", str(port)]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ), f"http://127.0.0.1:{port}"


def _hits(url: str, body: dict = QUERY) -> list[tuple[int, float]]:
    results = httpx.post(url + "/search", json=body, timeout=60).json()["results"]
    return [(h["id"], round(h["score"], 5)) for h in results]


def _seen_within(check, bound_s: float) -> float:
    """Seconds until check() held (asked every 0.1 s); fails past bound_s."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < bound_s, f"not visible within {bound_s} s"
        time.sleep(0.1)
    return time.monotonic() - t0


def _finished(url: str, job_id: int) -> dict:
    deadline = time.monotonic() + 300
    while (job := httpx.get(f"{url}/jobs/{job_id}", timeout=10).json())["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return job


def test_two_replicas_on_one_postgresql_library_answer_each_others_writes(tmp_path):
    make_corpus(tmp_path / "photos", n=30, seed=3)
    make_corpus(tmp_path / "more", n=12, seed=4)
    database = new_postgres_database()
    servers = [_serve(tmp_path / name, database, tmp_path) for name in ("replica-a", "replica-b")]
    try:
        (a_server, a), (b_server, b) = servers
        wait_healthy(a, a_server)
        wait_healthy(b, b_server)

        # An index job through A: B answers its media, with the same results as A.
        job = _finished(a, httpx.post(a + "/jobs", json={"roots": [str(tmp_path / "photos")]}).json()["id"])
        assert (job["state"], job["new"]) == ("done", 30)
        _seen_within(lambda: len(_hits(b)) == 5, VISIBLE_WITHIN_S)
        assert _hits(b) == _hits(a)
        assert httpx.get(b + "/health").json()["media"] == 30

        # A second job through B: A answers what it added (new best matches included).
        job = _finished(b, httpx.post(b + "/jobs", json={"roots": [str(tmp_path / "more")]}).json()["id"])
        assert (job["state"], job["new"]) == ("done", 12)
        _seen_within(lambda: httpx.get(a + "/health").json()["media"] == 42 and _hits(a) == _hits(b), VISIBLE_WITHIN_S)

        # A generated image through A, then its deletion: B answers it, then no longer does.
        drawn = httpx.post(a + "/generate", json={"prompt": "a purple hexagon", "n": 1, "steps": 2}, timeout=300)
        assert drawn.status_code == 200, drawn.text
        (generated,) = [h["id"] for h in drawn.json()["results"]]
        by_id = {"text": "a purple hexagon", "k": 50}
        _seen_within(lambda: generated in {i for i, _ in _hits(b, by_id)}, VISIBLE_WITHIN_S)
        assert httpx.delete(f"{a}/media/{generated}").json() == {"deleted": [generated]}
        _seen_within(lambda: generated not in {i for i, _ in _hits(b, by_id)}, VISIBLE_WITHIN_S)
        assert httpx.get(f"{b}/media/{generated}").status_code == 404
        assert _hits(b) == _hits(a)
        for server, _ in servers:
            server.terminate()
            # Stopped within the bound; uvicorn re-raises SIGTERM once it has shut down gracefully.
            assert server.wait(60) == -signal.SIGTERM
    finally:
        for server, _ in servers:
            server.terminate()
        for server, _ in servers:
            server.wait(60)
