from pathlib import Path

import pytest
from pydantic import ValidationError

from mmsearch.config import Settings, parse_bytes


def test_env_vars_set_fields_and_flags_override(monkeypatch, tmp_path):
    monkeypatch.setenv("MMSEARCH_LIBRARY_DIR", str(tmp_path / "lib"))
    monkeypatch.setenv("MMSEARCH_MODEL", "ViT-B-32/laion2b_s34b_b79k")
    monkeypatch.setenv("MMSEARCH_MISS_THRESHOLD", "0.25")
    s = Settings()
    assert s.library_dir == tmp_path / "lib"
    assert s.model == "ViT-B-32/laion2b_s34b_b79k"
    assert s.miss_threshold == 0.25
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'lib' / 'mmsearch.db').resolve()}"
    flagged = s.with_overrides(model="mini", device=None)
    assert flagged.model == "mini" and flagged.device == "auto"
    assert flagged.library_dir == tmp_path / "lib"


def test_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv("MMSEARCH_DEVICE", "tpu")
    with pytest.raises(ValidationError, match="device"):
        Settings()


def test_database_url_wins_over_the_default():
    s = Settings(library_dir=Path("/tmp/x"), database_url="postgresql+psycopg://u@h/db")
    assert s.resolved_database_url == "postgresql+psycopg://u@h/db"


def test_the_index_memory_budget_takes_units(monkeypatch):
    assert parse_bytes("2GiB") == 2 * 2**30 and parse_bytes("1.5 GB") == 1_500_000_000
    assert parse_bytes("512M") == 512 * 2**20 and parse_bytes("1000") == 1000
    monkeypatch.setenv("MMSEARCH_INDEX_MEMORY", "1GiB")
    assert (
        Settings().index_memory == 2**30 and Settings().with_overrides(index_memory="3 MiB").index_memory == 3 * 2**20
    )
    for bad in ("lots", "2 parsecs", "-1GB"):
        monkeypatch.setenv("MMSEARCH_INDEX_MEMORY", bad)
        with pytest.raises(ValidationError, match="not a size"):
            Settings()
    monkeypatch.setenv("MMSEARCH_INDEX_MEMORY", "0")
    with pytest.raises(ValidationError, match="index_memory"):
        Settings()
