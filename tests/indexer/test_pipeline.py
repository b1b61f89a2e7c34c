"""The decode pipeline's defaults."""

from mmsearch.indexer.pipeline import default_decode_workers


def test_decode_workers_default_to_zero_on_two_cores_and_two_above():
    # on 2 cores inline decoding indexed faster than 2 workers (BENCHMARKS.md, ingest)
    assert [default_decode_workers(cores) for cores in (1, 2, 3, 16)] == [0, 0, 2, 2]
