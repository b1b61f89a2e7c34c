"""`mmsearch generate` and `mmsearch delete-generated` with a briefly trained generator (the
`trained` fixture, tests/conftest.py)."""

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mmsearch.cli import app

from ..helpers import open_library

runner = CliRunner()


@pytest.mark.slow
def test_cli_generate_writes_the_file_and_stores_only_with_save(trained, tmp_path, generated_count):
    base, gen_dir = trained
    args = [
        "generate",
        "a red star",
        "--steps",
        "2",
        "--seed",
        "3",
        "--library",
        str(base / "lib"),
        "--generator",
        f"mini:{gen_dir}",
    ]
    with open_library(base / "lib") as lib:
        before = generated_count(lib)
    saved = runner.invoke(app, [*args, "--out", str(tmp_path / "saved.png"), "--save"])
    assert saved.exit_code == 0, saved.output
    stored = int(saved.output.split("stored as media ")[1].split()[0])
    loose = runner.invoke(app, [*args, "--out", str(tmp_path / "loose.png")])  # the same drawing, not stored
    assert loose.exit_code == 0, loose.output
    assert Image.open(tmp_path / "loose.png").size == (128, 128)
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "loose.png")), np.asarray(Image.open(tmp_path / "saved.png"))
    )
    with open_library(base / "lib") as lib:
        assert generated_count(lib) == before + 1 and lib.media(stored).generated  # the stored twin survives

    refused = runner.invoke(app, ["delete-generated", "1", str(stored), "--library", str(base / "lib")])
    assert refused.exit_code != 0 and "came from your folders" in refused.output
    deleted = runner.invoke(app, ["delete-generated", str(stored), "999999", "--library", str(base / "lib")])
    assert deleted.exit_code == 0 and "deleted 1 generated image(s); no media with id 999999" in deleted.output
    with open_library(base / "lib") as lib:
        assert generated_count(lib) == before and lib.media(stored) is None
