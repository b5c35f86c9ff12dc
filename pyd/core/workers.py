"""The daemon's worker threads (layer: core): a named pool of threads that runs blocking calls
and hands each outcome back to the reactor thread as a Deferred.

Twisted's C{ThreadPool} with C{deferToThreadPool} costs the reactor thread more than the work
it hands off for the daemon's short calls (a SQLite statement, a C{mkdir}): each call goes
through the pool's team coordinator (a lock worker that runs on the calling thread), a
context-tracker copy and two nested context calls, and its answer through another. For a
C{docker volume create} that was ~10 % of the reactor thread's time and most of the time the
DB thread spent beside SQLite (issue 21). Here a call is one tuple on a C{SimpleQueue} (C) and
its answer one C{callFromThread}.

Threads are started as work arrives, up to C{size}, and each waits on the one queue. C{stop}
lets every call queued before it run, then joins the threads (as Twisted's pool does).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, ParamSpec, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure

P = ParamSpec("P")
T = TypeVar("T")

_STOP = None  # what a worker finds on the queue when it must end


class Workers:
    """Up to C{size} threads named C{NAME-N} running calls queued by the reactor thread."""

    def __init__(self, reactor: IReactorFromThreads, name: str, size: int) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one thread")
        self.name = name
        self.size = size
        self._reactor = reactor
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        # Threads waiting on the queue; read and written under _lock.
        self._idle = 0
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False

    @property
    def threads(self) -> int:
        """How many threads were started (for tests and diagnostics)."""
        return len(self._threads)

    def start(self) -> None:
        """Run work: calls queued before now get their threads; later ones start threads as
        they arrive."""
        self._started = True
        self._stopped = False
        for _ in range(min(self._queue.qsize(), self.size - len(self._threads))):
            with self._lock:
                self._idle += 1
            self._spawn()

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        """Run C{fn(*args, **kwargs)} on a worker; the Deferred fires on the reactor thread
        with its result or its failure (raised in the worker, traceback kept)."""
        if self._stopped:
            raise RuntimeError(f"worker pool {self.name} is stopped")
        d: Deferred[T] = Deferred()
        self._queue.put((d, fn, args, kwargs))
        if not self._started:
            return d  # queued until start(), as Twisted's pool does
        with self._lock:
            grow = self._idle == 0 and len(self._threads) < self.size
            if grow:
                self._idle += 1  # counted as waiting from now: the next call sees it
        if grow:
            self._spawn()
        return d

    def _spawn(self) -> None:
        t = threading.Thread(target=self._work, name=f"PoolThread-{self.name}-{len(self._threads)}")
        self._threads.append(t)
        t.start()

    def _work(self) -> None:
        """A worker: take calls until the stop marker; each outcome goes to the reactor."""
        get, lock = self._queue.get, self._lock
        deliver = self._reactor.callFromThread
        while True:
            item = get()
            with lock:
                self._idle -= 1
            if item is _STOP:
                return
            d, fn, args, kwargs = item
            try:
                result = fn(*args, **kwargs)
            except BaseException:  # noqa: BLE001 - every failure goes to the caller's Deferred
                deliver(d.errback, Failure())
            else:
                deliver(d.callback, result)
                del result
            # an idle worker keeps no reference to a finished call or its arguments
            del item, d, fn, args, kwargs
            with lock:
                self._idle += 1

    def stop(self) -> None:
        """Run what was queued, then end and join every thread (from the reactor thread, at
        shutdown: the calls' answers are delivered by the reactor's next turns, if any)."""
        self._stopped = True
        if not self._started:
            return
        for _ in self._threads:
            self._queue.put(_STOP)
        for t in self._threads:
            t.join()
        self._threads.clear()
        self._idle = 0
        self._started = False
