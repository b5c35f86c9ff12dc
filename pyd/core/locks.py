"""Locks for coroutines on the reactor thread (layer: core): a shared/exclusive lock, and one
lock per key.

Twisted's C{DeferredLock} has one holder at a time. Networking needs two kinds of holders: the
set-up and tear-down of one container's namespace touch only that container's rows, addresses
and interfaces, so many may run at once (shared); creating or removing a network, connecting,
and anything that picks host ports from what the others hold must run alone (exclusive).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, DeferredLock, succeed


class SharedLock:
    """Many shared holders, or one exclusive holder.

    Waiters are served in arrival order, and a waiting exclusive request holds back shared
    requests that arrive after it, so a stream of shared holders cannot starve it.
    """

    def __init__(self) -> None:
        self._shared = 0
        self._exclusive = False
        self._waiting: deque[tuple[bool, Deferred[None]]] = deque()

    @property
    def holders(self) -> tuple[int, bool]:
        """(shared holders, whether an exclusive one holds it): for tests and diagnostics."""
        return self._shared, self._exclusive

    def _free_for(self, exclusive: bool) -> bool:
        return not self._exclusive and (not exclusive or self._shared == 0)

    def _take(self, exclusive: bool) -> None:
        if exclusive:
            self._exclusive = True
        else:
            self._shared += 1

    def acquire(self, exclusive: bool) -> Deferred[None]:
        """Fires once the lock is held in the asked mode (cancelling a wait withdraws it)."""
        if not self._waiting and self._free_for(exclusive):
            self._take(exclusive)
            return succeed(None)

        def cancel(d: Deferred[None]) -> None:
            self._waiting.remove((exclusive, d))
            # a withdrawn exclusive request may have been holding shared ones back
            self._wake()
            d.errback(CancelledError())

        d: Deferred[None] = Deferred(cancel)
        self._waiting.append((exclusive, d))
        return d

    def release(self, exclusive: bool) -> None:
        """Give back one hold of the given mode."""
        if exclusive:
            if not self._exclusive:
                raise RuntimeError("exclusive release of a lock not held exclusively")
            self._exclusive = False
        else:
            if self._shared <= 0:
                raise RuntimeError("shared release of a lock not held shared")
            self._shared -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiting and self._free_for(self._waiting[0][0]):
            exclusive, d = self._waiting.popleft()
            self._take(exclusive)
            d.callback(None)


class KeyedLock:
    """One C{DeferredLock} per key (a volume's name), dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, DeferredLock] = {}

    async def run(self, key: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Await C{fn()} holding C{key}'s lock."""
        lock = self._locks.setdefault(key, DeferredLock())
        await lock.acquire()
        try:
            return await fn()
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._locks.pop(key, None)
