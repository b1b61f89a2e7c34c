"""`mmsearch index-info`: the library's vector indexes, per space and vector kind, read from
their saved files (no model or index is loaded)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from ..config import Settings
from .common import LIBRARY_OPT, console


def index_info(
    library: Optional[Path] = LIBRARY_OPT,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per index."),
) -> None:
    """Per space and vector kind: index type, vectors, memory, search setting, and the recall@10
    and latency measured at its last tuning."""
    from ..services.index_report import saved_indexes

    settings = Settings().with_overrides(library_dir=library)
    entries = saved_indexes(settings.library_dir / "indexes")
    for e in entries:
        if as_json:
            sys.stdout.write(json.dumps(e) + "\n")
            continue
        sys.stdout.write(f"{e['space']} {e['kind']}: {describe(e)}\n")
    if not entries and not as_json:
        console.print(f"no saved index in {settings.library_dir / 'indexes'} (index something first)")


def describe(entry: dict) -> str:
    """One line: type, vectors, memory, setting, and what the last tuning measured."""
    line = f"{entry['factory']}, {entry['vectors']:,} vectors, ~{entry['memory_bytes'] / 2**20:,.1f} MiB"
    tuning = entry.get("tuning")
    if entry["factory"] == "Flat":
        return line + ", exact search"
    if not tuning:
        return line + ", not tuned yet"
    recall = ", ".join(f"{kind} {r:.3f}" for kind, r in tuning["recall"].items())
    verdict = "reached" if tuning["reached"] else "NOT reached"
    setting = ", ".join(f"{k} {v}" for k, v in tuning["params"].items())
    others = [c for c in entry.get("compared", []) if c["factory"] != entry["factory"]]
    chosen_over = "".join(f"; chosen over {_measured(c)}" for c in others)
    return (
        f"{line}, {setting}: recall@10 {recall} (target {tuning['target']} {verdict}), "
        f"p50 {tuning['p50_ms']:.2f} ms at {tuning['vectors']:,} vectors{chosen_over}"
    )


def _measured(candidate: dict) -> str:
    """A type an index was measured against: its latency, whether it reached the target, and
    at how many vectors (the choice is not made again as the index grows)."""
    size = f" at {candidate['vectors']:,} vectors" if "vectors" in candidate else ""
    verdict = "reached" if candidate["reached"] else "NOT reached"
    return f"{candidate['factory']}{size} (p50 {candidate['p50_ms']:.2f} ms, {verdict})"
