"""The thresholds of generate-on-miss: configured ones win; otherwise the text stage uses the
library's calibrated, label-free rule (services.miss_signal, per space and media kind) and
the prior stage the labelled calibration shipped for the encoder's space
(`mmsearch calibrate-miss --data HELDOUT --save` writes it; spaces without one skip the
prior stage)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from ..config import builtin_weights
from ..search.engine import SearchEngine
from ..storage.files import atomic_write
from .generate_on_miss import MissThresholds
from .miss_signal import MissSignal, miss_signal_for

THRESHOLDS_FILE = builtin_weights() / "miss_thresholds.json"


def load_thresholds(space: str, path: Path = THRESHOLDS_FILE) -> dict[str, float]:
    """Labelled thresholds of a space ({} when it has none)."""
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    table = _table(path, stamp)
    return {k: v["threshold"] for k, v in table.get(space, {}).items() if isinstance(v, dict) and "threshold" in v}


@functools.lru_cache(maxsize=8)
def _table(path: Path, stamp: int) -> dict:
    """The file's table, parsed once per version of it: every search asks for the thresholds."""
    return json.loads(path.read_text())


def save_thresholds(report: dict, path: Path = THRESHOLDS_FILE) -> None:
    """Record a labelled calibration report (see evaluation.miss_calibration) under its space."""
    table = json.loads(path.read_text()) if path.is_file() else {}
    table[report["space"]] = report
    atomic_write(path, json.dumps(table, indent=2) + "\n")


def miss_thresholds(
    space: str,
    text: float | None = None,
    prior: float | None = None,
    engine: SearchEngine | None = None,
    library_dir: Path | None = None,
) -> MissThresholds:
    """Thresholds for a space. A configured text threshold wins; else, given the library's
    engine, its calibrated rule decides (kept in library_dir/miss_signal.json). A configured
    prior threshold wins over the shipped labelled one."""
    signal: MissSignal | None = None
    if text is None and engine is not None:
        signal = miss_signal_for(engine, library_dir)
    shipped = load_thresholds(space).get("prior")
    return MissThresholds(
        text=text,
        prior=prior if prior is not None else shipped,
        signal=signal,
        prior_rule="configured" if prior is not None else "shipped",
    )
