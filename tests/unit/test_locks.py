"""L{pyd.core.locks.SharedLock}: shared holders together, exclusive ones alone, in order."""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.locks import SharedLock


class SharedLockTests(SynchronousTestCase):
    def test_shared_holders_together(self) -> None:
        """Any number of shared holders at once; an exclusive request waits for all of them."""
        lock = SharedLock()
        self.successResultOf(lock.acquire(False))
        self.successResultOf(lock.acquire(False))
        self.assertEqual(lock.holders, (2, False))
        ex = lock.acquire(True)
        self.assertNoResult(ex)
        lock.release(False)
        self.assertNoResult(ex)
        lock.release(False)
        self.successResultOf(ex)
        self.assertEqual(lock.holders, (0, True))

    def test_exclusive_alone_and_not_starved(self) -> None:
        """While an exclusive request waits, later shared requests queue behind it; they all
        get the lock together once it is released."""
        lock = SharedLock()
        self.successResultOf(lock.acquire(False))
        ex = lock.acquire(True)
        later = [lock.acquire(False), lock.acquire(False)]
        for d in later:
            self.assertNoResult(d)
        lock.release(False)
        self.successResultOf(ex)
        for d in later:
            self.assertNoResult(d)
        lock.release(True)
        for d in later:
            self.successResultOf(d)
        self.assertEqual(lock.holders, (2, False))

    def test_cancelled_wait_withdrawn(self) -> None:
        """A cancelled exclusive wait leaves the queue and lets the shared ones behind it in."""
        lock = SharedLock()
        self.successResultOf(lock.acquire(False))
        ex = lock.acquire(True)
        behind = lock.acquire(False)
        ex.cancel()
        self.failureResultOf(ex, CancelledError)
        self.successResultOf(behind)
        self.assertEqual(lock.holders, (2, False))

    def test_release_not_held(self) -> None:
        """Releasing a mode not held is a programming error, not a silent no-op."""
        lock = SharedLock()
        self.assertRaises(RuntimeError, lock.release, True)
        self.assertRaises(RuntimeError, lock.release, False)
