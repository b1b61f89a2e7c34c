"""Changing a served library's model without downtime: /models adds a second model while
searches go on (every answer full, no error, the same media ids), switches to it once
complete, and drops the first. Changing models needs keys."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.storage.index_set import space_slug
from mmsearch.storage.store import Vector

from ..helpers import make_corpus, open_library, perturbed_mini

pytestmark = pytest.mark.slow  # serves a library while a second model embeds it

KEY = "k" * 16
HEADERS = {"X-API-Key": KEY}


@pytest.fixture
def served(tmp_path, mini_encoder, videos):
    root = tmp_path / "photos"
    make_corpus(root, n=60, seed=4)
    lib = open_library(tmp_path / "lib", encoder=mini_encoder, generator="none", api_keys=[KEY])
    lib.index([root, videos[0]])
    model_b = str(perturbed_mini(tmp_path / "mini-b"))
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        yield client, lib, model_b
    lib.close()


def test_a_model_is_added_switched_to_and_the_old_one_dropped_while_searches_go_on(served):
    client, lib, model_b = served
    body = {"text": "a red circle", "k": 10}
    first = client.post("/search", json=body).json()["results"]
    ids = {h["id"] for h in client.post("/search", json={**body, "k": 100}).json()["results"]}
    space_a = client.get("/health").json()["space"]

    answers, stop = [], threading.Event()

    def search_every_fifth_of_a_second() -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=60) as searcher:
            while not stop.is_set():
                r = searcher.post("/search", json=body)
                answers.append((r.status_code, [h["id"] for h in r.json().get("results", [])]))
                time.sleep(0.2)

    searcher = threading.Thread(target=search_every_fifth_of_a_second)
    searcher.start()
    job = client.post("/models", json={"spec": model_b}, headers=HEADERS)
    assert job.status_code == 202 and job.json()["state"] in ("pending", "running")
    while (state := client.get(f"/jobs/{job.json()['id']}").json())["state"] in ("pending", "running"):
        time.sleep(0.2)
    stop.set()
    searcher.join(60)
    assert state["state"] == "done" and state["done"] == state["total"] == 68 and state["errors"] == 0
    # Searches through the whole re-embed: each answered, full, from the same media.
    assert len(answers) >= 5
    assert all(status == 200 and len(hits) == 10 and set(hits) <= ids for status, hits in answers)
    assert answers[-1][1] == [h["id"] for h in first]

    models = {m["spec"]: m for m in client.get("/models").json()}
    assert models[model_b]["coverage"] == 1.0 and not models[model_b]["active"] and models["mini"]["active"]
    switched = client.post("/models/use", json={"spec": model_b}, headers=HEADERS)
    assert switched.status_code == 200 and [m["spec"] for m in switched.json() if m["active"]] == [model_b]
    health = client.get("/health").json()
    assert (health["model"], health["space"]) == (model_b, models[model_b]["space"])
    after = client.post("/search", json=body).json()["results"]
    assert len(after) == 10 and {h["id"] for h in after} <= ids
    assert [(h["id"], h["score"]) for h in after] != [(h["id"], h["score"]) for h in first]

    assert client.post("/models/drop", json={"spec": model_b}, headers=HEADERS).status_code == 409  # active
    dropped = client.post("/models/drop", json={"spec": "mini"}, headers=HEADERS)
    assert dropped.status_code == 200 and dropped.json()["vectors"] == sum(models["mini"]["vectors"].values())
    assert lib.store.count(Vector, Vector.space.startswith(space_a)) == 0
    assert not [p for p in (lib.dir / "indexes").iterdir() if p.name.startswith(space_slug(space_a))]
    assert [m["spec"] for m in client.get("/models").json()] == [model_b]
    assert [h["id"] for h in client.post("/search", json=body).json()["results"]] == [h["id"] for h in after]


def test_managing_models_needs_a_key_and_says_what_is_wrong(served):
    client, lib, model_b = served
    assert client.post("/models", json={"spec": model_b}).status_code == 401
    assert client.post("/models/use", json={"spec": model_b}).status_code == 401
    r = client.post("/models/use", json={"spec": model_b}, headers=HEADERS)
    assert r.status_code == 404 and "no vectors of model" in r.json()["detail"]
    r = client.post("/models/drop", json={"spec": "mini"}, headers=HEADERS)
    assert (r.status_code, r.json()["detail"]) == (
        409,
        "'mini' is the library's active model: switch to another before dropping it",
    )
    r = client.post("/models", json={"spec": "mini"}, headers=HEADERS)
    assert (r.status_code, r.json()["detail"]) == (409, "'mini' is already the library's model")
    assert client.post("/models", json={"spec": ""}, headers=HEADERS).status_code == 422
    r = client.post("/models", json={"spec": "/no/such/model"}, headers=HEADERS)
    assert r.status_code == 400  # a model that cannot be loaded
    assert [m["spec"] for m in client.get("/models").json()] == ["mini"]


def test_a_server_without_keys_refuses_to_manage_models(tmp_path, mini_encoder):
    lib = open_library(tmp_path / "lib", encoder=mini_encoder, generator="none")
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url) as client:
        r = client.post("/models", json={"spec": "mini"})
        assert (r.status_code, r.json()["detail"]) == (
            403,
            "managing models over HTTP needs API keys (set MMSEARCH_API_KEYS)",
        )
        assert client.get("/models").json() == []  # nothing indexed: no model recorded yet
    lib.close()


def test_jobs_say_their_task(served):
    client, lib, model_b = served
    job = client.post("/models", json={"spec": model_b}, headers=HEADERS).json()
    assert (job["task"], job["roots"], job["space"]) == ("add-model", [], lib._models.candidate(model_b).space)
    while client.get(f"/jobs/{job['id']}").json()["state"] in ("pending", "running"):
        time.sleep(0.2)
    assert [j["task"] for j in client.get("/jobs").json()] == ["add-model", "index"]
