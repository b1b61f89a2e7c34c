"""POST /jobs with the Ray runner: the job runs on a real local Ray started by the server."""

import time

import httpx
import pytest

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.storage.store import Vector

from ..helpers import make_corpus, open_library

ray = pytest.importorskip("ray", reason="Ray is in the dev extra")


@pytest.fixture
def served(tmp_path, mini_encoder):
    lib = open_library(tmp_path / "lib", encoder=mini_encoder, index_roots=[tmp_path])
    try:
        with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
            yield client, lib
    finally:
        lib.close()
        ray.shutdown()  # the server's process started it


@pytest.mark.slow
def test_an_index_job_over_http_runs_on_ray(served, tmp_path):
    client, lib = served
    make_corpus(tmp_path / "photos", n=12, seed=99)
    r = client.post("/jobs", json={"roots": [str(tmp_path / "photos")], "runner": "ray"})
    assert r.status_code == 202, r.text
    deadline = time.time() + 300
    while (job := client.get(f"/jobs/{r.json()['id']}").json())["state"] not in ("done", "failed"):
        assert time.time() < deadline
        time.sleep(0.2)
    assert (job["state"], job["new"], job["errors"]) == ("done", 12, 0)
    assert ray.is_initialized()  # it ran there, not in local processes
    assert lib.store.count(Vector) == 12
    hits = client.post("/search", json={"text": "circle", "k": 3}).json()["results"]
    assert len(hits) == 3


def test_a_runner_is_refused_for_an_import_and_when_unknown(served, tmp_path):
    client, _ = served
    r = client.post("/jobs", json={"kind": "import", "roots": [str(tmp_path)], "runner": "ray"})
    assert r.status_code == 422 and "runner applies to index jobs only" in r.text
    r = client.post("/jobs", json={"roots": [str(tmp_path)], "runner": "spark"})
    assert r.status_code == 422 and "local" in r.text
