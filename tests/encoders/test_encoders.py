import json
import time

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from mmsearch.datasets.render import ObjectGeom, Style, draw_scene
from mmsearch.datasets.vocab import SHAPES
from mmsearch.encoders import load_encoder
from mmsearch.encoders.base import CheckpointNotFoundError, HubUnreachableError, ImageDecodeError, UnknownModelError
from mmsearch.encoders.openclip import pad_to_aspect
from mmsearch.encoders.synonyms import Synonyms

from .tiny_blip import tiny_blip_folder


def _unit_rows(x: np.ndarray) -> bool:
    return x.dtype == np.float32 and np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)


def _images() -> list[Image.Image]:
    red_circle = draw_scene(96, 96, (245, 245, 245), [ObjectGeom("circle", (220, 30, 30), 48, 48, 30)], Style())
    blue_square = draw_scene(96, 96, (245, 245, 245), [ObjectGeom("square", (30, 60, 220), 48, 48, 30)], Style())
    return [red_circle, blue_square]


def test_mini_embeds_texts_and_images_in_one_space(mini_encoder):
    texts = mini_encoder.embed_texts(["a red circle", "a blue square"])
    images = mini_encoder.embed_images(_images())
    assert texts.shape == images.shape == (2, mini_encoder.dim)
    assert _unit_rows(texts) and _unit_rows(images)
    sims = texts @ images.T
    assert sims[0, 0] > sims[0, 1] and sims[1, 1] > sims[1, 0]
    assert mini_encoder.space.startswith("open_clip:mini@")
    assert mini_encoder.embed_texts([]).shape == (0, mini_encoder.dim)


def test_mini_names_the_shape_in_pictures_much_wider_or_taller_than_its_training_ones(mini_encoder):
    # Trained on canvases of 3:4 to 4:3 and squashing its input to a square, it saw a hexagon
    # on a 4:1 canvas as a flat bar (0.375 of these right); padded to 1.6:1 first, 0.98.
    colours = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (40, 170, 50), "yellow": (250, 220, 30)}
    pictures, truth = [], []
    for shape in SHAPES:
        for k, (name, rgb) in enumerate(colours.items()):
            for width, height in ((384, 96), (96, 320)):
                along = 0.2 + 0.2 * k  # the object's place along the long side
                cx, cy = (along * width, height / 2) if width > height else (width / 2, along * height)
                pictures.append(
                    draw_scene(width, height, (245, 245, 245), [ObjectGeom(shape, rgb, cx, cy, 34)], Style())
                )
                truth.append((name, shape))
    vectors = mini_encoder.embed_images(pictures)
    texts = {name: mini_encoder.embed_texts([f"a {name} {shape}" for shape in SHAPES]) for name in colours}
    named = [SHAPES[int((v @ texts[colour].T).argmax())] for v, (colour, _) in zip(vectors, truth)]
    assert np.mean([n == shape for n, (_, shape) in zip(named, truth)]) >= 0.9
    assert mini_encoder.space.endswith("|squash96pad1.6")  # vectors made before the padding are another space


def test_synonyms_rewrite_whole_words_longest_first_in_any_case():
    synonyms = Synonyms({"navy": "blue", "navy blue": "blue", "violet": "purple", "six-sided shape": "hexagon"})
    assert synonyms("A Navy Blue circle and a navy square") == "A blue circle and a blue square"
    assert synonyms("VIOLET six-sided shape, top left") == "purple hexagon, top left"
    assert synonyms("ultraviolet violets and violet-ish") == "ultraviolet violets and violet-ish"


def test_mini_reads_words_it_never_learnt_as_the_ones_it_knows(mini_encoder):
    assert mini_encoder.synonyms is not None  # shipped beside the weights: synonyms.json
    said, known = (
        mini_encoder.embed_texts(["a violet circle", "crimson rectangle, top left", "two red stars"]),
        mini_encoder.embed_texts(["a purple circle", "red square, top left", "two red star"]),
    )
    np.testing.assert_allclose(said, known, atol=1e-6)
    # the words the corpus taught stay as typed
    assert mini_encoder.synonyms("a grey disc and a plus sign") == "a grey disc and a plus sign"


def test_padding_to_an_aspect_centres_the_picture_on_its_border_colour():
    picture = Image.new("RGB", (400, 100), (10, 200, 30))
    picture.paste((250, 0, 0), (180, 40, 220, 60))  # a red mark in the middle; the border stays green
    padded = pad_to_aspect(picture, 1.6)
    assert padded.size == (400, 250)
    assert padded.getpixel((0, 0)) == padded.getpixel((399, 249)) == (10, 200, 30)
    assert padded.crop((0, 75, 400, 175)).tobytes() == picture.tobytes()
    assert pad_to_aspect(picture.rotate(90, expand=True), 1.6).size == (250, 400)
    within = Image.new("RGB", (160, 100))
    assert pad_to_aspect(within, 1.6) is within


def test_image_features_are_the_image_embedding_with_gradients_to_the_pixels(mini_encoder):
    images = _images()  # 96 px: the mini model's input size, so no resampling differs
    pixels = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images]).float().div(255)
    pixels.requires_grad_(True)
    features = torch.nn.functional.normalize(mini_encoder.image_features(pixels), dim=-1)
    np.testing.assert_allclose(features.detach().numpy(), mini_encoder.embed_images(images), atol=1e-5)
    features[:, 0].sum().backward()
    assert pixels.grad is not None and float(pixels.grad.abs().sum()) > 0
    assert all(p.grad is None for p in mini_encoder.model.parameters())  # the encoder itself stays frozen
    # Other sizes are resized to the model's input (the decoder draws 32 px).
    small = torch.nn.functional.interpolate(pixels.detach(), size=32, mode="area")
    assert mini_encoder.image_features(small).shape == (2, mini_encoder.dim)


def _random_vit_b32_folder(tmp_path):
    """A randomly initialised real ViT-B-32 saved the way open_clip saves checkpoints."""
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    folder = tmp_path / "vit-b-32-random"
    folder.mkdir()
    save_file(
        {k: v.half().contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors")
    )
    (folder / "open_clip_config.json").write_text(
        json.dumps(
            {
                "model_cfg": open_clip.get_model_config("ViT-B-32"),
                "preprocess_cfg": {
                    "mean": list(open_clip.OPENAI_DATASET_MEAN),
                    "std": list(open_clip.OPENAI_DATASET_STD),
                },
            }
        )
    )
    return folder


@pytest.mark.slow
def test_local_checkpoint_of_a_real_architecture(tmp_path):
    folder = _random_vit_b32_folder(tmp_path)
    for spec in (
        str(folder),
        str(folder / "open_clip_model.safetensors"),
        f"ViT-B-32:{folder / 'open_clip_model.safetensors'}",
    ):
        enc = load_encoder(spec, device="cpu", batch_size=2)
        assert enc.dim == 512
        t = enc.embed_texts(["a dog", "a cat", "a red circle"])
        i = enc.embed_images(_images() + _images())
        assert t.shape == (3, 512) and i.shape == (4, 512)
        assert _unit_rows(t) and _unit_rows(i)
        assert "@" in enc.space and enc.space.endswith("shortest224")


def test_blip_from_a_saved_folder(tmp_path):
    folder = tiny_blip_folder(tmp_path / "tiny-blip")
    enc = load_encoder(f"blip:{folder}", device="cpu", batch_size=2)
    assert enc.dim == 24
    t = enc.embed_texts(["a red circle", "a blue square", "a dog"])
    i = enc.embed_images(_images() + _images()[:1])
    assert t.shape == (3, 24) and i.shape == (3, 24)
    assert _unit_rows(t) and _unit_rows(i)
    scores = enc.itm_scores("a red circle", _images())
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    assert enc.space.startswith("blip:tiny-blip@")


def test_hub_unreachable_fails_fast_with_advice(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing cached
    t0 = time.monotonic()
    with pytest.raises(HubUnreachableError) as err:
        load_encoder("ViT-B-32/laion2b_s34b_b79k", device="cpu")
    assert time.monotonic() - t0 < 10
    assert "--model mini" in str(err.value)
    with pytest.raises(HubUnreachableError):
        load_encoder("blip:Salesforce/blip-itm-base-coco", device="cpu")


@pytest.mark.parametrize(
    "spec, error",
    [
        ("not-a-model", UnknownModelError),
        ("ViT-B-32", UnknownModelError),
        ("ViT-B-32/no_such_tag", UnknownModelError),
        ("/nonexistent/weights.pt", CheckpointNotFoundError),
        ("ViT-B-32:/nonexistent/weights.pt", CheckpointNotFoundError),
        ("blip:/nonexistent/blip", CheckpointNotFoundError),
    ],
)
def test_bad_specs_raise_typed_errors(spec, error):
    with pytest.raises(error) as err:
        load_encoder(spec, device="cpu")
    assert str(err.value)


def test_local_folder_without_config_is_refused(tmp_path):
    (tmp_path / "open_clip_model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointNotFoundError, match="open_clip_config.json"):
        load_encoder(str(tmp_path), device="cpu")


def test_corrupt_images_raise_with_their_index(mini_encoder, tmp_path):
    good = tmp_path / "good.png"
    _images()[0].save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    for k, bad in enumerate([truncated, empty, garbage]):
        with pytest.raises(ImageDecodeError) as err:
            mini_encoder.embed_images([good, bad])
        assert err.value.index == 1, k
        assert "image 1" in str(err.value)
    with pytest.raises(ImageDecodeError):
        mini_encoder.embed_images([Image.open(truncated)])
