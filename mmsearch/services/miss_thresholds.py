"""The scores below which a search counts a miss: configured ones, else those calibrated
for the encoder's space (`mmsearch calibrate-miss --save` writes them), else a default."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import builtin_weights
from ..storage.files import atomic_write
from .generate_on_miss import MissThresholds

THRESHOLDS_FILE = builtin_weights() / "miss_thresholds.json"
# Text-to-image cosine below which a space without calibrated thresholds counts a miss
# (CLIP ViT models score good matches around 0.28-0.35).
DEFAULT_TEXT_MISS_THRESHOLD = 0.25


def load_thresholds(space: str, path: Path = THRESHOLDS_FILE) -> dict[str, float]:
    """Calibrated thresholds of a space ({} when it has none)."""
    if not path.is_file():
        return {}
    table = json.loads(path.read_text())
    return {k: v["threshold"] for k, v in table.get(space, {}).items() if isinstance(v, dict) and "threshold" in v}


def save_thresholds(report: dict, path: Path = THRESHOLDS_FILE) -> None:
    """Record a calibration report (see evaluation.miss_calibration) under its space."""
    table = json.loads(path.read_text()) if path.is_file() else {}
    table[report["space"]] = report
    atomic_write(path, json.dumps(table, indent=2) + "\n")


def miss_thresholds(space: str, text: float | None = None, prior: float | None = None) -> MissThresholds:
    """Thresholds for a space: the given ones win over calibrated ones, which win over the default."""
    calibrated = load_thresholds(space)
    return MissThresholds(
        text=text if text is not None else calibrated.get("text", DEFAULT_TEXT_MISS_THRESHOLD),
        prior=prior if prior is not None else calibrated.get("prior"),
    )
