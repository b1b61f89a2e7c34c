"""The readers-writer lock the index set shares between searches and index jobs."""

import threading

import pytest

from mmsearch.storage.rwlock import LockTimeout, ReadWriteLock


def _in_thread(fn) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def test_readers_share_the_lock():
    lock = ReadWriteLock()
    entered = threading.Event()
    with lock.read():

        def second_reader():
            with lock.read(timeout=5):
                entered.set()

        _in_thread(second_reader).join(5)
    assert entered.is_set()


def test_a_writer_waits_for_readers_and_gives_up_at_its_bound():
    lock = ReadWriteLock()
    with lock.read():
        with pytest.raises(LockTimeout):
            with lock.write(timeout=0.05):
                pass
    with lock.write(timeout=1):  # free again once the reader left
        pass


def test_readers_wait_for_a_writer_and_give_up_at_their_bound():
    lock = ReadWriteLock()
    failures = []
    with lock.write():

        def reader():
            try:
                with lock.read(timeout=0.05):
                    pass
            except LockTimeout as e:
                failures.append(e)

        _in_thread(reader).join(5)
    assert len(failures) == 1 and isinstance(failures[0], TimeoutError)


def test_a_waiting_writer_goes_before_new_readers():
    # Otherwise a steady stream of searches would starve an index job forever.
    lock = ReadWriteLock()
    order = []
    writer_waiting = threading.Event()
    with lock.read():

        def writer():
            writer_waiting.set()
            with lock.write(timeout=5):
                order.append("writer")

        def late_reader():
            with lock.read(timeout=5):
                order.append("reader")

        w = _in_thread(writer)
        writer_waiting.wait(5)
        while not lock.writers_waiting:  # the writer is queued before the late reader comes
            threading.Event().wait(0.001)
        r = _in_thread(late_reader)
    w.join(5)
    r.join(5)
    assert order == ["writer", "reader"]


def test_the_writer_may_write_and_read_again_inside_its_write():
    lock = ReadWriteLock()
    with lock.write():
        with lock.write(timeout=0.05):
            with lock.read(timeout=0.05):
                pass
    with lock.read(timeout=0.05):  # fully released
        pass
