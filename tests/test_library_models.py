"""A library owns its model: recorded when first indexed, used without --model, and changed
without downtime: a second model's vectors are added beside the first (same media ids),
switched to once complete, and the first dropped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from mmsearch.indexer.lock import writer_lock
from mmsearch.library import Library, LibraryBusyError, ModelMismatchError, ModelNotAdded, ModelStateError
from mmsearch.search.query import SearchRequest, parse_text
from mmsearch.services import active_model
from mmsearch.storage.generated import GenerationParams
from mmsearch.storage.index_set import space_slug
from mmsearch.storage.store import Media, Vector

from .helpers import make_corpus, open_library, perturbed_mini

pytestmark = pytest.mark.slow  # indexes a corpus, then embeds it with a second model

V1 = Path(__file__).parent / "fixtures" / "libraries" / "v1"


def search(lib: Library, text: str, k: int = 10):
    return lib.search(SearchRequest(terms=parse_text(text), k=k))


def media_ids(lib: Library) -> list[int]:
    with lib.store.session() as s:
        return sorted(s.scalars(select(Media.id)))


def index_files(lib: Library, space: str) -> list[str]:
    return sorted(p.name for p in (lib.dir / "indexes").iterdir() if p.name.startswith(space_slug(space)))


@pytest.fixture(scope="module")
def model_b(tmp_path_factory) -> str:
    return str(perturbed_mini(tmp_path_factory.mktemp("model-b") / "mini-b"))


@pytest.fixture
def library(tmp_path, mini_encoder, videos):
    """20 images, 8 videos and one generated image, indexed with mini."""
    root = tmp_path / "photos"
    make_corpus(root, n=20, seed=3)
    lib = open_library(tmp_path / "lib", encoder=mini_encoder, generator="none")
    lib.index([root, videos[0]])
    params = GenerationParams("a red circle", "test", 0, 1, None, "ddim")
    lib.store_generated([Image.new("RGB", (64, 64), (220, 20, 20))], params)
    yield lib
    lib.close()


def test_the_first_index_records_the_model_and_later_opens_use_it(library, tmp_path):
    (row,) = library.models()
    assert (row["spec"], row["active"], row["space"]) == ("mini", True, library.encoder.space)
    assert row["covered"] == row["total"] == 29 and row["coverage"] == 1.0
    library.close()
    settings = library.settings.model_copy(update={"model": None})  # as in an environment naming no model
    again = Library.open(tmp_path / "lib", settings=settings)
    assert again.model_spec == "mini" and search(again, "a red circle")
    again.close()
    with pytest.raises(ModelMismatchError) as refused:
        Library.open(tmp_path / "lib", settings=settings.with_overrides(model="ViT-B-32/openai"))
    assert str(refused.value) == (
        "this library searches with model 'mini', not 'ViT-B-32/openai' (leave out --model / MMSEARCH_MODEL to "
        "use it); to search with 'ViT-B-32/openai': `mmsearch model add ViT-B-32/openai`, then "
        "`mmsearch model use ViT-B-32/openai`"
    )


def test_a_second_model_is_added_beside_switched_to_and_the_first_dropped(library, model_b):
    ids = media_ids(library)
    space_a = library.encoder.space
    before = [(h.id, h.score) for h in search(library, "a red circle")]
    with pytest.raises(ModelNotAdded, match="no vectors of model"):
        library.use_model(model_b)

    summary = library.add_model(model_b)
    assert (summary["state"], summary["total"], summary["done"], summary["errors"]) == ("done", 29, 29, 0)
    rows = {r["spec"]: r for r in library.models()}
    b = rows[model_b]
    assert (b["active"], b["covered"], b["total"]) == (False, 29, 29)
    assert b["vectors"]["image"] == 21 and b["vectors"]["video"] == 8 and b["vectors"]["segment"] >= 8
    assert b["vectors"]["frame"] == rows["mini"]["vectors"]["frame"]  # the same frames, embedded again
    assert b["index_bytes"] > 0 and b["space"] != space_a
    assert media_ids(library) == ids  # nothing re-created
    assert [(h.id, h.score) for h in search(library, "a red circle")] == before  # still searching with mini

    library.use_model(model_b)
    assert library.model_spec == model_b and library.encoder.space == b["space"]
    text = library.encoder.embed_texts(["a red circle"])[0]
    after = search(library, "a red circle")
    assert {h.id for h in after} <= set(ids) and [h.id for h in after] != [i for i, _ in before]
    for hit in after:  # scores are the new model's: its text vector against its stored vectors
        if hit.kind == "image":
            assert hit.score == pytest.approx(float(text @ library.media_vector(hit.id)), abs=2e-3)

    with pytest.raises(ModelStateError, match="is the library's active model"):
        library.drop_model(model_b)
    assert index_files(library, space_a)
    dropped = library.drop_model("mini")
    assert dropped["vectors"] == sum(rows["mini"]["vectors"].values()) and dropped["files"] >= 3
    assert index_files(library, space_a) == []
    assert library.store.count(Vector, Vector.space.startswith(space_a)) == 0
    assert [r["spec"] for r in library.models()] == [model_b]
    assert [h.id for h in search(library, "a red circle")] == [h.id for h in after]


def test_an_interrupted_add_resumes_and_the_switch_waits_for_it(library, model_b):
    def kill_after_first_batch(summary: dict) -> None:
        if summary["done"] > 0:
            raise KeyboardInterrupt  # as a process killed mid-job

    with pytest.raises(KeyboardInterrupt):
        library.add_model(model_b, progress=kill_after_first_batch)
    assert library.recent_jobs(1)[0]["state"] == "interrupted"
    b = next(r for r in library.models() if r["spec"] == model_b)
    assert 0 < b["covered"] < 29
    with pytest.raises(ModelStateError) as refused:
        library.use_model(model_b)
    assert str(refused.value) == (
        f"model {model_b!r} covers {b['covered']} of 29 media items ({b['covered'] / 29:.0%}); "
        f"finish it with `mmsearch model add {model_b}` (it resumes), then switch"
    )
    assert library.model_spec == "mini"
    resumed = library.add_model(model_b)
    assert (resumed["state"], resumed["total"], resumed["unchanged"]) == ("done", 29 - b["covered"], b["covered"])
    library.use_model(model_b)
    assert library.model_spec == model_b


def test_the_active_model_cannot_be_added_again_and_a_new_file_leaves_the_other_incomplete(library, model_b, tmp_path):
    with pytest.raises(ModelStateError, match="is already the library's model"):
        library.create_model_job("mini")
    library.add_model(model_b)
    more = tmp_path / "more"
    make_corpus(more, n=2, seed=8)
    library.index([more])  # indexed with the active model only
    b = next(r for r in library.models() if r["spec"] == model_b)
    assert (b["covered"], b["total"]) == (29, 31)
    with pytest.raises(ModelStateError, match="covers 29 of 31"):
        library.use_model(model_b)
    assert library.add_model(model_b)["total"] == 2


def test_a_library_follows_a_switch_made_by_another_process(library, model_b, monkeypatch):
    monkeypatch.setattr(active_model, "ACTIVE_CHECK_S", 0.0)
    library.add_model(model_b)
    assert search(library, "a red circle")  # mini's parts loaded
    other = Library.open(library.dir, settings=library.settings)
    other.use_model(model_b)
    other.close()
    search(library, "a red circle")
    assert library.model_spec == model_b
    assert library.encoder.space == next(r for r in library.models() if r["active"])["space"]


def test_a_library_from_before_models_were_recorded_opens_and_answers_as_it_did(tmp_path, mini_encoder):
    shutil.copytree(V1 / "lib", tmp_path / "lib")
    expected = json.loads((V1 / "expected.json").read_text())
    lib = open_library(tmp_path / "lib", encoder=mini_encoder, generator="none")
    for text, hits in expected["searches"].items():
        got = search(lib, text, k=5)
        assert [(h.id, h.kind) for h in got] == [(i, kind) for i, _, kind in hits], text
        np.testing.assert_allclose([h.score for h in got], [score for _, score, _ in hits], atol=1e-3)
    (row,) = lib.models()
    assert (row["spec"], row["space"], row["active"]) == ("mini", expected["space"], True)  # learnt at open
    lib.close()


def test_a_library_from_before_models_were_recorded_refuses_another_model(tmp_path, model_b):
    shutil.copytree(V1 / "lib", tmp_path / "lib")
    lib = open_library(tmp_path / "lib", model=model_b, generator="none")
    with pytest.raises(ModelMismatchError, match="indexed before mmsearch recorded its models"):
        lib.encoder
    lib.close()


def test_an_add_killed_with_sigkill_resumes_and_embeds_each_item_once(tmp_path, mini_encoder, model_b):
    root = tmp_path / "photos"
    make_corpus(root, n=160, seed=22)
    with open_library(tmp_path / "lib", encoder=mini_encoder, generator="none") as lib:
        lib.index([root])
    env = {**os.environ, "MMSEARCH_BATCH_SIZE": "8", "MMSEARCH_DECODE_WORKERS": "0"}
    cmd = [sys.executable, "-m", "mmsearch", "model", "add", model_b, "--library", str(tmp_path / "lib")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, committed = time.time() + 600, 0  # generous: a loaded machine imports torch slowly
    while time.time() < deadline and proc.poll() is None and committed < 24:
        with open_library(tmp_path / "lib", encoder=mini_encoder, generator="none") as lib:
            b = [r for r in lib.models() if r["spec"] == model_b]
            committed = b[0]["covered"] if b else 0
        time.sleep(0.2)
    assert proc.poll() is None, "the add finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    with open_library(tmp_path / "lib", encoder=mini_encoder, generator="none") as lib:
        assert lib.recent_jobs(1)[0]["state"] == "interrupted"  # marked when the library was opened
        b = next(r for r in lib.models() if r["spec"] == model_b)
        assert 24 <= b["covered"] < 160
        resumed = lib.add_model(model_b)
        assert (resumed["state"], resumed["total"]) == ("done", 160 - b["covered"])
        b = next(r for r in lib.models() if r["spec"] == model_b)
        assert (b["covered"], b["vectors"]) == (160, {"image": 160})  # one vector per image: none twice


def test_models_do_not_change_while_a_job_holds_the_library(library, model_b):
    library.add_model(model_b)
    with writer_lock(library.dir):  # as another process's index job
        with pytest.raises(LibraryBusyError):
            library.use_model(model_b)
        with pytest.raises(LibraryBusyError):
            library.drop_model(model_b)
    assert library.model_spec == "mini" and len(library.models()) == 2


def test_a_temporal_head_of_one_model_is_not_used_to_pool_anothers_vectors(tmp_path, mini_encoder):
    from mmsearch.config import builtin_weights

    from .encoders.tiny_blip import tiny_blip_folder

    root = tmp_path / "photos"
    make_corpus(root, n=4, seed=5)
    blip = f"blip:{tiny_blip_folder(tmp_path / 'tiny-blip')}"
    head = builtin_weights("mini")  # set explicitly, as MMSEARCH_TEMPORAL_HEAD would
    with open_library(tmp_path / "lib", encoder=mini_encoder, generator="none", temporal_head=head) as lib:
        lib.index([root])
        with pytest.raises(ModelMismatchError) as refused:
            lib.create_model_job(blip)
        assert "pools 256-d vectors; model" in str(refused.value) and "makes 24-d ones" in str(refused.value)
        assert [r["spec"] for r in lib.models()] == ["mini"]  # nothing recorded
