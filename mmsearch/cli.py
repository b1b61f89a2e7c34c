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

app = typer.Typer(help="mmsearch: multimodal search over your photos and videos.", no_args_is_help=True, add_completion=False)
train_app = typer.Typer(help="Train the built-in models on a synthetic (or captioned) corpus.", no_args_is_help=True)
app.add_typer(train_app, name="train")
console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(code)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


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
        manifest = synth_mod.generate(out_dir, images, videos, seed=seed, split=split, workers=workers,
                                      progress=lambda n: bar.advance(task, n))
    console.print(f"wrote {len(manifest['items'])} items to {out_dir}/ (manifest: {out_dir / synth_mod.MANIFEST})")


@train_app.command("clip")
def train_clip(
    data: Path = typer.Option(..., help="A corpus written by `mmsearch synth` (the train split)."),
    out: Path = typer.Option(Path(__file__).resolve().parent / "weights" / "mini", help="Model folder to write (open_clip local-dir format)."),
    steps: int = typer.Option(2000, min=1),
    batch_size: int = typer.Option(256, min=2),
    lr: float = typer.Option(7e-4, min=0),
    seed: int = typer.Option(0),
    threads: int = typer.Option(0, min=0, help="Torch CPU threads (0: default)."),
    restart: bool = typer.Option(False, help="Ignore an existing train-state.pt in --out instead of resuming from it."),
    init: Optional[Path] = typer.Option(None, help="Start a fresh run from these exported weights (open_clip_model.safetensors)."),
    attribute_weight: float = typer.Option(1.0, min=0, help="Weight of the auxiliary shape/colour-presence loss (0: off)."),
) -> None:
    """Train the built-in mini CLIP (resumes from OUT/train-state.pt when present)."""
    from .training.clip_trainer import ClipTrainConfig, train_clip as run

    cfg = ClipTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, threads=threads, attribute_weight=attribute_weight,
                          init_weights=str(init) if init else None)
    try:
        with _progress() as bar:
            task = bar.add_task("train clip", total=steps, info="")
            summary = run(data, out, cfg, resume=not restart,
                          progress=lambda s, n, loss: bar.update(task, completed=s, info=f"loss {loss:.3f}"))
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
    data: Path = typer.Option(..., help="A video corpus written by `mmsearch synth --videos N` (the train split)."),
    model: Optional[str] = typer.Option(None, help="Frozen encoder spec (default: settings' model)."),
    out: Path = typer.Option(Path(__file__).resolve().parent / "weights" / "mini", help="Folder to write the seqTransf head into."),
    steps: int = typer.Option(2500, min=1),
    batch_size: int = typer.Option(128, min=2),
    lr: float = typer.Option(5e-4, min=0),
    seed: int = typer.Option(0),
) -> None:
    """Train the seqTransf temporal pooling head on captioned videos (encoders frozen)."""
    from .encoders.base import EncoderError
    from .training.temporal_trainer import TemporalTrainConfig, all_captions, train_temporal as run

    settings = Settings().with_overrides(model=model)
    try:
        encoder = _encoder(settings)
        with _progress() as bar:
            videos = _video_features(bar, data, encoder, settings)
            captions = all_captions(videos)
            text_vectors = encoder.embed_texts(captions)
            task = bar.add_task("train temporal", total=steps, info="")
            summary = run(videos, text_vectors, captions, out, TemporalTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed),
                          progress=lambda s, n, loss: bar.update(task, completed=s, info=f"loss {loss:.3f}"))
    except (EncoderError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    console.print_json(json.dumps(summary))


@app.command("eval-video")
def eval_video(
    data: Path = typer.Option(..., help="A heldout video corpus written by `mmsearch synth --videos N --split heldout`."),
    model: Optional[str] = typer.Option(None, help="Encoder spec (default: settings' model)."),
    pooling: str = typer.Option("seqTransf", help="mean or seqTransf (the head shipped with the model, or --temporal-head)."),
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

    return load_encoder(settings.model, device=settings.device, batch_size=settings.batch_size, hub_timeout_s=settings.hub_timeout_s)


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


LIBRARY_OPT = typer.Option(None, "--library", "-l", help="Library folder (default: MMSEARCH_LIBRARY_DIR or ./mmsearch-library).")
MODEL_OPT = typer.Option(None, "--model", "-m", help="Encoder spec (default: MMSEARCH_MODEL or mini).")


@app.command()
def index(
    roots: list[Path] = typer.Argument(..., help="Folders to index (recursively)."),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
    device: Optional[str] = typer.Option(None),
    workers: Optional[int] = typer.Option(None, min=0, help="Decode processes (default: MMSEARCH_DECODE_WORKERS)."),
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
            bar.update(task, total=summary["total"], completed=summary["done"],
                       info=f"{summary['done'] / elapsed:.1f} files/s, {summary['errors']} errors")

        try:
            summary = lib.run_job(job_id, workers=workers, progress=show)
        except LibraryBusyError as e:
            _fail(str(e))
    console.print(f"job {summary['id']} {summary['state']}: {summary['new']} new, {summary['changed']} changed, "
                  f"{summary['unchanged']} unchanged, {summary['deleted']} deleted, {summary['errors']} errors")
    if summary["message"]:
        console.print(f"[yellow]{summary['message']}[/yellow]", soft_wrap=True)


@app.command()
def search(
    query: Optional[str] = typer.Argument(None, help='Text; weighted terms allowed: \'"red circle" - "white background"\'.'),
    image: Optional[Path] = typer.Option(None, "--image", help="Search with an image file (added to the text, if any)."),
    media: Optional[int] = typer.Option(None, "--media", help="Search with an indexed media item's embedding."),
    k: int = typer.Option(10, "--k", min=1, max=1000),
    offset: int = typer.Option(0, min=0),
    kind: str = typer.Option("any", help="image, video or any."),
    path_prefix: Optional[str] = typer.Option(None, help="Only media whose path starts with this."),
    min_score: Optional[float] = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per hit."),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
) -> None:
    """Search the library by text and/or image."""
    from .encoders.base import EncoderError
    from .imageio import UnreadableImageError, decode_rgb
    from .search.query import QueryError, SearchRequest, build_terms

    try:
        terms = build_terms(text=query, image=decode_rgb(image) if image else None, media_id=media)
        with _library(library, model) as lib:
            hits = lib.search(SearchRequest(terms=terms, k=k, offset=offset, kind=kind, path_prefix=path_prefix, min_score=min_score))
    except (QueryError, EncoderError, UnreadableImageError, FileNotFoundError) as e:
        _fail(str(e))
    if as_json:
        for hit in hits:
            sys.stdout.write(json.dumps(hit.to_dict()) + "\n")
        return
    from rich.table import Table

    table = Table("#", "score", "kind", "moment")
    table.add_column("path", overflow="fold")  # wrap long paths rather than cut them
    for rank, hit in enumerate(hits, 1 + offset):
        moment = f"{hit.t_start:.1f}-{hit.t_end:.1f}s" if hit.t_start is not None else ""
        table.add_row(str(rank), f"{hit.score:.3f}", hit.kind, moment, hit.path)
    Console().print(table)


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
    from .encoders.base import EncoderError

    try:
        lib = _library(library, model)
        lib.encoder  # load the model before accepting requests
    except EncoderError as e:
        _fail(str(e))
    console.print(f"serving {lib.dir} on http://{host}:{port}/ (API docs: /docs)")
    with lib:
        uvicorn.run(create_app(lib), host=host, port=port, log_level="info")


DEMO_QUERIES = ["a red circle", "a large blue square in the center", "yellow star, top right", '"red circle" - "white background"']
DEMO_SEED = 2026  # not the seed of the training corpus: the demo shows unseen images


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
            synth_mod.generate(media, images, videos, seed=DEMO_SEED, split="train", progress=lambda n: bar.advance(task, n))
    lib = Library.open(settings=Settings().with_overrides(library_dir=library / "index", model="mini"))
    with _progress() as bar:
        task = bar.add_task("index", total=None, info="")
        job = lib.index([media], progress=lambda j: bar.update(task, total=j["total"], completed=j["done"]))
    console.print(f"indexed {media}: {job['new']} new, {job['unchanged']} unchanged, {job['errors']} errors "
                  f"(model {lib.encoder.name}, {lib.encoder.dim}-d)")
    items = synth_mod.load_manifest(media)["items"]
    truth = {str((media / i["file"]).resolve()): i["caption"] for i in items}
    # A video query with a known answer: one shot of a multi-shot demo video.
    multi_shot = [i for i in items if len(i.get("shots", [])) > 1]
    video_queries = []
    if multi_shot:
        shot = multi_shot[0]["shots"][-1]
        video_queries = [(shot["caption"], "video", f"{multi_shot[0]['file']} {shot['t_start']:.2f}-{shot['t_end']:.2f}s")]
    for query, kind, expected in [(q, "any", None) for q in DEMO_QUERIES] + video_queries:
        console.print(f"\n[bold]{query}[/bold]" + (f" [dim](kind={kind}; the shot is {expected})[/dim]" if expected else ""))
        for hit in lib.search(SearchRequest(terms=parse_text(query), k=3, kind=kind)):
            moment = f"  moment {hit.t_start:.2f}-{hit.t_end:.2f}s" if hit.t_start is not None else ""
            console.print(f"  {hit.score:.3f}  {hit.path}{moment}  [dim](truth: {truth.get(hit.path, '?')})[/dim]", soft_wrap=True)
    if serve:
        import uvicorn

        from .api.app import create_app

        console.print(f"\nserving the API on http://127.0.0.1:{port}/ (docs: /docs); Ctrl-C stops")
        with lib:
            uvicorn.run(create_app(lib), host="127.0.0.1", port=port, log_level="warning")
    else:
        lib.close()

if __name__ == "__main__":
    app()
