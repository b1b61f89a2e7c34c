"""The hf-clip encoder on tiny random-weight CLIPs built here (no hub: conftest points
HF_ENDPOINT at a closed port), saved in both layouts it reads: a CLIPModel folder and a
diffusers pipeline folder (text_encoder/, image_encoder/, tokenizer/, image_processor/)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("transformers")

from mmsearch.encoders import load_encoder  # noqa: E402
from mmsearch.encoders.base import CheckpointNotFoundError, Encoder, HubUnreachableError, ImageDecodeError  # noqa: E402
from mmsearch.encoders.hf_clip import HfClipEncoder, clip_space  # noqa: E402

from .tiny_clip import letter_tokenizer  # noqa: E402

EMB, SEQ, SIDE = 32, 16, 32
TEXT = dict(
    hidden_size=EMB,
    intermediate_size=37,
    num_attention_heads=4,
    num_hidden_layers=2,
    max_position_embeddings=SEQ,
    bos_token_id=0,
    eos_token_id=1,
    pad_token_id=1,
)
VISION = dict(
    hidden_size=EMB, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=SIDE, patch_size=8
)


def tokenizer(folder: Path):
    return letter_tokenizer(folder, SEQ)


def image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size=SIDE, crop_size=SIDE, image_mean=[0.48, 0.46, 0.41], image_std=[0.27, 0.26, 0.28])


def clip_model(seed: int):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    return CLIPModel(CLIPConfig(text_config={**TEXT, "vocab_size": 54}, vision_config=VISION, projection_dim=EMB))


def save_clip_model(folder: Path, seed: int = 0, dtype=torch.float32) -> Path:
    """A CLIPModel folder: weights, tokenizer files and preprocessor_config.json."""
    clip_model(seed).to(dtype).save_pretrained(folder)
    tokenizer(folder.parent / f"{folder.name}-tok").save_pretrained(folder)
    image_processor().save_pretrained(folder)
    return folder


def save_pipeline_layout(folder: Path, seed: int = 0) -> Path:
    """The same CLIP as save_clip_model(seed), split the way diffusers pipelines hold it."""
    from transformers import (
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    full = clip_model(seed)
    text = CLIPTextModelWithProjection(CLIPTextConfig(**TEXT, vocab_size=54, projection_dim=EMB))
    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(**VISION, projection_dim=EMB))
    state = full.state_dict()
    text.load_state_dict({k: v for k, v in state.items() if k.startswith(("text_model.", "text_projection."))})
    vision.load_state_dict({k: v for k, v in state.items() if k.startswith(("vision_model.", "visual_projection."))})
    text.save_pretrained(folder / "text_encoder")
    vision.save_pretrained(folder / "image_encoder")
    tokenizer(folder.parent / f"{folder.name}-tok").save_pretrained(folder / "tokenizer")
    image_processor().save_pretrained(folder / "image_processor")
    (folder / "model_index.json").write_text("{}")
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_clip_model(tmp_path_factory.mktemp("hfclip") / "clip")


@pytest.fixture(scope="module")
def encoder(model_dir) -> HfClipEncoder:
    return load_encoder(f"hf-clip:{model_dir}", device="cpu")


def pictures() -> list[Image.Image]:
    return [
        Image.new("RGB", (40, 30), (200, 30, 30)),
        Image.new("RGB", (32, 32), (30, 60, 220)),
        Image.fromarray(np.arange(48 * 48 * 3, dtype=np.uint8).reshape(48, 48, 3)),
    ]


def test_loads_a_clip_model_folder(encoder, model_dir):
    assert isinstance(encoder, HfClipEncoder) and isinstance(encoder, Encoder)
    assert encoder.name == f"hf-clip:{model_dir}"
    assert encoder.dim == EMB
    assert encoder.space.startswith(f"hf-clip:{EMB}d@") and encoder.space.endswith(f"|{SIDE}")
    assert str(model_dir) not in encoder.space  # named by its weights, not by where they lie


def test_embeddings_are_unit_float32_and_deterministic(encoder):
    texts = encoder.embed_texts(["a red square", "blue", "a"])
    images = encoder.embed_images(pictures())
    for out, n in ((texts, 3), (images, 3)):
        assert out.shape == (n, EMB) and out.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(texts, encoder.embed_texts(["a red square", "blue", "a"]))
    assert not np.allclose(images[0], images[1])
    assert encoder.embed_texts([]).shape == (0, EMB) and encoder.embed_images([]).shape == (0, EMB)


def test_embeddings_are_clips_projected_embeddings(encoder):
    """What CLIPModel itself gives (its text_embeds / image_embeds are L2-normalised)."""
    model = encoder.text
    tokens = encoder.tokenizer(["a red square"], padding=True, return_tensors="pt")
    pixels = encoder.image_processor(images=pictures()[:1], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=pixels)
    np.testing.assert_allclose(encoder.embed_texts(["a red square"])[0], out.text_embeds[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(encoder.embed_images(pictures()[:1])[0], out.image_embeds[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(encoder.embed_pixels(pixels)[0], out.image_embeds[0].numpy(), atol=1e-5)


def test_the_space_is_a_function_of_the_weights(encoder, model_dir, tmp_path):
    """One CLIP, however it is laid out, named or stored (float16 included), is one space;
    another CLIP (other weights, or other preprocessing) is another."""
    moved = tmp_path / "renamed"
    shutil.copytree(model_dir, moved)
    pipeline = save_pipeline_layout(tmp_path / "pipeline")
    half = save_clip_model(tmp_path / "half", dtype=torch.float16)
    for folder in (moved, pipeline, half):
        assert HfClipEncoder(str(folder), device="cpu").space == encoder.space, folder
    same = HfClipEncoder(str(pipeline), device="cpu")
    np.testing.assert_allclose(same.embed_images(pictures()), encoder.embed_images(pictures()), atol=1e-5)
    np.testing.assert_allclose(same.embed_texts(["a cat"]), encoder.embed_texts(["a cat"]), atol=1e-5)
    other = HfClipEncoder(str(save_clip_model(tmp_path / "other", seed=1)), device="cpu")
    assert other.space != encoder.space
    processor = image_processor()
    processor.image_mean = [0.5, 0.5, 0.5]
    assert clip_space(encoder.text, encoder.vision, processor) != encoder.space
    assert clip_space(encoder.text, encoder.vision, encoder.image_processor) == encoder.space


def test_an_undecodable_image_names_its_index(encoder, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageDecodeError) as info:
        encoder.embed_images([pictures()[0], bad])
    assert info.value.index == 1


def test_missing_or_wrong_folders_and_offline_hub_ids_fail_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        load_encoder(f"hf-clip:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointNotFoundError, match="config.json"):
        load_encoder(f"hf-clip:{tmp_path / 'empty'}")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(CheckpointNotFoundError, match="cannot load"):
        load_encoder(f"hf-clip:{tmp_path / 'broken'}")
    with pytest.raises(CheckpointNotFoundError):
        load_encoder("hf-clip:")
    with pytest.raises(HubUnreachableError, match="hf-clip:/path"):
        load_encoder("hf-clip:no-such-org/no-such-clip", hub_timeout_s=2.0)
    assert time.monotonic() - start < 10


def test_a_pipeline_folder_may_name_its_processor_feature_extractor(encoder, tmp_path):
    """unCLIP image-variation pipelines call it feature_extractor/; without either it is refused."""
    folder = save_pipeline_layout(tmp_path / "variation")
    (folder / "image_processor").rename(folder / "feature_extractor")
    assert HfClipEncoder(str(folder), device="cpu").space == encoder.space
    shutil.rmtree(folder / "feature_extractor")
    with pytest.raises(CheckpointNotFoundError, match="no image_processor/ or feature_extractor/"):
        HfClipEncoder(str(folder), device="cpu")
