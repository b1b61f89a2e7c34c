"""`mmsearch duplicates`: the library's groups of near-identical images, each with the
suggested keeper. Lists them; deletes nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .common import LIBRARY_OPT, MODEL_OPT, console, open_library


def duplicates(
    min_similarity: Optional[float] = typer.Option(
        None, min=-1.0, max=1.0, help="Embedding similarity from which images may be copies (default: settings)."
    ),
    max_distance: Optional[int] = typer.Option(
        None, min=0, max=64, help="Most perceptual-hash bits in which copies may differ (default: settings)."
    ),
    limit: int = typer.Option(50, min=1, help="Groups to list, largest first."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per group: keeper and members."),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
) -> None:
    """Groups of copies of one picture (resized, re-encoded, slightly cropped); the first of
    each group is the one to keep (the largest, then the oldest). Nothing is deleted."""
    from ..api.urls import duplicate_group_json

    with open_library(library, model) as lib:
        report = lib.duplicates(min_similarity, max_distance)
    shown = report.groups[:limit]
    if as_json:
        for group in shown:
            sys.stdout.write(json.dumps(duplicate_group_json(group)) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("group", "keep", "similarity", "hash bits", "pixels", "bytes", "taken")
    table.add_column("path", overflow="fold")
    for number, group in enumerate(shown, 1):
        for m in group.members:
            keeper = m.hit.id == group.keeper.id
            table.add_row(
                str(number) if keeper else "",
                "keep" if keeper else "",
                f"{m.hit.score:.3f}",
                str(m.hash_distance),
                f"{m.width}x{m.height}" if m.width else "",
                f"{m.size:,}",
                (m.hit.taken_at or "")[:10],
                m.hit.path,
            )
    Console().print(table)
    more = f" (the first {limit} listed)" if len(report.groups) > limit else ""
    console.print(
        f"{len(report.groups)} groups among {report.images:,} images{more}; "
        f"similarity >= {report.settings['min_similarity']}, hash bits <= {report.settings['max_distance']}"
    )
