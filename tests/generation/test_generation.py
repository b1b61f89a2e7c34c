"""Generate on miss end to end: a prior and decoder trained (briefly) on a real indexed
library, served by uvicorn on loopback. The models are too briefly trained to draw well;
these tests check the mechanics users rely on, not picture quality (eval-generation does)."""

import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.cli import app
from mmsearch.generation.decoder import Decoder, DecoderConfig
from mmsearch.generation.prior import DiffusionPrior, PriorConfig, own_image_choice_loss
from mmsearch.generation.unclip import MiniGenerator, slerp, text_diff_edit
from mmsearch.search.query import SearchRequest, parse_text
from mmsearch.services.generate_on_miss import GenerateOptions
from mmsearch.storage.captions import CaptionFinder
from mmsearch.storage.store import Media
from mmsearch.training.diffusion_trainer import DiffusionTrainConfig, train_decoder, train_prior
from mmsearch.training.pairs import library_pairs

from ..helpers import make_corpus, open_library

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mini_encoder):
    """A library of 60 synthetic images and a prior + decoder trained on it for a few steps."""
    torch.set_num_threads(2)
    base = tmp_path_factory.mktemp("gen")
    make_corpus(base / "photos", n=60)
    gen_dir = base / "generator"
    with open_library(base / "lib", encoder=mini_encoder) as lib:
        lib.index([base / "photos"])
        pairs = library_pairs(lib.store, mini_encoder.space)
    quick = DiffusionTrainConfig(steps=20, batch_size=16, checkpoint_every=10)
    train_prior(
        pairs,
        mini_encoder.embed_texts,
        gen_dir,
        base / "work",
        quick,
        PriorConfig(dim=mini_encoder.dim, width=64, layers=2, heads=2, space=mini_encoder.space, choice_weight=2.0),
    )
    train_decoder(
        pairs,
        gen_dir,
        base / "work",
        DiffusionTrainConfig(steps=4, batch_size=8),
        DecoderConfig(dim=mini_encoder.dim, channels=16, space=mini_encoder.space, timestep_sampling="logit_normal"),
        image_features=mini_encoder.image_features,
        consistency_weight=0.1,
    )
    return base, gen_dir


@pytest.fixture(scope="module")
def served(trained, mini_encoder):
    base, gen_dir = trained
    # A threshold no text query reaches: every query is a miss.
    lib = open_library(base / "lib", encoder=mini_encoder, generator=f"mini:{gen_dir}", miss_threshold=0.99)
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        yield client, lib
    lib.close()


def _generated_count(lib) -> int:
    with lib.store.session() as s:
        return s.query(Media).filter(Media.generated.is_(True)).count()


def test_library_pairs_carry_manifest_captions(trained, mini_encoder):
    base, _ = trained
    with open_library(base / "lib", encoder=mini_encoder) as lib:
        pairs = library_pairs(lib.store, mini_encoder.space)
    assert len(pairs) == 60 and pairs.image_embeddings.shape == (60, mini_encoder.dim)
    assert all(pairs.captions) and all(isinstance(c, str) and c for caps in pairs.captions for c in caps)


def test_choice_loss_rewards_picking_the_own_image():
    e = torch.eye(3)
    own = torch.tensor([0])
    assert own_image_choice_loss(e[:1], own, e).item() == pytest.approx(0.0, abs=1e-9)
    between = torch.nn.functional.normalize(e[0] + e[1], dim=0)[None]
    assert own_image_choice_loss(between, own, e).item() == pytest.approx(np.log(2), abs=1e-6)
    assert own_image_choice_loss(e[1:2] * 5, own, e).item() == pytest.approx(30.0, abs=1e-4)


def test_the_prior_loss_adds_the_choice_loss_only_when_weighted():
    torch.manual_seed(0)
    text, image = (torch.nn.functional.normalize(torch.randn(8, 16), dim=-1) for _ in range(2))
    plain = DiffusionPrior(PriorConfig(dim=16, width=32, layers=1, heads=2, cond_drop=0.0))
    weighted = DiffusionPrior(PriorConfig(dim=16, width=32, layers=1, heads=2, cond_drop=0.0, choice_weight=1.0))
    weighted.load_state_dict(plain.state_dict())
    a = plain.loss(text, image, torch.Generator().manual_seed(1), candidates=image, own=torch.arange(8))
    b = weighted.loss(text, image, torch.Generator().manual_seed(1), candidates=image, own=torch.arange(8))
    assert b.item() > a.item() + 0.1  # an untrained prior cannot tell 8 images apart: ~log 8 more


def test_consistency_loss_is_weighted_cosine_distance_to_the_embedding():
    decoder = Decoder(DecoderConfig(dim=3, channels=16))
    colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    x0 = (colours[:, :, None, None].expand(2, 3, 32, 32)) * 2 - 1  # flat images: shifts and blur leave them alike
    target = torch.nn.functional.normalize(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]), dim=-1)
    t = torch.tensor([0, 500])
    mean_colour = lambda pixels: pixels.mean((2, 3))  # noqa: E731  a 3-d "encoder": exact expectations
    got = decoder.consistency_loss(x0, target, t, mean_colour, torch.Generator().manual_seed(0))
    ab = decoder.diffusion.alphas_cumprod
    want = (float(ab[0]) * (1 - 1 / np.sqrt(2)) + float(ab[500]) * 0.0) / 2
    assert got.item() == pytest.approx(want, abs=2e-3)  # the jitter's pixel noise (std 0.02) averages out to ~1e-3


def test_the_consistency_loss_reaches_the_decoder_through_the_frozen_encoder(mini_encoder):
    torch.manual_seed(0)
    decoder = Decoder(DecoderConfig(dim=mini_encoder.dim, channels=16, cond_drop=0.0))
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    embeddings = torch.nn.functional.normalize(torch.randn(4, mini_encoder.dim), dim=-1)

    def grads(weight: float) -> torch.Tensor:
        decoder.zero_grad()
        decoder.loss(
            images, embeddings, torch.Generator().manual_seed(1), mini_encoder.image_features, weight
        ).backward()
        return torch.cat([p.grad.flatten() for p in decoder.parameters() if p.grad is not None])

    assert not torch.allclose(grads(0.0), grads(1.0))
    assert all(p.grad is None for p in mini_encoder.model.parameters())


def test_a_decoder_samples_with_the_guidance_its_saved_config_names(tmp_path):
    torch.manual_seed(0)
    decoder = Decoder(DecoderConfig(dim=8, channels=16, guidance=2.0))
    with torch.no_grad():  # fresh zero-initialised layers would ignore the condition, and guidance with it
        for p in decoder.parameters():
            p.normal_(0, 0.05)
    decoder.save(tmp_path)
    loaded = Decoder.load(tmp_path)
    e = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)

    def draw(guidance):
        return loaded.sample(e, steps=3, guidance=guidance, generator=torch.Generator().manual_seed(1))

    assert loaded.cfg.guidance == 2.0
    assert torch.equal(draw(None), draw(2.0))
    assert not torch.allclose(draw(None), draw(3.0))


def test_sidecar_captions_win_over_the_manifest(tmp_path):
    make_corpus(tmp_path, n=2)
    image = sorted((tmp_path / "images").iterdir())[0]
    assert CaptionFinder()(image, tmp_path)  # from the manifest
    image.with_suffix(".txt").write_text("my own caption\n\nanother one\n")
    assert CaptionFinder()(image, tmp_path) == ["my own caption", "another one"]


def test_a_kept_caption_finder_sees_a_rewritten_manifest(tmp_path):
    make_corpus(tmp_path, n=2)
    image = sorted((tmp_path / "images").iterdir())[0]
    find = CaptionFinder()
    before = find(image, tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for item in manifest["items"]:
        item["captions"] = [f"rewritten {item['file']}"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert before != [f"rewritten images/{image.name}"]
    assert find(image, tmp_path) == [f"rewritten images/{image.name}"]
    (tmp_path / "manifest.json").unlink()
    assert find(image, tmp_path) == []


def test_a_miss_generates_a_servable_image_and_a_repeat_hits_the_stored_one(served):
    client, lib = served
    before = _generated_count(lib)
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
    assert _generated_count(lib) == before + 1


def test_generate_never_does_not_generate(served):
    client, lib = served
    before = _generated_count(lib)
    body = client.post("/search", json={"text": "a purple cross", "kind": "image", "generate": "never"}).json()
    assert body["miss"] is True and body["via"] == "text"
    assert len(body["results"]) == 10
    assert _generated_count(lib) == before


@pytest.mark.parametrize(
    "generation",
    [{"steps": 0}, {"steps": 5000}, {"guidance": -1}, {"guidance": 51}, {"sampler": "euler"}, {"n": 0}, {"seed": -1}],
)
def test_bad_generation_settings_answer_422(served, generation):
    client, lib = served
    before = _generated_count(lib)
    r = client.post("/search", json={"text": "a green star", "generate": "always", "generation": generation})
    assert r.status_code == 422
    r = client.post("/generate", json={"prompt": "a green star", **generation})
    assert r.status_code == 422
    assert _generated_count(lib) == before


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


def test_cli_generate_writes_the_file_and_stores_only_with_save(trained, tmp_path):
    base, gen_dir = trained
    args = [
        "generate",
        "a red star",
        "--steps",
        "2",
        "--seed",
        "3",
        "--library",
        str(base / "lib"),
        "--generator",
        f"mini:{gen_dir}",
    ]
    with open_library(base / "lib") as lib:
        before = _generated_count(lib)
    saved = runner.invoke(app, [*args, "--out", str(tmp_path / "saved.png"), "--save"])
    assert saved.exit_code == 0, saved.output
    stored = int(saved.output.split("stored as media ")[1].split()[0])
    loose = runner.invoke(app, [*args, "--out", str(tmp_path / "loose.png")])  # the same drawing, not stored
    assert loose.exit_code == 0, loose.output
    assert Image.open(tmp_path / "loose.png").size == (128, 128)
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "loose.png")), np.asarray(Image.open(tmp_path / "saved.png"))
    )
    with open_library(base / "lib") as lib:
        assert _generated_count(lib) == before + 1 and lib.media(stored).generated  # the stored twin survives

    refused = runner.invoke(app, ["delete-generated", "1", str(stored), "--library", str(base / "lib")])
    assert refused.exit_code != 0 and "came from your folders" in refused.output
    deleted = runner.invoke(app, ["delete-generated", str(stored), "999999", "--library", str(base / "lib")])
    assert deleted.exit_code == 0 and "deleted 1 generated image(s); no media with id 999999" in deleted.output
    with open_library(base / "lib") as lib:
        assert _generated_count(lib) == before and lib.media(stored) is None


def test_the_prior_stage_answers_before_generating(trained, mini_encoder):
    base, gen_dir = trained
    with open_library(
        base / "lib", encoder=mini_encoder, generator=f"mini:{gen_dir}", miss_threshold=0.99, prior_miss_threshold=-1.0
    ) as lib:
        before = _generated_count(lib)
        outcome = lib.search_or_generate(
            SearchRequest(terms=parse_text("a green star"), k=3, kind="image"),
            "a green star",
            GenerateOptions(mode="auto", steps=2),
        )
        assert outcome.via == "prior" and outcome.miss
        assert len(outcome.hits) == 3
        assert all(h.via == ("generated" if h.generated else "prior") for h in outcome.hits)
        assert _generated_count(lib) == before


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


def test_mini_generator_is_deterministic_for_a_seed(trained, mini_encoder):
    _, gen_dir = trained
    gen = MiniGenerator(mini_encoder, gen_dir)
    a = gen.generate("a red circle", seed=3, steps=3)[0]
    b = gen.generate("a red circle", seed=3, steps=3)[0]
    c = gen.generate("a red circle", seed=4, steps=3)[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    with pytest.raises(ValueError, match="sampler"):
        gen.generate("a red circle", sampler="euler")


def test_query_embeddings_are_the_prior_expected_embedding(trained, mini_encoder):
    """Search uses one deterministic estimate per prompt: the mean of the x0 predictions from
    pure noise at the last step, each normalised, then normalised again."""
    _, gen_dir = trained
    gen = MiniGenerator(mini_encoder, gen_dir)
    prompts = ["a red circle", "a large blue square in the center"]
    q = gen.query_embeddings(prompts)
    assert q.shape == (2, mini_encoder.dim) and np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)
    assert np.array_equal(q, gen.query_embeddings(prompts))
    text = torch.from_numpy(mini_encoder.embed_texts(prompts))
    noise = torch.Generator().manual_seed(0)
    last = torch.full((2,), gen.prior.diffusion.num_steps - 1)
    by_hand = torch.zeros(2, mini_encoder.dim)
    for _ in range(4):
        x = torch.randn((2, mini_encoder.dim), generator=noise)
        with torch.inference_mode():
            by_hand += torch.nn.functional.normalize(
                gen.prior(x, last, text), dim=-1
            )  # x0-prediction: the output is x0
    assert np.allclose(q, torch.nn.functional.normalize(by_hand, dim=-1).numpy(), atol=1e-5)


def test_training_can_start_from_an_exported_model(trained, mini_encoder, tmp_path):
    """--init: a fresh run starts from the given weights (with lr 0 it keeps them exactly);
    a model of other shapes is refused with a clear error."""
    base, gen_dir = trained
    with open_library(base / "lib", encoder=mini_encoder) as lib:
        pairs = library_pairs(lib.store, mini_encoder.space)
    cfg = PriorConfig(dim=mini_encoder.dim, width=64, layers=2, heads=2, space=mini_encoder.space)
    train_prior(
        pairs,
        mini_encoder.embed_texts,
        tmp_path / "out",
        tmp_path / "work",
        DiffusionTrainConfig(steps=2, batch_size=8, lr=0.0, init=str(gen_dir)),
        cfg,
    )
    before, after = DiffusionPrior.load(gen_dir).state_dict(), DiffusionPrior.load(tmp_path / "out").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    wider = PriorConfig(dim=mini_encoder.dim, width=96, layers=2, heads=2, space=mini_encoder.space)
    with pytest.raises(ValueError, match="cannot fine-tune from"):
        train_prior(
            pairs,
            mini_encoder.embed_texts,
            tmp_path / "out2",
            tmp_path / "work2",
            DiffusionTrainConfig(steps=1, batch_size=8, init=str(gen_dir)),
            wider,
        )


def test_slerp_and_text_diff_edit():
    rng = np.random.default_rng(0)
    a, b = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 16)))
    assert np.allclose(slerp(a, b, 0.0), a, atol=1e-6) and np.allclose(slerp(a, b, 1.0), b, atol=1e-6)
    mid = slerp(a, b, 0.5)
    assert np.linalg.norm(mid) == pytest.approx(1.0, abs=1e-5)
    assert mid @ a == pytest.approx(mid @ b, abs=1e-5)  # halfway on the great circle
    src, tgt = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 16)))
    edited = text_diff_edit(a, src, tgt)
    assert np.linalg.norm(edited) == pytest.approx(1.0, abs=1e-5)
    assert edited @ tgt > a @ tgt and edited @ src < a @ src


def test_eval_generation_reports_prior_and_decoder_figures(trained, mini_encoder, heldout_corpus, tmp_path):
    from mmsearch.evaluation.attribute_classifier import AttributeClassifier, ClassifierConfig, train_classifier
    from mmsearch.evaluation.generation_eval import evaluate_decoder, evaluate_prior

    base, gen_dir = trained
    report = train_classifier(
        base / "photos",
        tmp_path / "judge",
        steps=3,
        batch_size=8,
        cfg=ClassifierConfig(width=8, non_shapes=True),
        heldout_dir=heldout_corpus,
    )
    assert report["heldout"]["images"] == sum(
        1 for i in json.loads((heldout_corpus / "manifest.json").read_text())["items"] if len(i.get("objects", [])) == 1
    )
    assert set(report["heldout"]) == {
        "images",
        "shape_accuracy",
        "color_accuracy",
        "shape_accuracy_blurred",
        "color_accuracy_blurred",
        "none_rate",
        "none_rate_blurred",
        "non_shapes",
        "non_shape_rejection",
    }
    assert report["heldout"]["non_shapes"] == report["heldout"]["images"] // 6
    judge = AttributeClassifier.load(tmp_path / "judge")
    assert judge.shape_names == ["circle", "square", "triangle", "star", "hexagon", "cross", "none"]
    gen = MiniGenerator(mini_encoder, gen_dir)
    prior = evaluate_prior(gen, mini_encoder, heldout_corpus, max_captions=40)
    assert prior["captions"] == 40 and -1 <= prior["cosine_to_true_image_embedding"] <= 1
    assert 0 <= prior["R@1_prior"] <= 1 and 0 <= prior["R@1_text"] <= 1
    decoder = evaluate_decoder(gen, judge, prompts=3, settings=(("ddim", 2), ("ddim", 1)), draws=2)
    assert decoder["prompts"] == 3 and decoder["images"] == 6
    assert [(r["sampler"], r["steps"]) for r in decoder["rows"]] == [("ddim", 2), ("ddim", 1)]
    assert all(
        0 <= r["shape_accuracy"] <= 1 and 0 <= r["none_rate"] <= 1 and r["seconds_per_image"] > 0
        for r in decoder["rows"]
    )
