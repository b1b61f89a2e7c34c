"""find_moment() and trim_run(): the moment of a video a search hit points at.

Vectors are 2-d unit vectors (s, sqrt(1 - s^2)) against the query (1, 0), so each frame's
and segment's similarity is exactly the s it was built from."""

import numpy as np
import pytest

from mmsearch.search.moments import find_moment, trim_run

Q = np.array([1.0, 0.0], np.float32)


def _vecs(sims) -> np.ndarray:
    s = np.asarray(sims, np.float64)
    return np.stack([s, np.sqrt(1.0 - s**2)], axis=1).astype(np.float32)


def _video(frame_sims_per_segment, segment_sims, seg_len=4.0, frame_offset=0.0):
    """Segments of seg_len seconds, one frame per second (at k + frame_offset) in each."""
    segments = [(k * seg_len, (k + 1) * seg_len) for k in range(len(segment_sims))]
    times, owners, sims = [], [], []
    for k, seg_sims in enumerate(frame_sims_per_segment):
        for j, s in enumerate(seg_sims):
            times.append(k * seg_len + j + frame_offset)
            owners.append(k)
            sims.append(s)
    return (
        Q,
        segments,
        _vecs(segment_sims),
        np.asarray(times, np.float64),
        np.asarray(owners, np.int64),
        _vecs(sims),
    )


# -- trim_run ---------------------------------------------------------------------------------


def test_trim_run_one_clear_peak_keeps_only_the_peak():
    assert trim_run(np.array([0.1, 0.2, 0.9, 0.3, 0.1]), 0.1) == (2, 2)


def test_trim_run_keeps_the_contiguous_run_within_the_margin():
    sims = np.array([0.1, 0.75, 0.85, 0.9, 0.8, 0.2])
    assert trim_run(sims, 0.16) == (1, 4)
    assert trim_run(sims, 0.07) == (2, 3)


def test_trim_run_stops_at_a_dip_even_when_later_scores_are_high_again():
    assert trim_run(np.array([0.9, 0.88, 0.1, 0.89, 0.9]), 0.05) == (0, 1)


def test_trim_run_a_score_exactly_at_the_margin_is_kept():
    assert trim_run(np.array([0.25, 0.5, 1.0, 0.5, 0.25]), 0.5) == (1, 3)


def test_trim_run_a_plateau_of_equal_scores_is_kept_whole():
    assert trim_run(np.array([0.1, 0.6, 0.6, 0.6, 0.1]), 0.0) == (1, 3)
    assert trim_run(np.full(4, 0.3), 0.0) == (0, 3)


def test_trim_run_negative_margin_keeps_just_the_best():
    assert trim_run(np.array([0.5, 0.7, 0.69, 0.7]), -0.2) == (1, 1)


def test_trim_run_reaches_both_ends():
    assert trim_run(np.array([0.8, 0.85, 0.9]), 1.0) == (0, 2)
    assert trim_run(np.array([0.9]), 0.0) == (0, 0)


# -- find_moment ------------------------------------------------------------------------------


def test_find_moment_trims_the_best_segment_to_its_peak_frames():
    # margin = (1.0 - 0.4) / 2 = 0.3: frames of the best segment scoring >= 0.7 stay (t=5, 6);
    # the moment runs from the first kept frame to the frame after the last kept one.
    args = _video([[0.1] * 4, [0.2, 0.9, 1.0, 0.3], [0.4] * 4], [0.1, 0.9, 0.3])
    assert find_moment(*args) == (5.0, 7.0)


def test_find_moment_returns_python_floats():
    start, end = find_moment(*_video([[0.1] * 4, [0.2, 0.9, 1.0, 0.3]], [0.1, 0.9]))
    assert type(start) is float and type(end) is float


def test_find_moment_picks_the_segment_with_the_best_segment_vector_not_the_best_frame():
    # The best frame (0.95) is in segment 0, but segment 1's vector matches best: the moment
    # is in segment 1 (its best frame alone, as a frame elsewhere beats it).
    args = _video([[0.95, 0.1, 0.1, 0.1], [0.2, 0.5, 0.6, 0.2], [0.1] * 4], [0.3, 0.8, 0.1])
    assert find_moment(*args) == (6.0, 7.0)


def test_find_moment_among_equal_segments_takes_the_earliest():
    args = _video([[0.1] * 4, [0.5] * 4, [0.5] * 4, [0.1] * 4], [0.2, 0.7, 0.7, 0.2])
    assert find_moment(*args) == (4.0, 8.0)


def test_find_moment_run_touching_the_segment_edges_uses_the_segment_bounds_not_frame_times():
    # Frames at k + 0.5 s. Segment 0 is best; its run is frames 0-1, touching the start.
    args = _video([[0.95, 1.0, 0.2, 0.1], [0.1] * 4], [0.9, 0.1], frame_offset=0.5)
    assert find_moment(*args) == (0.0, 2.5)
    # Segment 1 (the last) is best; its run is frames 2-3, touching its end.
    args = _video([[0.1] * 4, [0.1, 0.2, 1.0, 0.95]], [0.1, 0.9], frame_offset=0.5)
    assert find_moment(*args) == (6.5, 8.0)


def test_find_moment_a_segment_matching_throughout_is_returned_whole():
    args = _video([[0.1] * 4, [0.9, 0.92, 0.91, 0.9], [0.1] * 4], [0.1, 0.9, 0.1])
    assert find_moment(*args) == (4.0, 8.0)


def test_find_moment_when_the_rest_of_the_video_matches_as_well_keeps_just_the_best_frame():
    # The best frame elsewhere (0.95) beats this segment's best (0.9): the margin is negative,
    # so the moment is the best frame alone, up to the next frame.
    args = _video([[0.95] * 4, [0.3, 0.9, 0.85, 0.3]], [0.5, 0.9])
    assert find_moment(*args) == (5.0, 6.0)


def test_find_moment_a_wider_gap_to_the_rest_of_the_video_widens_the_moment():
    inside = [0.2, 0.7, 0.8, 1.0, 0.75, 0.2]
    narrow = _video([inside, [0.8] * 6], [0.9, 0.5], seg_len=6.0)  # margin 0.1: keeps 1.0 alone
    wide = _video([inside, [0.2] * 6], [0.9, 0.5], seg_len=6.0)  # margin 0.4: keeps 0.7 .. 0.75
    assert find_moment(*narrow) == (3.0, 4.0)
    assert find_moment(*wide) == (1.0, 5.0)


def test_find_moment_one_segment_video_is_not_trimmed():
    args = _video([[0.1, 0.2, 1.0, 0.1]], [0.9])
    assert find_moment(*args) == (0.0, 4.0)


def test_find_moment_best_segment_without_frames_is_returned_whole():
    # Segment 1 has no sampled frame of its own.
    args = _video([[0.3] * 4, [], [0.2] * 4], [0.3, 0.9, 0.2])
    assert find_moment(*args) == (4.0, 8.0)


@pytest.mark.parametrize("best", [0, 1, 2])
def test_find_moment_stays_inside_the_best_segment(best):
    seg_sims = [0.1, 0.1, 0.1]
    seg_sims[best] = 0.9
    frames = [[0.3, 0.4, 0.35, 0.2] for _ in range(3)]
    frames[best] = [0.4, 0.6, 0.95, 0.5]
    start, end = find_moment(*_video(frames, seg_sims))
    assert (start, end) == (best * 4.0 + 2.0, best * 4.0 + 3.0)
