"""storage.files: atomic writes that never leave a torn or temporary file, and the digests
that name libraries' embedding spaces and caches (their values must never change)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from mmsearch.config import builtin_weights
from mmsearch.storage.files import atomic_path, atomic_write, digest, file_digest


def test_atomic_write_replaces_content_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a.json"
    atomic_write(path, "first")
    assert path.read_text() == "first"

    assert atomic_write(path, b"second \xff") == path
    assert path.read_bytes() == b"second \xff"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_failure_inside_atomic_path_keeps_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"old")

    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half of the new")
            raise RuntimeError("disk on fire")

    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]


def test_atomic_path_gives_a_fresh_temporary_name_beside_the_file(tmp_path):
    path = tmp_path / "x.npy"
    with atomic_path(path) as first, atomic_path(path) as second:
        assert first.parent == second.parent == tmp_path
        assert first != second and path.name in first.name
        first.write_bytes(b"1")
        second.write_bytes(b"2")
    assert path.read_bytes() == b"1"  # the outer block renames last
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


def test_concurrent_writers_of_one_path_never_leave_a_torn_or_temp_file(tmp_path):
    path = tmp_path / "shared.bin"
    contents = [bytes([65 + k]) * 300_000 for k in range(2)]
    start, errors = threading.Barrier(2), []

    def writer(data: bytes) -> None:
        try:
            start.wait()
            for _ in range(20):
                atomic_write(path, data)
        except BaseException as e:  # surfaced by the main thread
            errors.append(e)

    seen = set()
    threads = [threading.Thread(target=writer, args=(data,)) for data in contents]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        if path.exists():
            seen.add(path.read_bytes())  # a reader mid-race sees one whole content or the other
    for t in threads:
        t.join()

    assert errors == []
    assert path.read_bytes() in contents
    assert seen <= set(contents)
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]


def test_digest_known_values():
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert digest(b"abc") == digest("abc") == abc
    assert digest("abc", length=12) == abc[:12]
    assert digest(b"abc", "sha1") == "a9993e364706816aba3e25717850c26c9cd0d89d"
    assert digest("ü", "sha1", 10) == hashlib.sha1("ü".encode()).hexdigest()[:10]


def test_file_digest_whole_file_and_ends_only(tmp_path):
    path = tmp_path / "f.bin"
    data = os.urandom(3 << 20) + b"tail"
    path.write_bytes(data)
    assert file_digest(path) == hashlib.sha256(data).hexdigest()
    assert file_digest(str(path), "sha1", 10) == hashlib.sha1(data).hexdigest()[:10]

    # The weights fingerprint: sha1 of the size in decimal, the first MiB and the last MiB.
    n = 1 << 20
    by_hand = hashlib.sha1(str(len(data)).encode() + data[:n] + data[-n:]).hexdigest()[:10]
    assert file_digest(path, "sha1", 10, ends_only=n) == by_hand

    small = tmp_path / "small.bin"
    small.write_bytes(b"0123456789")  # shorter than the ends: both reads see the whole file
    assert file_digest(small, "sha1", ends_only=n) == hashlib.sha1(b"10" + b"0123456789" * 2).hexdigest()


def test_builtin_weights_is_the_shipped_mini_folder():
    folder = builtin_weights()
    assert folder == builtin_weights("mini") and folder.name == "mini"
    assert folder.parent == Path(__file__).resolve().parents[2] / "mmsearch" / "weights"
    assert (folder / "open_clip_config.json").is_file()


def test_a_cache_write_may_skip_fsync_and_is_still_atomic(tmp_path):
    target = tmp_path / "cache.bin"
    atomic_write(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, durable=False) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["cache.bin"]
    atomic_write(target, b"new", durable=False)
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["cache.bin"]
