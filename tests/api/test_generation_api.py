"""Generation over HTTP: a prior and decoder trained (briefly) on a real indexed library
(the `trained` fixture, tests/conftest.py), served by uvicorn on loopback. The models are too
briefly trained to draw well; these tests check the mechanics users rely on, not picture
quality (eval-generation does)."""

import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer

from ..helpers import open_library

pytestmark = pytest.mark.slow  # every test here uses a trained generator over a built library


@pytest.fixture(scope="module")
def served(trained, mini_encoder):
    base, gen_dir = trained
    # A threshold no text query reaches: every query is a miss.
    lib = open_library(base / "lib", encoder=mini_encoder, generator=f"mini:{gen_dir}", miss_threshold=0.99)
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        yield client, lib
    lib.close()


def test_a_miss_generates_a_servable_image_and_a_repeat_hits_the_stored_one(served, generated_count):
    client, lib = served
    before = generated_count(lib)
    body = {"text": "a green star", "kind": "image", "generate": "auto", "generation": {"steps": 3, "seed": 1}}
    first = client.post("/search", json=body).json()
    assert first["miss"] is True and first["via"] == "generated"
    assert [s["stage"] for s in first["stages"]][-1] == "generated"
    hit = first["results"][0]
    assert hit["generated"] is True and hit["via"] == "generated"
    served_file = client.get(hit["file_url"])
    assert served_file.status_code == 200
    assert Image.open(io.BytesIO(served_file.content)).size == (128, 128)
    media = client.get(f"/media/{hit['id']}").json()
    assert media["generated"] is True
    assert media["generation"]["prompt"] == "a green star" and media["generation"]["seed"] == 1
    assert media["generation"]["steps"] == 3 and media["generation"]["sampler"] == "ddim"
    # no guidance asked for: the record names the one the decoder drew with, its config's default
    assert media["generation"]["guidance"] == lib.generator.decoder.cfg.guidance

    again = client.post("/search", json=body).json()
    assert [h["id"] for h in again["results"]] == [hit["id"]]
    assert generated_count(lib) == before + 1


def test_generate_never_does_not_generate(served, generated_count):
    client, lib = served
    before = generated_count(lib)
    body = client.post("/search", json={"text": "a purple cross", "kind": "image", "generate": "never"}).json()
    assert body["miss"] is True and body["via"] == "text"
    assert len(body["results"]) == 10
    assert generated_count(lib) == before


@pytest.mark.parametrize(
    "generation",
    [{"steps": 0}, {"steps": 5000}, {"guidance": -1}, {"guidance": 51}, {"sampler": "euler"}, {"n": 0}, {"seed": -1}],
)
def test_bad_generation_settings_answer_422(served, generation, generated_count):
    client, lib = served
    before = generated_count(lib)
    r = client.post("/search", json={"text": "a green star", "generate": "always", "generation": generation})
    assert r.status_code == 422
    r = client.post("/generate", json={"prompt": "a green star", **generation})
    assert r.status_code == 422
    assert generated_count(lib) == before


def test_a_drawing_over_the_step_budget_is_refused_before_it_is_queued(served, generated_count):
    client, lib = served
    before = generated_count(lib)
    budget = lib.settings.generate_step_budget
    lib.settings.generate_step_budget = 10
    try:
        over = {"prompt": "a green star", "n": 4, "steps": 3, "sampler": "ddim"}
        r = client.post("/generate", json=over)
        assert r.status_code == 422
        assert r.json()["detail"].startswith("4 image(s) x 3 ddim steps = 12 denoising steps, over this server's 10")
        body = {"text": "a green star", "generate": "auto", "generation": {"n": 4, "steps": 3, "sampler": "ddim"}}
        assert client.post("/search", json=body).status_code == 422
        ddpm = {"from_media_id": 1, "steps": 2, "sampler": "ddpm"}  # DDPM: the whole schedule, whatever steps say
        assert "ddpm steps" in client.post("/generate", json=ddpm).json()["detail"]
        assert client.post("/generate", json={**over, "n": 3}).status_code == 200  # 9 steps: within it
    finally:
        lib.settings.generate_step_budget = budget
    assert generated_count(lib) == before + 3


def test_generate_endpoint_prompt_variation_edit_and_interpolation(served):
    client, lib = served
    made = client.post(
        "/generate", json={"prompt": "a blue square", "n": 2, "steps": 2, "seed": 5, "guidance": 2.5}
    ).json()["results"]
    assert len(made) == 2 and all(h["generated"] for h in made)
    assert client.get(f"/media/{made[0]['id']}").json()["generation"]["guidance"] == 2.5
    source, other = made[0]["id"], made[1]["id"]
    edit = client.post(
        "/generate", json={"from_media_id": source, "edit": ["blue square", "red square"], "steps": 2, "seed": 6}
    ).json()["results"]
    record = client.get(f"/media/{edit[0]['id']}").json()["generation"]
    assert record["source"] == {"media_id": source, "edit": ["blue square", "red square"]}
    mixed = client.post(
        "/generate", json={"from_media_id": source, "interpolate": {"media_id": other, "alpha": 0.3}, "steps": 2}
    ).json()["results"]
    assert client.get(f"/media/{mixed[0]['id']}").json()["generation"]["source"] == {
        "media_id": source,
        "interpolate": other,
        "alpha": 0.3,
    }
    assert client.post("/generate", json={"prompt": "x", "from_media_id": source}).status_code == 422
    assert client.post("/generate", json={"from_media_id": 10**9, "steps": 2}).status_code == 404


def test_deleting_a_generated_image_lets_the_next_miss_draw_anew(served):
    client, lib = served
    body = {"text": "a pink hexagon", "kind": "image", "generate": "auto", "generation": {"steps": 2, "seed": 7}}
    drawn = client.post("/search", json=body).json()["results"][0]
    path = client.get(f"/media/{drawn['id']}").json()["path"]
    assert client.get(drawn["thumbnail_url"]).status_code == 200  # cached on disk
    assert client.delete(f"/media/{drawn['id']}").json() == {"deleted": [drawn["id"]]}
    assert client.get(f"/media/{drawn['id']}").status_code == 404
    assert not Path(path).exists() and not list((lib.dir / "thumbnails").glob(f"{drawn['id']}-*"))
    assert client.delete(f"/media/{drawn['id']}").status_code == 404
    found = client.post(
        "/search", json={"text": "a pink hexagon", "generated": True, "generate": "never", "k": 50}
    ).json()
    assert drawn["id"] not in [h["id"] for h in found["results"]]
    again = client.post("/search", json=body).json()
    assert again["stages"][-1]["stage"] == "generated" and again["results"][0]["id"] != drawn["id"]


def test_media_from_the_library_folders_are_not_deleted(served):
    client, lib = served
    indexed = client.post(
        "/search", json={"text": "a red circle", "generated": False, "generate": "never", "k": 1}
    ).json()["results"][0]
    r = client.delete(f"/media/{indexed['id']}")
    assert r.status_code == 409 and "came from your folders" in r.json()["detail"]
    assert client.get(indexed["file_url"]).status_code == 200 and Path(indexed["path"]).is_file()


def test_without_a_trained_generator_auto_still_answers_and_always_is_503(trained, mini_encoder, tmp_path):
    base, _ = trained
    lib = open_library(
        base / "lib", encoder=mini_encoder, generator=f"mini:{tmp_path / 'nothing'}", miss_threshold=0.99
    )
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        auto = client.post("/search", json={"text": "a green star", "generate": "auto"})
        assert auto.status_code == 200 and auto.json()["miss"] is True
        assert "cannot be used" in auto.json()["stages"][-1]["error"]
        always = client.post("/search", json={"text": "a green star", "generate": "always"})
        assert always.status_code == 503 and "prior_config.json is missing" in always.json()["detail"]
    lib.close()


def test_searches_answer_while_a_drawing_runs(served):
    """Drawing runs off the search path: a long drawing (250 DDIM steps, seconds) holds no lock
    that searches need. (Before, one lock held every search until the drawing was stored.)"""
    import threading

    client, lib = served
    drawing = threading.Thread(
        target=lambda: client.post("/generate", json={"prompt": "a slow brown cross", "n": 2, "steps": 250, "seed": 3})
    )
    drawing.start()
    answered_during = 0
    try:
        for _ in range(200):
            if not drawing.is_alive():
                break
            r = client.post("/search", json={"text": "a red circle", "kind": "image", "generate": "never"})
            assert r.status_code == 200 and r.json()["results"]
            answered_during += drawing.is_alive()
    finally:
        drawing.join(120)
    assert answered_during >= 3
