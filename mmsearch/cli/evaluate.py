"""`mmsearch eval-*` and `calibrate-miss`: the measures of mmsearch.evaluation on synthetic
corpora, and a library's own miss calibration."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import Progress

from ..config import Settings
from ..encoders import encoder_for
from .common import (
    LIBRARY_OPT,
    MODEL_OPT,
    console,
    fail,
    failing_on,
    open_library,
    print_report,
    progress_bar,
    tool_settings,
)


def eval_encoder(
    data: Path = typer.Option(..., help="A heldout corpus written by `mmsearch synth --split heldout`."),
    model: Optional[str] = typer.Option(None, help="Encoder spec (default: settings' model)."),
    device: Optional[str] = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Text-to-image retrieval metrics of an encoder on a synthetic heldout split."""
    from ..encoders.base import EncoderError
    from ..evaluation.encoder_eval import evaluate_encoder

    settings = Settings().with_overrides(model=model, device=device)
    with failing_on(EncoderError, FileNotFoundError, ValueError):
        encoder = encoder_for(settings)
        report = evaluate_encoder(encoder, data)
    print_report(report, as_json)


def eval_generation(
    data: Path = typer.Option(..., help="A heldout corpus written by `mmsearch synth --split heldout`."),
    model: Optional[str] = MODEL_OPT,
    generator: Optional[str] = typer.Option(None, help="Generator spec (default: settings' generator, mini)."),
    prompts: int = typer.Option(48, min=1, max=72, help="Colour-shape prompts drawn for the decoder table."),
    draws: int = typer.Option(1, min=1, max=16, help="Images drawn per prompt for the decoder table."),
    decoder: bool = typer.Option(True, help="Also draw images and time the samplers (--no-decoder: the prior only)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Prior cosine and R@1 (prior vs raw text), and generated-image attribute accuracy per sampler."""
    from ..encoders.base import EncoderError
    from ..evaluation.attribute_classifier import AttributeClassifier
    from ..evaluation.generation_eval import evaluate_decoder, evaluate_prior
    from ..generation import load_generator

    settings = Settings().with_overrides(model=model, generator=generator)
    with failing_on(EncoderError, FileNotFoundError, ValueError):
        encoder = encoder_for(settings)
        gen = load_generator(settings.generator, encoder, settings.device)
        report = {"generator": gen.name, "space": gen.space, "prior": evaluate_prior(gen, encoder, data)}
        if decoder:
            report["decoder"] = evaluate_decoder(gen, AttributeClassifier.load(), prompts=prompts, draws=draws)
    print_report(report, as_json)


def eval_video(
    data: Path = typer.Option(
        ..., help="A heldout video corpus written by `mmsearch synth --videos N --split heldout`."
    ),
    model: Optional[str] = typer.Option(None, help="Encoder spec (default: settings' model)."),
    pooling: str = typer.Option(
        "seqTransf", help="mean or seqTransf (the head shipped with the model, or --temporal-head)."
    ),
    temporal_head: Optional[Path] = typer.Option(None, help="Folder of a trained seqTransf head."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Text-to-video retrieval, motion-direction and moment accuracy on synthetic videos."""
    from ..encoders.base import EncoderError
    from ..encoders.temporal import resolve_pooler
    from ..evaluation.video_eval import evaluate_video

    settings = Settings().with_overrides(model=model, temporal_head=temporal_head)
    with failing_on(EncoderError, FileNotFoundError, ValueError):
        settings = settings.with_overrides(pooling=pooling)
        encoder = encoder_for(settings)
        pooler = resolve_pooler(settings)
        with progress_bar() as bar:
            videos = video_features(bar, data, encoder, settings)
        report = evaluate_video(videos, encoder, pooler)
    print_report(report, as_json)


def video_features(bar: Progress, data: Path, encoder, settings: Settings):
    """Frame vectors of a corpus's videos, sampled as index jobs sample them."""
    from ..datasets.synth import load_manifest
    from ..datasets.video_features import corpus_video_features
    from ..encoders.video import SamplingConfig

    n = sum(1 for i in load_manifest(data)["items"] if i["kind"] == "video")
    task = bar.add_task("embed videos", total=n, info="")
    sampling = SamplingConfig.of(settings)
    return corpus_video_features(data, encoder, sampling, progress=lambda k: bar.advance(task, k))


def calibrate_miss(
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
    data: Optional[Path] = typer.Option(
        None,
        help="Measure instead, with labels: a heldout corpus written by `mmsearch synth --split heldout`; "
        "prints the labelled thresholds of the model's space (text and prior).",
    ),
    with_prior: bool = typer.Option(
        True, help="With --data: also the prior's threshold (needs the mini generator's prior)."
    ),
    save: bool = typer.Option(
        False,
        help="With --data: write the thresholds into the shipped miss_thresholds.json (the prior stage uses them).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Calibrate a library's miss rule from its own vectors, per media kind, no labels needed
    (kept in the library folder, redone by searches when a kind grows or shrinks by a quarter)."""
    from ..encoders.base import EncoderError

    if data is None:
        if save:
            fail("--save applies with --data (a library's calibration is always kept in its folder)")
        from dataclasses import asdict

        from ..services.miss_signal import PROBE_TEXTS, miss_signal_for

        with failing_on(EncoderError, FileNotFoundError, ValueError):
            with open_library(library, model) as lib:
                signal = miss_signal_for(lib.engine, lib.dir)
                kinds = {kind: asdict(c) for kind, c in signal.calibrate(force=True).items()}
                report = {"library": str(lib.dir), "space": signal.space, "probes": len(PROBE_TEXTS), "kinds": kinds}
                report["file"] = str(signal.path)
        if not kinds:
            console.print("[yellow]the library holds no image or video vectors yet: nothing to calibrate[/yellow]")
        print_report(report, as_json)
        return
    from ..evaluation.miss_calibration import calibrate
    from ..services.miss_thresholds import save_thresholds

    settings = tool_settings(model=model)
    with failing_on(EncoderError, FileNotFoundError, ValueError):
        encoder = encoder_for(settings)
        prior = None
        if with_prior:
            from ..generation import load_generator

            prior = load_generator(settings.generator, encoder, settings.device).query_embeddings
        report = calibrate(encoder, data, prior)
    if save:
        save_thresholds(report)
    print_report(report, as_json)
