"""`mmsearch train ...`: the built-in models' trainers (the CLI's front of mmsearch.training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..encoders import encoder_for
from .common import (
    BUILTIN_WEIGHTS,
    LIBRARY_OPT,
    MODEL_OPT,
    console,
    fail,
    failing_on,
    loss_reporter,
    open_library,
    progress_bar,
    tool_settings,
    training_bar,
)

train_app = typer.Typer(help="Train the built-in models on a synthetic (or captioned) corpus.", no_args_is_help=True)
INIT_OPT = typer.Option(
    None,
    help="Fine-tune from this model folder (e.g. mmsearch/weights/mini) instead of starting from random weights; "
    "ignored when a run resumes.",
)
GENERATION_OUT = typer.Option(
    BUILTIN_WEIGHTS,
    help="Folder to write the model into; the state a killed run resumes from stays in LIBRARY/training.",
)


@train_app.command("clip")
def train_clip(
    data: Path = typer.Option(..., help="A corpus written by `mmsearch synth` (the train split)."),
    out: Path = typer.Option(BUILTIN_WEIGHTS, help="Model folder to write (open_clip local-dir format)."),
    steps: int = typer.Option(2000, min=1),
    batch_size: int = typer.Option(256, min=2),
    lr: float = typer.Option(7e-4, min=0),
    seed: int = typer.Option(0),
    threads: int = typer.Option(0, min=0, help="Torch CPU threads (0: default)."),
    restart: bool = typer.Option(False, help="Ignore an existing train-state.pt in --out instead of resuming from it."),
    init: Optional[Path] = typer.Option(
        None, help="Start a fresh run from these exported weights (open_clip_model.safetensors)."
    ),
    attribute_weight: float = typer.Option(
        1.0, min=0, help="Weight of the auxiliary shape/colour-presence loss (0: off)."
    ),
    image_size: Optional[int] = typer.Option(
        None,
        min=32,
        max=512,
        help="Input side in pixels, a multiple of 32 (default: the built-in config's). "
        "With --init, weights trained at another side are carried over.",
    ),
    warmup: int = typer.Option(150, min=1, help="Warm-up steps (fewer suit fine-tuning from --init)."),
) -> None:
    """Train the built-in mini CLIP (resumes from OUT/train-state.pt when present)."""
    from ..training.clip_trainer import ClipTrainConfig
    from ..training.clip_trainer import train_clip as run

    cfg = ClipTrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        threads=threads,
        attribute_weight=attribute_weight,
        init_weights=str(init) if init else None,
        image_size=image_size,
        warmup=warmup,
    )
    if image_size is not None and image_size % 32:
        fail("--image-size must be a multiple of 32 (the image tower downsamples 32 times)")
    with failing_on(FileNotFoundError, ValueError), training_bar("train clip", steps) as progress:
        summary = run(data, out, cfg, resume=not restart, progress=progress)
    console.print_json(json.dumps(summary))


@train_app.command("temporal")
def train_temporal(
    data: list[Path] = typer.Option(
        ..., help="Video corpora written by `mmsearch synth --videos N` (the train split); repeat for several."
    ),
    model: Optional[str] = typer.Option(None, help="Frozen encoder spec (default: MMSEARCH_MODEL, else mini)."),
    out: Path = typer.Option(BUILTIN_WEIGHTS, help="Folder to write the seqTransf head into."),
    steps: int = typer.Option(2500, min=1),
    batch_size: int = typer.Option(128, min=2),
    lr: float = typer.Option(5e-4, min=0),
    seed: int = typer.Option(0),
) -> None:
    """Train the seqTransf temporal pooling head on captioned videos (encoders frozen)."""
    from ..encoders.base import EncoderError
    from ..training.temporal_trainer import TemporalTrainConfig, all_captions
    from ..training.temporal_trainer import train_temporal as run
    from .evaluate import video_features

    settings = tool_settings(model=model)
    with failing_on(EncoderError, FileNotFoundError, ValueError):
        encoder = encoder_for(settings)
        # One bar for all: the corpora's embedding tasks, then the training task.
        with progress_bar() as bar:
            videos = [v for corpus in data for v in video_features(bar, corpus, encoder, settings)]
            captions = all_captions(videos)
            text_vectors = encoder.embed_texts(captions)
            progress = loss_reporter(bar, bar.add_task("train temporal", total=steps, info=""))
            cfg = TemporalTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed)
            summary = run(videos, text_vectors, captions, out, cfg, progress=progress)
    console.print_json(json.dumps(summary))


def _open_generation_training(library: Optional[Path], model: Optional[str], threads: int):
    """The library and its captioned (prior) or all (decoder) images with their stored embeddings."""
    import torch

    from ..training.pairs import library_pairs

    if threads:
        torch.set_num_threads(threads)
    lib = open_library(library, model)
    pairs = library_pairs(lib.store, lib.encoder.space)
    if len(pairs) == 0:
        fail(f"{lib.dir} has no indexed images in space {lib.encoder.space!r}: run `mmsearch index` first")
    return lib, pairs


@train_app.command("prior")
def train_prior(
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
    out: Path = GENERATION_OUT,
    steps: int = typer.Option(4000, min=1),
    batch_size: int = typer.Option(256, min=2),
    lr: float = typer.Option(3e-4, min=0),
    threads: int = typer.Option(0, min=0, help="Torch CPU threads (0: default)."),
    seed: int = typer.Option(0),
    init: Optional[Path] = INIT_OPT,
    choice_weight: float = typer.Option(
        0.5,
        min=0,
        help="Weight of a loss asking the embedding search predicts (the last timestep's) to pick its own image "
        "out of all training images, so searching with the prediction finds the right image as often as the text "
        "does (see BENCHMARKS.md); 0: squared error only.",
    ),
) -> None:
    """Train the diffusion prior (text embedding -> image embedding) on a library's captioned images."""
    from ..generation.models.prior import PriorConfig
    from ..training.diffusion_trainer import DiffusionTrainConfig
    from ..training.diffusion_trainer import train_prior as run

    lib, pairs = _open_generation_training(library, model, threads)
    cfg = DiffusionTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, init=str(init) if init else None)
    prior = PriorConfig(dim=lib.encoder.dim, space=lib.encoder.space, choice_weight=choice_weight)
    with failing_on(ValueError), lib, training_bar("train prior", steps, digits=4) as progress:
        summary = run(pairs, lib.encoder.embed_texts, out, lib.dir / "training", cfg, prior, progress=progress)
    console.print_json(json.dumps(summary))


@train_app.command("decoder")
def train_decoder(
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
    out: Path = GENERATION_OUT,
    steps: int = typer.Option(8000, min=1),
    batch_size: int = typer.Option(64, min=2),
    lr: float = typer.Option(3e-4, min=0),
    image_size: int = typer.Option(32, min=16, max=256, help="Side of the images the decoder draws (a multiple of 4)."),
    threads: int = typer.Option(0, min=0, help="Torch CPU threads (0: default)."),
    seed: int = typer.Option(0),
    init: Optional[Path] = INIT_OPT,
    timestep_sampling: str = typer.Option(
        "uniform",
        help="How training draws noise levels: uniform, or logit_normal (most at the middle levels, "
        "where outlines are decided; see BENCHMARKS.md).",
    ),
    consistency_weight: float = typer.Option(
        0.0,
        min=0,
        help="Weight of a loss asking the library's image encoder to read each predicted image as its embedding "
        "(teaches outlines sooner than the pixel loss; open_clip encoders; see BENCHMARKS.md). 0: pixel loss only.",
    ),
) -> None:
    """Train the diffusion decoder (image embedding -> image) on a library's images."""
    from ..generation.models.decoder import TIMESTEP_SAMPLINGS, DecoderConfig
    from ..training.diffusion_trainer import DiffusionTrainConfig
    from ..training.diffusion_trainer import train_decoder as run

    if image_size % 4:
        fail("--image-size must be a multiple of 4")
    if timestep_sampling not in TIMESTEP_SAMPLINGS:
        fail(f"--timestep-sampling must be one of {', '.join(TIMESTEP_SAMPLINGS)}")
    lib, pairs = _open_generation_training(library, model, threads)
    cfg = DiffusionTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, init=str(init) if init else None)
    image_features = getattr(lib.encoder, "image_features", None)
    if consistency_weight and image_features is None:
        lib.close()
        fail(
            "--consistency-weight needs an open_clip image encoder; "
            f"{lib.encoder.name} has no differentiable image path"
        )
    decoder = DecoderConfig(
        dim=lib.encoder.dim, image_size=image_size, space=lib.encoder.space, timestep_sampling=timestep_sampling
    )
    with failing_on(ValueError), lib, training_bar("train decoder", steps, digits=4) as progress:
        summary = run(
            pairs,
            out,
            lib.dir / "training",
            cfg,
            decoder,
            progress=progress,
            image_features=image_features,
            consistency_weight=consistency_weight,
        )
    console.print_json(json.dumps(summary))


@train_app.command("attribute-classifier")
def train_attribute_classifier(
    data: Path = typer.Option(..., help="A synthetic train corpus (its one-object images are used)."),
    heldout: Optional[Path] = typer.Option(None, help="A heldout corpus to report accuracy on."),
    out: Path = GENERATION_OUT,
    steps: int = typer.Option(
        4000, min=1, help="4,000 for the shipped judge: with the none class, 2,000 underfit (BENCHMARKS.md)."
    ),
    threads: int = typer.Option(0, min=0, help="Torch CPU threads (0: default)."),
    non_shapes: bool = typer.Option(
        True,
        help="Also learn to answer 'none' for drawn non-shapes (blobs, scribbles), "
        "so scribbles are not counted as shapes.",
    ),
) -> None:
    """Train the small shape/colour classifier that judges generated images in eval-generation."""
    import torch

    from ..evaluation.attribute_classifier import ClassifierConfig, train_classifier

    if threads:
        torch.set_num_threads(threads)
    with failing_on(FileNotFoundError, ValueError):
        cfg = ClassifierConfig(non_shapes=non_shapes)
        report = train_classifier(data, out, steps=steps, heldout_dir=heldout, cfg=cfg)
    console.print_json(json.dumps(report))
