"""What every benchmark script does with its table: name the machine, print, append to BENCHMARKS.md."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def device_description() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"


def publish(lines: list[str], write: bool) -> None:
    text = "\n".join(lines)
    print(text)
    if write:
        with BENCHMARKS_MD.open("a") as f:
            f.write(text + "\n")
