"""Opening a new library from several places at once (an index job and the server); reading
the frames of video segments."""

import threading

import numpy as np
import pytest

from mmsearch.storage.store import SCHEMA_VERSION, Media, SchemaInfo, Segment, Store, Vector, encode_embedding
from tests.helpers import store_url


def test_stores_opened_at_once_on_a_new_database_all_open_with_one_schema(tmp_path):
    for round_ in range(5):  # without the retry every round failed: "table ... already exists"
        url = store_url(tmp_path / f"round-{round_}")
        errors: list[Exception] = []

        def open_store() -> None:
            try:
                Store(url)
            except Exception as e:  # noqa: BLE001 - collected for the assertion below
                errors.append(e)

        threads = [threading.Thread(target=open_store) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with Store(url).session() as s:
            assert [(r.key, r.value) for r in s.query(SchemaInfo)] == [("schema_version", str(SCHEMA_VERSION))]


def _video_library(tmp_path, frames_per_segment=(3, 1, 4, 2)) -> tuple[Store, list[int], dict[int, list[float]]]:
    """One video whose segments hold the given numbers of frames (each frame's vector says
    its segment and order), plus a segment vector per segment, and a frame in another space."""
    store = Store(store_url(tmp_path))
    expected: dict[int, list[float]] = {}
    segment_rows = []
    with store.session() as s:
        media = Media(path="/v.mp4", kind="video")
        s.add(media)
        s.flush()
        for k, n in enumerate(frames_per_segment):
            seg = Segment(media_id=media.id, t_start=float(k), t_end=float(k + 1))
            s.add(seg)
            s.flush()
            for j in range(n):
                value = k + j / 10
                s.add(
                    Vector(
                        media_id=media.id,
                        segment_id=seg.id,
                        kind="frame",
                        space="A",
                        dim=2,
                        embedding=encode_embedding([1.0, value]),
                    )
                )
                expected.setdefault(seg.id, []).append(value)
            row = Vector(
                media_id=media.id,
                segment_id=seg.id,
                kind="segment",
                space="A",
                dim=2,
                embedding=encode_embedding([1.0, 0.0]),
            )
            s.add(row)
            s.add(
                Vector(
                    media_id=media.id,
                    segment_id=seg.id,
                    kind="frame",
                    space="B",
                    dim=2,
                    embedding=encode_embedding([0.0, 1.0]),
                )
            )
            s.flush()
            segment_rows.append(row.id)
    return store, segment_rows, expected


def _values(vectors: np.ndarray) -> list[float]:
    """The second coordinate of unit vectors built as [1, value]."""
    return [round(float(y / x), 2) for x, y in vectors]


def test_frames_of_segments_are_those_of_the_segment_vectors_space_grouped_in_time_order(tmp_path):
    store, segment_rows, expected = _video_library(tmp_path)
    ids, vectors = store.frames_of_segments([segment_rows[2], segment_rows[0]])
    first, third = sorted(expected)[0], sorted(expected)[2]
    assert ids.tolist() == [first] * 3 + [third] * 4
    assert _values(vectors) == pytest.approx(expected[first] + expected[third], abs=0.01)
    assert [len(x) for x in store.frames_of_segments([])] == [0, 0]


def test_segment_frames_come_in_whole_segments_whatever_the_batch(tmp_path):
    store, _, expected = _video_library(tmp_path)
    for batch in (1, 2, 3, 5, 100):
        batches = list(store.iter_segment_frames("A", batch=batch))
        ids = np.concatenate([b for b, _ in batches]).tolist()
        assert ids == [k for k in sorted(expected) for _ in expected[k]], batch
        # no segment is split between two batches
        assert sum(len(set(b.tolist())) for b, _ in batches) == len(expected), batch
        assert _values(np.concatenate([v for _, v in batches])) == pytest.approx(
            [x for k in sorted(expected) for x in expected[k]], abs=0.01
        )
    sampled = np.concatenate([b for b, _ in store.iter_segment_frames("A", batch=2, every=2)]).tolist()
    assert sorted(set(sampled)) == [k for k in sorted(expected) if k % 2 == 0]
