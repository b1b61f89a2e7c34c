"""split_segments(): the stored segments of a video from its shots (a search hit's moment is
one of them, trimmed), each at most max_len seconds."""

import pytest

from mmsearch.indexer.decode_video import MAX_SEGMENT_S, split_segments


def _flat(segments):
    return [v for seg in segments for v in seg]


def test_no_shots_no_segments():
    assert split_segments([]) == []
    assert split_segments([], max_len=3.0) == []


def test_shots_shorter_than_max_len_are_kept_as_they_are():
    shots = [(0.0, 4.0), (4.0, 9.5), (9.5, 12.25)]
    assert split_segments(shots, max_len=10.0) == shots


def test_a_shot_of_exactly_max_len_is_not_split():
    assert split_segments([(2.0, 12.0)], max_len=10.0) == [(2.0, 12.0)]


def test_a_shot_of_exactly_twice_max_len_is_cut_in_two_at_max_len():
    assert split_segments([(0.0, 20.0)], max_len=10.0) == [(0.0, 10.0), (10.0, 20.0)]


def test_a_long_shot_is_cut_into_equal_windows_no_longer_than_max_len():
    out = split_segments([(0.0, 25.0)], max_len=10.0)
    assert len(out) == 3  # not 10 + 10 + 5: equal parts
    assert out[0][0] == 0.0 and out[-1][1] == 25.0
    assert all(b == pytest.approx(25.0 / 3) and b <= 10.0 for b in (y - x for x, y in out))
    assert _flat(out) == pytest.approx([0.0, 25 / 3, 25 / 3, 50 / 3, 50 / 3, 25.0])


def test_a_shot_just_over_max_len_is_cut_in_two_halves():
    out = split_segments([(0.0, 10.5)], max_len=10.0)
    assert _flat(out) == pytest.approx([0.0, 5.25, 5.25, 10.5])


def test_float_noise_at_a_multiple_of_max_len_adds_no_sliver_window():
    # (2.2 + 30.0) - 2.2 is 30.000000000000004 in floating point: still three windows.
    end = 2.2 + 30.0
    assert (end - 2.2) / 10.0 > 3.0
    out = split_segments([(2.2, end)], max_len=10.0)
    assert len(out) == 3
    assert _flat(out) == pytest.approx([2.2, 12.2, 12.2, 22.2, 22.2, 32.2])


def test_windows_are_contiguous_in_order_and_keep_each_shot_boundary():
    shots = [(0.0, 3.0), (3.0, 31.0), (31.0, 33.0), (33.0, 57.0)]
    out = split_segments(shots, max_len=8.0)
    assert [len(split_segments([s], max_len=8.0)) for s in shots] == [1, 4, 1, 3]
    assert len(out) == 9
    assert out[0][0] == 0.0 and out[-1][1] == 57.0
    assert all(a[1] == b[0] for a, b in zip(out, out[1:]))  # no gap, no overlap
    assert all(0 < y - x <= 8.0 for x, y in out)
    starts = [x for x, _ in out]
    for shot_start, _ in shots:
        assert shot_start in starts  # a window never straddles a cut between shots


def test_the_default_max_len_is_max_segment_s():
    long = 3 * MAX_SEGMENT_S + 1.0
    out = split_segments([(0.0, long)])
    assert len(out) == 4
    assert all(y - x <= MAX_SEGMENT_S for x, y in out)
    assert split_segments([(0.0, MAX_SEGMENT_S)]) == [(0.0, MAX_SEGMENT_S)]


def test_bounds_are_python_floats_even_from_int_shots():
    out = split_segments([(0, 5), (5, 30)], max_len=10)
    assert all(type(v) is float for seg in out for v in seg)
    assert out[0] == (0.0, 5.0)


def test_a_zero_length_shot_stays_one_segment():
    assert split_segments([(7.0, 7.0)], max_len=10.0) == [(7.0, 7.0)]
