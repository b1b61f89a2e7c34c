"""GET /indexes: the served library's indexes, with the live tuning of those it has open."""

import httpx
import pytest

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.storage import index_choice

from ..helpers import make_corpus, open_library

pytestmark = pytest.mark.slow  # builds and serves a library


def test_indexes_lists_each_index_with_its_measured_recall(tmp_path, mini_encoder, monkeypatch):
    monkeypatch.setattr(index_choice, "FLAT_MAX_VECTORS", 10)  # approximate from 10 vectors, not 100k
    make_corpus(tmp_path / "photos", n=24, seed=6)
    lib = open_library(tmp_path / "lib", encoder=mini_encoder, generator="none")
    lib.index([tmp_path / "photos"])
    assert lib.indexes.wait_upkeep(60)
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        listed = client.get("/indexes")
    lib.close()
    assert listed.status_code == 200
    [entry] = listed.json()
    assert (entry["space"], entry["kind"], entry["factory"], entry["vectors"]) == (
        mini_encoder.space,
        "image",
        "HNSW32,Flat",
        24,
    )
    # tuned once approximate (the job's first batches), again only when it has doubled since
    assert entry["upkeep"] == "idle" and entry["tuning"]["reached"] and 10 < entry["tuning"]["vectors"] <= 24
    assert set(entry["tuning"]["recall"]) == {"image-like", "text-like", "text"}
    assert entry["params"] == entry["tuning"]["params"] and entry["file_bytes"] > 0
    assert entry["compared"] == []  # 24 vectors are too few for IVF lists: one type was possible
