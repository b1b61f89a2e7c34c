"""The mmsearch command line: one typer app, a function per verb."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .config import Settings

app = typer.Typer(
    help="mmsearch: multimodal search over your photos and videos.", no_args_is_help=True, add_completion=False
)
train_app = typer.Typer(help="Train the built-in models on a synthetic (or captioned) corpus.", no_args_is_help=True)
app.add_typer(train_app, name="train")
console = Console(stderr=True)
LIBRARY_OPT = typer.Option(
    None, "--library", "-l", help="Library folder (default: MMSEARCH_LIBRARY_DIR or ./mmsearch-library)."
)
MODEL_OPT = typer.Option(None, "--model", "-m", help="Encoder spec (default: MMSEARCH_MODEL or mini).")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(code)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def synth(
    out_dir: Path = typer.Argument(..., help="Folder to write images/, videos/ and manifest.json into."),
    images: int = typer.Option(200, min=0, help="Number of images."),
    videos: int = typer.Option(0, min=0, help="Number of mp4 videos."),
    seed: int = typer.Option(0, help="Same seed, same files."),
    split: str = typer.Option("train", help="train, or heldout (other seeds; colour-shape pairs never seen in train)."),
    workers: int = typer.Option(1, min=1, help="Processes drawing images."),
) -> None:
    """Write a deterministic synthetic corpus with captions and ground-truth attributes."""
    from .datasets import synth as synth_mod

    if split not in synth_mod.SPLITS:
        _fail(f"--split must be one of {sorted(synth_mod.SPLITS)}")
    with _progress() as bar:
        task = bar.add_task("synth", total=images + videos, info="")
        manifest = synth_mod.generate(
            out_dir, images, videos, seed=seed, split=split, workers=workers, progress=lambda n: bar.advance(task, n)
        )
    console.print(f"wrote {len(manifest['items'])} items to {out_dir}/ (manifest: {out_dir / synth_mod.MANIFEST})")


@train_app.command("clip")
def train_clip(
    data: Path = typer.Option(..., help="A corpus written by `mmsearch synth` (the train split)."),
    out: Path = typer.Option(
        Path(__file__).resolve().parent / "weights" / "mini", help="Model folder to write (open_clip local-dir format)."
    ),
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
        help="Input side in pixels, a multiple of 32 (default: the built-in config's). With --init, weights trained at another side are carried over.",
    ),
    warmup: int = typer.Option(150, min=1, help="Warm-up steps (fewer suit fine-tuning from --init)."),
) -> None:
    """Train the built-in mini CLIP (resumes from OUT/train-state.pt when present)."""
    from .training.clip_trainer import ClipTrainConfig
    from .training.clip_trainer import train_clip as run

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
        _fail("--image-size must be a multiple of 32 (the image tower downsamples 32 times)")
    try:
        with _progress() as bar:
            task = bar.add_task("train clip", total=steps, info="")
            summary = run(
                data,
                out,
                cfg,
                resume=not restart,
                progress=lambda s, n, loss: bar.update(task, completed=s, info=f"loss {loss:.3f}"),
            )
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    console.print_json(json.dumps(summary))


@app.command("eval-encoder")
def eval_encoder(
    data: Path = typer.Option(..., help="A heldout corpus written by `mmsearch synth --split heldout`."),
    model: Optional[str] = typer.Option(None, help="Encoder spec (default: settings' model)."),
    device: Optional[str] = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Text-to-image retrieval metrics of an encoder on a synthetic heldout split."""
    from .encoders.base import EncoderError
    from .evaluation.encoder_eval import evaluate_encoder

    settings = Settings().with_overrides(model=model, device=device)
    try:
        encoder = _encoder(settings)
        report = evaluate_encoder(encoder, data)
    except (EncoderError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    _print_report(report, as_json)


@train_app.command("temporal")
def train_temporal(
    data: list[Path] = typer.Option(
        ..., help="Video corpora written by `mmsearch synth --videos N` (the train split); repeat for several."
    ),
    model: Optional[str] = typer.Option(None, help="Frozen encoder spec (default: settings' model)."),
    out: Path = typer.Option(
        Path(__file__).resolve().parent / "weights" / "mini", help="Folder to write the seqTransf head into."
    ),
    steps: int = typer.Option(2500, min=1),
    batch_size: int = typer.Option(128, min=2),
    lr: float = typer.Option(5e-4, min=0),
    seed: int = typer.Option(0),
) -> None:
    """Train the seqTransf temporal pooling head on captioned videos (encoders frozen)."""
    from .encoders.base import EncoderError
    from .training.temporal_trainer import TemporalTrainConfig, all_captions
    from .training.temporal_trainer import train_temporal as run

    settings = Settings().with_overrides(model=model)
    try:
        encoder = _encoder(settings)
        with _progress() as bar:
            videos = [v for corpus in data for v in _video_features(bar, corpus, encoder, settings)]
            captions = all_captions(videos)
            text_vectors = encoder.embed_texts(captions)
            task = bar.add_task("train temporal", total=steps, info="")
            summary = run(
                videos,
                text_vectors,
                captions,
                out,
                TemporalTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed),
                progress=lambda s, n, loss: bar.update(task, completed=s, info=f"loss {loss:.3f}"),
            )
    except (EncoderError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    console.print_json(json.dumps(summary))


def _generation_trainer(library: Optional[Path], model: Optional[str], threads: int):
    """The library's captioned (prior) or all (decoder) images with their stored embeddings."""
    import torch

    from .training.pairs import library_pairs

    if threads:
        torch.set_num_threads(threads)
    lib = _library(library, model)
    pairs = library_pairs(lib.store, lib.encoder.space)
    if len(pairs) == 0:
        _fail(f"{lib.dir} has no indexed images in space {lib.encoder.space!r}: run `mmsearch index` first")
    return lib, pairs


GENERATION_OUT = typer.Option(
    Path(__file__).resolve().parent / "weights" / "mini",
    help="Folder to write the model into; the state a killed run resumes from stays in LIBRARY/training.",
)


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
    init: Optional[Path] = typer.Option(
        None,
        help="Fine-tune from this model folder (e.g. mmsearch/weights/mini) instead of starting from random weights; ignored when a run resumes.",
    ),
    choice_weight: float = typer.Option(
        0.5,
        min=0,
        help="Weight of a loss asking the embedding search predicts (the last timestep's) to pick its own image out of all training images, so searching with the prediction finds the right image as often as the text does (see BENCHMARKS.md); 0: squared error only.",
    ),
) -> None:
    """Train the diffusion prior (text embedding -> image embedding) on a library's captioned images."""
    from .generation.prior import PriorConfig
    from .training.diffusion_trainer import DiffusionTrainConfig
    from .training.diffusion_trainer import train_prior as run

    lib, pairs = _generation_trainer(library, model, threads)
    cfg = DiffusionTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, init=str(init) if init else None)
    try:
        with lib, _progress() as bar:
            task = bar.add_task("train prior", total=steps, info="")
            summary = run(
                pairs,
                lib.encoder.embed_texts,
                out,
                lib.dir / "training",
                cfg,
                PriorConfig(dim=lib.encoder.dim, space=lib.encoder.space, choice_weight=choice_weight),
                progress=lambda s, n, loss: bar.update(task, completed=s, info=f"loss {loss:.4f}"),
            )
    except ValueError as e:
        _fail(str(e))
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
    init: Optional[Path] = typer.Option(
        None,
        help="Fine-tune from this model folder (e.g. mmsearch/weights/mini) instead of starting from random weights; ignored when a run resumes.",
    ),
    timestep_sampling: str = typer.Option(
        "uniform",
        help="How training draws noise levels: uniform, or logit_normal (most at the middle levels, where outlines are decided; see BENCHMARKS.md).",
    ),
    consistency_weight: float = typer.Option(
        0.0,
        min=0,
        help="Weight of a loss asking the library's image encoder to read each predicted image as its embedding (teaches outlines sooner than the pixel loss; open_clip encoders; see BENCHMARKS.md). 0: pixel loss only.",
    ),
) -> None:
    """Train the diffusion decoder (image embedding -> image) on a library's images."""
    from .generation.decoder import DecoderConfig
    from .generation.diffusion import TIMESTEP_SAMPLINGS
    from .training.diffusion_trainer import DiffusionTrainConfig
    from .training.diffusion_trainer import train_decoder as run

    if image_size % 4:
        _fail("--image-size must be a multiple of 4")
    if timestep_sampling not in TIMESTEP_SAMPLINGS:
        _fail(f"--timestep-sampling must be one of {', '.join(TIMESTEP_SAMPLINGS)}")
    lib, pairs = _generation_trainer(library, model, threads)
    cfg = DiffusionTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, init=str(init) if init else None)
    image_features = getattr(lib.encoder, "image_features", None)
    if consistency_weight and image_features is None:
        lib.close()
        _fail(
            f"--consistency-weight needs an open_clip image encoder; {lib.encoder.name} has no differentiable image path"
        )
    try:
        with lib, _progress() as bar:
            task = bar.add_task("train decoder", total=steps, info="")
            summary = run(
                pairs,
                out,
                lib.dir / "training",
                cfg,
                DecoderConfig(
                    dim=lib.encoder.dim,
                    image_size=image_size,
                    space=lib.encoder.space,
                    timestep_sampling=timestep_sampling,
                ),
                progress=lambda s, n, loss: bar.update(task, completed=s, info=f"loss {loss:.4f}"),
                image_features=image_features,
                consistency_weight=consistency_weight,
            )
    except ValueError as e:
        _fail(str(e))
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
        help="Also learn to answer 'none' for drawn non-shapes (blobs, scribbles), so scribbles are not counted as shapes.",
    ),
) -> None:
    """Train the small shape/colour classifier that judges generated images in eval-generation."""
    import torch

    from .evaluation.attribute_classifier import ClassifierConfig, train_classifier

    if threads:
        torch.set_num_threads(threads)
    try:
        report = train_classifier(
            data, out, steps=steps, heldout_dir=heldout, cfg=ClassifierConfig(non_shapes=non_shapes)
        )
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    console.print_json(json.dumps(report))


@app.command("eval-generation")
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
    from .encoders.base import EncoderError
    from .evaluation.attribute_classifier import AttributeClassifier
    from .evaluation.generation_eval import evaluate_decoder, evaluate_prior
    from .generation import load_generator

    settings = Settings().with_overrides(model=model, generator=generator)
    try:
        encoder = _encoder(settings)
        gen = load_generator(settings.generator, encoder, settings.device)
        report = {"generator": gen.name, "space": gen.space, "prior": evaluate_prior(gen, encoder, data)}
        if decoder:
            report["decoder"] = evaluate_decoder(gen, AttributeClassifier.load(), prompts=prompts, draws=draws)
    except (EncoderError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    _print_report(report, as_json)


@app.command("eval-video")
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
    from .encoders.base import EncoderError
    from .encoders.temporal import resolve_pooler
    from .evaluation.video_eval import evaluate_video

    settings = Settings().with_overrides(model=model, temporal_head=temporal_head)
    try:
        settings = settings.with_overrides(pooling=pooling)
        encoder = _encoder(settings)
        pooler = resolve_pooler(settings)
        with _progress() as bar:
            videos = _video_features(bar, data, encoder, settings)
        report = evaluate_video(videos, encoder, pooler)
    except (EncoderError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    _print_report(report, as_json)


def _print_report(report: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        console.print_json(json.dumps(report))


def _encoder(settings: Settings):
    from .encoders import load_encoder

    return load_encoder(
        settings.model, device=settings.device, batch_size=settings.batch_size, hub_timeout_s=settings.hub_timeout_s
    )


def _video_features(bar: Progress, data: Path, encoder, settings: Settings):
    """Frame vectors of a corpus's videos, sampled as index jobs sample them."""
    from .datasets.synth import load_manifest
    from .datasets.video_features import corpus_video_features
    from .library import Library

    n = sum(1 for i in load_manifest(data)["items"] if i["kind"] == "video")
    task = bar.add_task("embed videos", total=n, info="")
    sampling = Library.sampling_for(settings)
    return corpus_video_features(data, encoder, sampling, progress=lambda k: bar.advance(task, k))


def _library(library: Optional[Path], model: Optional[str] = None, device: Optional[str] = None):
    from .library import Library

    return Library.open(settings=Settings().with_overrides(library_dir=library, model=model, device=device))


@app.command()
def index(
    roots: list[Path] = typer.Argument(..., help="Folders to index (recursively)."),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
    device: Optional[str] = typer.Option(None),
    workers: Optional[int] = typer.Option(
        None,
        min=0,
        help="Decode processes (default: MMSEARCH_DECODE_WORKERS, else 0 with 2 CPU cores or fewer, 2 above).",
    ),
) -> None:
    """Index new and changed files under ROOTS, and drop deleted ones."""
    from .encoders.base import EncoderError
    from .indexer.lock import LibraryBusyError

    try:
        lib = _library(library, model, device)
        job_id = lib.create_job(roots)
    except (EncoderError, FileNotFoundError) as e:
        _fail(str(e))
    with lib, _progress() as bar:
        task = bar.add_task(f"index job {job_id}", total=None, info="")

        def show(summary: dict) -> None:
            elapsed = max(bar.tasks[task].elapsed or 0.0, 1e-6)
            bar.update(
                task,
                total=summary["total"],
                completed=summary["done"],
                info=f"{summary['done'] / elapsed:.1f} files/s, {summary['errors']} errors",
            )

        try:
            summary = lib.run_job(job_id, workers=workers, progress=show)
        except LibraryBusyError as e:
            _fail(str(e))
    console.print(
        f"job {summary['id']} {summary['state']}: {summary['new']} new, {summary['changed']} changed, "
        f"{summary['unchanged']} unchanged, {summary['deleted']} deleted, {summary['errors']} errors"
    )
    if summary["message"]:
        console.print(f"[yellow]{summary['message']}[/yellow]", soft_wrap=True)


@app.command()
def search(
    query: Optional[str] = typer.Argument(
        None, help='Text; weighted terms allowed: \'"red circle" - "white background"\'.'
    ),
    image: Optional[Path] = typer.Option(
        None, "--image", help="Search with an image file (added to the text, if any)."
    ),
    media: Optional[int] = typer.Option(None, "--media", help="Search with an indexed media item's embedding."),
    k: int = typer.Option(10, "--k", min=1, max=1000),
    offset: int = typer.Option(0, min=0),
    kind: str = typer.Option("any", help="image, video or any."),
    path_prefix: Optional[str] = typer.Option(None, help="Only media whose path starts with this."),
    min_score: Optional[float] = typer.Option(None),
    generate: Optional[str] = typer.Option(
        None, help="On a miss: auto (search with the prior, then generate), never, always (default: settings)."
    ),
    steps: Optional[int] = typer.Option(None, min=1, max=1000, help="Sampling steps when generating."),
    seed: Optional[int] = typer.Option(None, help="Seed when generating."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per hit."),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
) -> None:
    """Search the library by text and/or image; optionally generate the image on a miss."""
    from .api.urls import hit_json
    from .encoders.base import EncoderError
    from .imageio import UnreadableImageError, decode_rgb
    from .library import GenerationUnavailable
    from .search.query import QueryError, SearchRequest, build_terms
    from .services.generate_on_miss import GENERATE_MODES, GenerateOptions, prompt_of

    try:
        terms = build_terms(text=query, image=decode_rgb(image) if image else None, media_id=media)
        with _library(library, model) as lib:
            mode = generate or lib.settings.generate_default
            if mode not in GENERATE_MODES:
                _fail(f"--generate must be one of {GENERATE_MODES}")
            request = SearchRequest(
                terms=terms, k=k, offset=offset, kind=kind, path_prefix=path_prefix, min_score=min_score
            )
            options = GenerateOptions(mode=mode, seed=seed, steps=steps or lib.settings.generate_steps)
            outcome = lib.search_or_generate(request, prompt_of(query, image is not None or media is not None), options)
            hits = outcome.hits
    except (QueryError, EncoderError, UnreadableImageError, FileNotFoundError, GenerationUnavailable) as e:
        _fail(str(e))
    if outcome.miss and not as_json:
        console.print(f"[yellow]miss[/yellow]: nothing scored above the threshold; answered via {outcome.via}")
    if as_json:
        for hit in hits:
            sys.stdout.write(json.dumps(hit_json(hit)) + "\n")
        return
    from rich.table import Table

    show_via = any(h.via not in ("text", "image") for h in hits)  # prior or generated: worth a column
    table = Table("#", "score", "kind", "moment", *(["via"] if show_via else []))
    table.add_column("path", overflow="fold")  # wrap long paths rather than cut them
    for rank, hit in enumerate(hits, 1 + offset):
        moment = f"{hit.t_start:.1f}-{hit.t_end:.1f}s" if hit.t_start is not None else ""
        table.add_row(str(rank), f"{hit.score:.3f}", hit.kind, moment, *([hit.via] if show_via else []), hit.path)
    Console().print(table)


@app.command()
def generate(
    prompt: Optional[str] = typer.Argument(None, help="What to draw (not needed with --from-media)."),
    out: Path = typer.Option(..., help="PNG file to write (with --n > 1: FILE-1.png, FILE-2.png, ...)."),
    n: int = typer.Option(1, "--n", min=1, max=16),
    steps: int = typer.Option(25, min=1, max=1000),
    sampler: Optional[str] = typer.Option(
        None, help="ddim or ddpm (ddpm runs every step of the schedule); default: the generator's preferred one."
    ),
    guidance: Optional[float] = typer.Option(
        None, min=0, max=50, help="Classifier-free guidance scale (default: the backend's)."
    ),
    seed: Optional[int] = typer.Option(None),
    from_media: Optional[int] = typer.Option(None, help="Decode from an indexed image's embedding (a variation)."),
    edit: Optional[tuple[str, str]] = typer.Option(
        None, help='With --from-media: move along a text diff, e.g. --edit "red circle" "blue circle".'
    ),
    interpolate: Optional[int] = typer.Option(
        None, help="With --from-media: interpolate towards this media id's embedding."
    ),
    alpha: float = typer.Option(0.5, min=0, max=1, help="Interpolation weight of --interpolate's image."),
    save: bool = typer.Option(False, help="Also store and index the images in the library (as generated media)."),
    generator: Optional[str] = typer.Option(None, help="Generator spec (default: settings' generator, mini)."),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
) -> None:
    """Generate images from text, or variations and edits of an indexed image."""
    from .library import GenerationUnavailable, Library
    from .search.query import QueryError
    from .services.generate_on_miss import GenerateOptions

    if prompt is None and from_media is None:
        _fail("give a PROMPT or --from-media ID")
    if (edit or interpolate is not None) and from_media is None:
        _fail("--edit and --interpolate work on --from-media")
    settings = Settings().with_overrides(library_dir=library, model=model, generator=generator)
    options = GenerateOptions(mode="always", n=n, seed=seed, steps=steps, guidance=guidance, sampler=sampler)
    try:
        with Library.open(settings=settings) as lib:
            if from_media is not None:
                images, params = lib.draw_from_media(
                    from_media, options, edit=edit, interpolate=(interpolate, alpha) if interpolate else None
                )
            else:
                images, params = lib.draw(prompt, options)
            if save:
                console.print(f"stored as media {', '.join(map(str, lib.store_generated(images, params)))}")
    except (GenerationUnavailable, QueryError, ValueError, FileNotFoundError) as e:
        _fail(str(e))
    for k, image in enumerate(images, 1):
        target = out if len(images) == 1 else out.with_name(f"{out.stem}-{k}{out.suffix or '.png'}")
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, format="PNG")
        console.print(f"wrote {target}")


@app.command("delete-generated")
def delete_generated(
    ids: list[int] = typer.Argument(..., help="Media ids of generated images (as /search and /generate answer them)."),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
) -> None:
    """Delete generated images from the library (row, vector, file), e.g. a poor drawing
    that a repeated query would otherwise keep returning; the next miss draws anew."""
    from .encoders.base import EncoderError
    from .library import Library
    from .storage.generated import NotGeneratedError

    settings = Settings().with_overrides(library_dir=library, model=model)
    try:
        with Library.open(settings=settings) as lib:
            deleted = lib.delete_generated(ids)
    except (NotGeneratedError, EncoderError) as e:
        _fail(str(e))
    missing = sorted(set(ids) - set(deleted))
    console.print(
        f"deleted {len(deleted)} generated image(s)"
        + (f"; no media with id {', '.join(map(str, missing))}" if missing else "")
    )


@app.command("calibrate-miss")
def calibrate_miss(
    data: Path = typer.Option(..., help="A heldout corpus written by `mmsearch synth --split heldout`."),
    model: Optional[str] = MODEL_OPT,
    with_prior: bool = typer.Option(
        True, help="Also calibrate the prior's threshold (needs the mini generator's prior)."
    ),
    save: bool = typer.Option(False, help="Write the thresholds into the shipped miss_thresholds.json."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Find the score below which a query counts as a miss, for the model's embedding space."""
    from .encoders.base import EncoderError
    from .evaluation.miss_calibration import calibrate
    from .services.miss_thresholds import save_thresholds

    settings = Settings().with_overrides(model=model)
    try:
        encoder = _encoder(settings)
        prior = None
        if with_prior:
            from .generation import load_generator

            prior = load_generator(settings.generator, encoder, settings.device).query_embeddings
        report = calibrate(encoder, data, prior)
    except (EncoderError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if save:
        save_thresholds(report)
    _print_report(report, as_json)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 exposes the API to your network)."),
    port: int = typer.Option(8000, min=1, max=65535),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from .api.app import create_app
    from .api.observability import configure_json_logging
    from .encoders.base import EncoderError

    try:
        lib = _library(library, model)
        lib.encoder  # load the model before accepting requests
    except EncoderError as e:
        _fail(str(e))
    console.print(f"serving {lib.dir} on http://{host}:{port}/ (web page: /, API docs: /docs)")
    configure_json_logging()
    with lib:
        # uvicorn keeps our JSON handler (log_config=None); its access log would repeat ours
        uvicorn.run(create_app(lib), host=host, port=port, log_config=None, access_log=False)


DEMO_QUERIES = [
    "a red circle",
    "a large blue square in the center",
    "yellow star, top right",
    '"red circle" - "white background"',
]
DEMO_SEED = 2026  # not the seed of the training corpus: the demo shows unseen images
MISSING_FROM_DEMO = ("green", "star")  # the demo library holds none: its generate-on-miss query


def _hold_back(media: Path, pair: tuple[str, str]) -> None:
    """Remove every image showing this (colour, shape) from a synthetic corpus and its manifest."""
    from .datasets import synth as synth_mod

    manifest = synth_mod.load_manifest(media)
    shows = lambda i: any((o["color"], o["shape"]) == pair for o in i.get("objects", []))  # noqa: E731
    for item in filter(shows, manifest["items"]):
        (media / item["file"]).unlink(missing_ok=True)
    manifest["items"] = [i for i in manifest["items"] if not shows(i)]
    (media / synth_mod.MANIFEST).write_text(json.dumps(manifest, indent=1))


def _demo_generate_on_miss(lib) -> None:
    """A query the library cannot answer, twice: the first generates, the repeat hits the stored image."""
    from .library import GenerationUnavailable
    from .search.query import SearchRequest, parse_text
    from .services.generate_on_miss import GenerateOptions

    prompt = f"a {MISSING_FROM_DEMO[0]} {MISSING_FROM_DEMO[1]}"
    drawn: set[int] = set()  # media generated by the first attempt
    for attempt in ("first", "repeat"):
        console.print(
            f"\n[bold]{prompt}[/bold] [dim](generate on miss, {attempt} time; the demo library holds no {prompt[2:]})[/dim]"
        )
        try:
            outcome = lib.search_or_generate(
                SearchRequest(terms=parse_text(prompt), k=3, kind="image"),
                prompt,
                GenerateOptions(mode="auto", seed=0, steps=lib.settings.generate_steps),
            )
        except GenerationUnavailable as e:
            console.print(f"  [yellow]cannot generate:[/yellow] {e}")
            return
        stages = ", ".join(
            f"{s['stage']} best {s['best']:.3f} {'<' if s['best'] < s['threshold'] else '>='} {s['threshold']:.3f}"
            for s in outcome.steps
            if s.get("best") is not None
        )
        # The repeat finds the earlier drawing either by search (the prior stage) or as this prompt's stored generation.
        reused = any(hit.id in drawn for hit in outcome.hits)
        drawn.update(m for s in outcome.steps if s["stage"] == "generated" for m in s["media"])
        console.print(
            f"  miss: {outcome.miss} ({stages}); answered via {outcome.via}"
            + ("; the image generated for this prompt before, not a new one" if reused else "")
        )
        for hit in outcome.hits:
            label = "generated" if hit.generated else "indexed"
            console.print(f"  {hit.score:.3f}  {hit.path}  [dim]({label}, via {hit.via})[/dim]", soft_wrap=True)


@app.command()
def demo(
    library: Path = typer.Option(Path("demo-library"), help="Folder for the demo media and its library."),
    images: int = typer.Option(300, min=1, help="Synthetic images in the demo library."),
    videos: int = typer.Option(16, min=0, help="Synthetic videos in the demo library."),
    serve: bool = typer.Option(True, help="Serve the API afterwards (--no-serve for scripts)."),
    port: int = typer.Option(8000, min=1, max=65535),
) -> None:
    """Build a synthetic library, index it with the built-in model, run example queries, serve the API."""
    from .datasets import synth as synth_mod
    from .library import Library
    from .search.query import SearchRequest, parse_text

    media = library / "media"
    if not (media / synth_mod.MANIFEST).is_file():
        with _progress() as bar:
            task = bar.add_task("synth demo media", total=images + videos, info="")
            synth_mod.generate(
                media, images, videos, seed=DEMO_SEED, split="train", progress=lambda n: bar.advance(task, n)
            )
        _hold_back(media, MISSING_FROM_DEMO)
    lib = Library.open(settings=Settings().with_overrides(library_dir=library / "index", model="mini"))
    with _progress() as bar:
        task = bar.add_task("index", total=None, info="")
        job = lib.index([media], progress=lambda j: bar.update(task, total=j["total"], completed=j["done"]))
    console.print(
        f"indexed {media}: {job['new']} new, {job['unchanged']} unchanged, {job['errors']} errors "
        f"(model {lib.encoder.name}, {lib.encoder.dim}-d)"
    )
    items = synth_mod.load_manifest(media)["items"]
    truth = {str((media / i["file"]).resolve()): i["caption"] for i in items}
    # A video query with a known answer: one shot of a multi-shot demo video.
    multi_shot = [i for i in items if len(i.get("shots", [])) > 1]
    video_queries = []
    if multi_shot:
        shot = multi_shot[0]["shots"][-1]
        video_queries = [
            (shot["caption"], "video", f"{multi_shot[0]['file']} {shot['t_start']:.2f}-{shot['t_end']:.2f}s")
        ]
    for query, kind, expected in [(q, "any", None) for q in DEMO_QUERIES] + video_queries:
        console.print(
            f"\n[bold]{query}[/bold]" + (f" [dim](kind={kind}; the shot is {expected})[/dim]" if expected else "")
        )
        for hit in lib.search(SearchRequest(terms=parse_text(query), k=3, kind=kind)):
            moment = f"  moment {hit.t_start:.2f}-{hit.t_end:.2f}s" if hit.t_start is not None else ""
            console.print(
                f"  {hit.score:.3f}  {hit.path}{moment}  [dim](truth: {truth.get(hit.path, '?')})[/dim]", soft_wrap=True
            )
    _demo_generate_on_miss(lib)
    if serve:
        import uvicorn

        from .api.app import create_app

        console.print(f"\nserving the web page on http://127.0.0.1:{port}/ (API docs: /docs); Ctrl-C stops")
        with lib:
            uvicorn.run(create_app(lib), host="127.0.0.1", port=port, log_level="warning")
    else:
        lib.close()


if __name__ == "__main__":
    app()
