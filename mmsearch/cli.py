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
    console.print(f"[red]error:[/red] {message}")
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
) -> None:
    """Train the built-in mini CLIP (resumes from OUT/train-state.pt when present)."""
    from .training.clip_trainer import ClipTrainConfig, train_clip as run

    cfg = ClipTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, threads=threads)
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
    from .encoders import load_encoder
    from .encoders.base import EncoderError
    from .evaluation.encoder_eval import evaluate_encoder

    settings = Settings().with_overrides(model=model, device=device)
    try:
        encoder = load_encoder(settings.model, device=settings.device, batch_size=settings.batch_size, hub_timeout_s=settings.hub_timeout_s)
        report = evaluate_encoder(encoder, data)
    except (EncoderError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        console.print_json(json.dumps(report))


DEMO_QUERIES = ["a red circle", "a large blue square in the center", "yellow star, top right", "a green star"]


@app.command()
def demo(
    library: Path = typer.Option(Path("demo-library"), help="Folder for the demo media."),
    images: int = typer.Option(300, min=1, help="Synthetic images in the demo library."),
    videos: int = typer.Option(6, min=0, help="Synthetic videos in the demo library."),
    serve: bool = typer.Option(True, help="Serve the API afterwards (--no-serve for scripts)."),
) -> None:
    """Build a synthetic library, embed it with the built-in model, and run example queries."""
    from .datasets import synth as synth_mod
    from .encoders import load_encoder
    from .evaluation.demo_scan import rank_images

    media = library / "media"
    if not (media / synth_mod.MANIFEST).is_file():
        with _progress() as bar:
            task = bar.add_task("synth demo library", total=images + videos, info="")
            synth_mod.generate(media, images, videos, seed=0, split="train", progress=lambda n: bar.advance(task, n))
    encoder = load_encoder("mini")
    console.print(f"model: {encoder.name} ({encoder.space}, {encoder.dim}-d)")
    for query, hits in rank_images(encoder, media, DEMO_QUERIES, k=3):
        console.print(f"\n[bold]{query}[/bold]")
        for path, score, caption in hits:
            console.print(f"  {score:.3f}  {path}  [dim]({caption})[/dim]")
    if serve:
        console.print("\n[yellow]The search index and the HTTP API are not built yet; nothing to serve.[/yellow]")


if __name__ == "__main__":
    app()
