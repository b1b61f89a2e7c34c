"""`mmsearch synth`: write a synthetic corpus (mmsearch.datasets.synth)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, fail, progress_bar


def synth(
    out_dir: Path = typer.Argument(..., help="Folder to write images/, videos/ and manifest.json into."),
    images: int = typer.Option(200, min=0, help="Number of images."),
    videos: int = typer.Option(0, min=0, help="Number of mp4 videos."),
    seed: int = typer.Option(0, help="Same seed, same files."),
    split: str = typer.Option("train", help="train, or heldout (other seeds; colour-shape pairs never seen in train)."),
    workers: int = typer.Option(1, min=1, help="Processes drawing images."),
) -> None:
    """Write a deterministic synthetic corpus with captions and ground-truth attributes."""
    from ..datasets import synth as synth_mod

    if split not in synth_mod.SPLITS:
        fail(f"--split must be one of {sorted(synth_mod.SPLITS)}")
    with progress_bar() as bar:
        task = bar.add_task("synth", total=images + videos, info="")
        manifest = synth_mod.generate(
            out_dir, images, videos, seed=seed, split=split, workers=workers, progress=lambda n: bar.advance(task, n)
        )
    console.print(f"wrote {len(manifest['items'])} items to {out_dir}/ (manifest: {out_dir / synth_mod.MANIFEST})")
