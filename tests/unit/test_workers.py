"""pyd.core.workers: calls run off the calling thread, outcomes come back through the reactor's
callFromThread, threads grow up to the size, and stop runs what was queued, then joins."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure
from zope.interface import implementer

from pyd.core.workers import Workers


@implementer(IReactorFromThreads)
class ThreadCalls:
    """A reactor's callFromThread: records calls made from any thread, run by the test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.arrived = threading.Semaphore(0)

    def callFromThread(self, callable: Callable[..., Any], *args: object, **kw: object) -> None:
        assert not kw
        with self._lock:
            self.calls.append((callable, args))
        self.arrived.release()

    def run(self, n: int) -> None:
        """Wait for C{n} outcomes, then deliver them on this (the 'reactor') thread."""
        for _ in range(n):
            assert self.arrived.acquire(timeout=10), "a worker's outcome never arrived"
        with self._lock:
            calls, self.calls = self.calls, []
        for f, args in calls:
            f(*args)


def _outcome(d: Any) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0]


def test_result_and_failure_come_back_through_the_reactor() -> None:
    reactor = ThreadCalls()
    w = Workers(reactor, "t", 2)
    w.start()
    try:
        me = threading.get_ident()

        def add(a: int, b: int = 0) -> tuple[int, int]:
            return threading.get_ident(), a + b

        ok = w.run(add, 1, b=2)
        bad = w.run(lambda: 1 // 0)
        assert not ok.called  # fires only when the reactor delivers it
        reactor.run(2)
        ident, value = _outcome(ok)
        assert value == 3 and ident != me
        failure = _outcome(bad)
        assert isinstance(failure, Failure) and failure.check(ZeroDivisionError)
        assert failure.getTracebackObject() is not None  # raised in the worker, traceback kept
    finally:
        w.stop()


def test_threads_grow_to_the_size_and_are_named() -> None:
    reactor = ThreadCalls()
    w = Workers(reactor, "grow", 3)
    w.start()
    gate = threading.Event()
    names: list[str] = []
    try:
        assert w.threads == 0  # none until work arrives

        def blocked() -> bool:
            names.append(threading.current_thread().name)
            return gate.wait(10)

        ds = [w.run(blocked) for _ in range(5)]
        assert w.threads == 3  # five blocked calls, three threads at most
        gate.set()
        reactor.run(5)
        assert all(_outcome(d) is True for d in ds)
        assert sorted(set(names)) == ["PoolThread-grow-0", "PoolThread-grow-1", "PoolThread-grow-2"]
        w.run(lambda: None)
        reactor.run(1)
        assert w.threads == 3  # an idle thread takes later work
    finally:
        gate.set()
        w.stop()
    assert w.threads == 0


def test_one_thread_keeps_the_order() -> None:
    reactor = ThreadCalls()
    w = Workers(reactor, "db", 1)
    w.start()
    seen: list[int] = []
    try:
        for i in range(50):
            w.run(seen.append, i)
        reactor.run(50)
        assert seen == list(range(50))
        assert w.threads == 1
    finally:
        w.stop()


def test_work_queued_before_start_runs_and_stop_runs_what_was_queued() -> None:
    reactor = ThreadCalls()
    w = Workers(reactor, "early", 2)
    seen: list[int] = []
    early = w.run(seen.append, 1)
    assert w.threads == 0
    w.start()
    reactor.run(1)
    assert _outcome(early) is None and seen == [1]
    gate = threading.Event()
    w.run(gate.wait, 10)
    late = [w.run(seen.append, n) for n in (2, 3, 4)]
    gate.set()
    w.stop()  # runs what is queued before the threads end
    assert seen == [1, 2, 3, 4]
    reactor.run(4)
    assert all(_outcome(d) is None for d in late)
    with pytest.raises(RuntimeError, match="stopped"):
        w.run(seen.append, 5)


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Workers(ThreadCalls(), "none", 0)
