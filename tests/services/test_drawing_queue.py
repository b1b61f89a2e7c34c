"""Drawings off the search path: one drawing per key at a time, a bounded queue, bounded waits."""

import threading

import pytest

from mmsearch.services.drawing_queue import DrawingBusy, DrawingQueue, DrawingTimeout


class HeldDrawing:
    """A drawing that runs until released, counting how often it was drawn."""

    def __init__(self, result="drawn"):
        self.release, self.started, self.calls, self.result = threading.Event(), threading.Event(), 0, result

    def __call__(self):
        self.calls += 1
        self.started.set()
        assert self.release.wait(5)
        return self.result


@pytest.fixture
def queue():
    q = DrawingQueue(workers=1, max_waiting=1)
    yield q
    q.close()


def test_a_repeat_of_a_drawing_in_flight_waits_for_it_instead_of_drawing_again(queue):
    first = HeldDrawing(["media 7"])
    a = queue.submit(("a red star", "mini"), first)
    first.started.wait(5)
    b = queue.submit(("a red star", "mini"), HeldDrawing(["never drawn"]))
    assert b is a
    assert queue._submit(("a red star", "mini"), HeldDrawing(["never drawn"])) == (a, True)  # run_shared says so
    first.release.set()
    assert b.result(5) == ["media 7"] and first.calls == 1
    assert queue.run_shared(("a red star", "mini"), lambda: ["media 8"], timeout=5) == (["media 8"], False)


def test_drawings_without_a_key_never_share(queue):
    first, second = HeldDrawing(1), HeldDrawing(2)
    a, b = queue.submit(None, first), queue.submit(None, second)
    first.release.set()
    second.release.set()
    assert (a.result(5), b.result(5)) == (1, 2)


def test_a_full_queue_refuses_at_once_and_takes_drawings_again_when_it_drains(queue):
    running, waiting = HeldDrawing(), HeldDrawing()
    queue.submit("a", running)
    running.started.wait(5)
    queue.submit("b", waiting)  # one may wait behind the running one
    with pytest.raises(DrawingBusy, match="2 drawings are queued or running"):
        queue.submit("c", HeldDrawing())
    running.release.set()
    waiting.release.set()
    assert queue.submit("b", lambda: "drawn").result(5) == "drawn"  # joined or drawn afresh: the same answer
    assert queue.submit("d", lambda: "fresh").result(5) == "fresh"


def test_a_wait_has_a_bound_and_the_drawing_still_finishes(queue):
    slow = HeldDrawing("late")
    with pytest.raises(DrawingTimeout, match="longer than 0.05 s"):
        queue.run("k", slow, timeout=0.05)
    slow.release.set()
    assert queue.run("k2", lambda: "next", timeout=5) == "next"  # the worker moved on
    assert slow.calls == 1


def test_a_failed_drawing_fails_every_waiter_and_is_forgotten(queue):
    def broken():
        raise ValueError("no such sampler")

    with pytest.raises(ValueError, match="no such sampler"):
        queue.run("k", broken, timeout=5)
    assert queue.in_flight() == 0
    assert queue.run("k", lambda: "retried", timeout=5) == "retried"


def test_requests_waiting_on_one_drawing_are_bounded_and_the_bound_frees_as_they_finish():
    # Before: every repeat of a prompt being drawn joined it and held a server thread up to
    # the wait bound, however many came.
    queue = DrawingQueue(workers=1, max_waiting=1, max_waiters=3)
    held = HeldDrawing(["media 7"])
    answers = []
    waiters = [
        threading.Thread(target=lambda: answers.append(queue.run_shared("a red star", held, timeout=5)))
        for _ in range(3)
    ]
    for t in waiters:
        t.start()
    held.started.wait(5)
    while queue._waiters < 3:
        threading.Event().wait(0.01)
    with pytest.raises(DrawingBusy, match="3 requests are waiting for drawings"):
        queue.run_shared("a red star", held, timeout=5)
    held.release.set()
    for t in waiters:
        t.join(5)
    assert sorted(answers) == [(["media 7"], False), (["media 7"], True), (["media 7"], True)]
    assert held.calls == 1
    assert queue.run("another", lambda: "drawn", timeout=5) == "drawn"
    queue.close()
