"""The generator's trainer starting from an exported model."""

import pytest
import torch

from mmsearch.generation.models import DiffusionPrior, PriorConfig
from mmsearch.training.diffusion_trainer import DiffusionTrainConfig, train_prior
from mmsearch.training.pairs import library_pairs

from ..helpers import open_library


@pytest.mark.slow
def test_training_can_start_from_an_exported_model(trained, mini_encoder, tmp_path):
    """--init: a fresh run starts from the given weights (with lr 0 it keeps them exactly);
    a model of other shapes is refused with a clear error."""
    base, gen_dir = trained
    with open_library(base / "lib", encoder=mini_encoder) as lib:
        pairs = library_pairs(lib.store, mini_encoder.space)
    cfg = PriorConfig(dim=mini_encoder.dim, width=64, layers=2, heads=2, space=mini_encoder.space)
    train_prior(
        pairs,
        mini_encoder.embed_texts,
        tmp_path / "out",
        tmp_path / "work",
        DiffusionTrainConfig(steps=2, batch_size=8, lr=0.0, init=str(gen_dir)),
        cfg,
    )
    before, after = DiffusionPrior.load(gen_dir).state_dict(), DiffusionPrior.load(tmp_path / "out").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    wider = PriorConfig(dim=mini_encoder.dim, width=96, layers=2, heads=2, space=mini_encoder.space)
    with pytest.raises(ValueError, match="cannot fine-tune from"):
        train_prior(
            pairs,
            mini_encoder.embed_texts,
            tmp_path / "out2",
            tmp_path / "work2",
            DiffusionTrainConfig(steps=1, batch_size=8, init=str(gen_dir)),
            wider,
        )
