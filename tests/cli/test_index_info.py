"""`mmsearch index-info`: after an index job, the library's indexes with the recall their
tuning measured; the job waits for that tuning before it exits."""

import json

from typer.testing import CliRunner

from mmsearch.cli import app
from mmsearch.cli.indexes import describe
from mmsearch.storage import index_choice
from mmsearch.storage.index_set import index_entry

from ..helpers import make_corpus

runner = CliRunner()


def test_an_index_job_leaves_tuned_indexes_that_index_info_reports(tmp_path, monkeypatch):
    monkeypatch.setattr(index_choice, "FLAT_MAX_VECTORS", 10)  # approximate from 10 vectors, not 100k
    monkeypatch.setenv("MMSEARCH_DECODE_WORKERS", "0")
    root, lib = tmp_path / "photos", str(tmp_path / "lib")
    make_corpus(root, n=30, seed=5)
    indexed = runner.invoke(app, ["index", str(root), "--library", lib, "--index-memory", "64MiB"])
    assert indexed.exit_code == 0, indexed.output

    listed = runner.invoke(app, ["index-info", "--library", lib, "--json"])
    assert listed.exit_code == 0
    [entry] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (entry["kind"], entry["factory"], entry["vectors"]) == ("image", "HNSW32,Flat", 30)  # too few for IVF
    tuning = entry["tuning"]  # tuned by the job before it exited, and saved with the index
    assert tuning["reached"] and tuning["target"] == 0.95 and 10 < tuning["vectors"] <= 30
    # library vectors, vectors moved off them, and the model's own text embeddings of probe phrases
    assert set(tuning["recall"]) == {"image-like", "text-like", "text"} and min(tuning["recall"].values()) >= 0.95
    assert entry["params"] == tuning["params"] and entry["memory_bytes"] > 0

    text = runner.invoke(app, ["index-info", "--library", lib])
    assert "HNSW32,Flat, 30 vectors" in text.stdout and "recall@10 image-like" in text.stdout
    assert "(target 0.95 reached)" in text.stdout

    bad = runner.invoke(app, ["index", str(root), "--library", lib, "--index-memory", "lots"])
    assert bad.exit_code == 2 and "not a size" in bad.output


def test_index_info_of_a_library_without_indexes_says_so(tmp_path):
    empty = runner.invoke(app, ["index-info", "--library", str(tmp_path / "nothing")])
    assert empty.exit_code == 0 and empty.stdout == "" and "no saved index" in empty.output


def test_index_info_says_which_types_an_index_was_measured_against():
    tuning = {"params": {"nprobe": 2}, "recall": {"image-like": 0.99}, "p50_ms": 0.2, "target": 0.95}
    tuning.update(reached=True, vectors=601)
    compared = [
        {"factory": "HNSW32,Flat", "params": {"efSearch": 48}, "recall": {}, "p50_ms": 0.5, "reached": True},
        {"factory": "IVF16,Flat", "params": {}, "recall": {}, "p50_ms": 0.3, "reached": False, "vectors": 601},
        {"factory": "IVF8,Flat", "params": {"nprobe": 2}, "recall": {}, "p50_ms": 0.2, "reached": True},
    ]
    entry = index_entry("s", "image", "IVF8,Flat", 601, 601, 8, tuning, compared)
    assert describe(entry) == (
        "IVF8,Flat, 601 vectors, ~0.0 MiB, nprobe 2: recall@10 image-like 0.990 (target 0.95 reached), "
        "p50 0.20 ms at 601 vectors; chosen over HNSW32,Flat (p50 0.50 ms, reached); "
        "chosen over IVF16,Flat at 601 vectors (p50 0.30 ms, NOT reached)"
    )
