"""Saving and loading the generation models: a config JSON beside safetensors weights."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..storage.files import atomic_path, atomic_write


def save_pretrained(model: torch.nn.Module, out_dir: str | Path, config_name: str, weights_name: str) -> None:
    """Config JSON plus fp16 safetensors (half the bytes to ship; loading casts back), written
    atomically: a reader never sees half a model."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.half() if v.is_floating_point() else v).detach().contiguous().cpu() for k, v in model.state_dict().items()
    }
    with atomic_path(out_dir / weights_name) as tmp:
        save_file(state, str(tmp))
    atomic_write(out_dir / config_name, json.dumps(asdict(model.cfg), indent=2) + "\n")


def load_pretrained(cls, config_cls, model_dir: str | Path, config_name: str, weights_name: str, device: str):
    """The model `cls(config_cls(**config))` with the saved weights, in eval mode on `device`."""
    model_dir = Path(model_dir)
    for name in (config_name, weights_name):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(
                f"{model_dir / name} is missing: train one with `mmsearch train` or pass another model folder"
            )
    cfg = config_cls(**json.loads((model_dir / config_name).read_text()))
    model = cls(cfg)
    model.load_state_dict(load_file(str(model_dir / weights_name)))
    return model.to(device).eval()
