"""pyd.core.deferreds.shield: a cancel reaches the caller, never the shielded work."""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.deferreds import shield


class ShieldTests(SynchronousTestCase):
    """The shielded work runs to its end whatever happens to its caller."""

    def test_result_passes_through(self) -> None:
        """Uncancelled, the shield fires with the work's result or failure."""
        inner: Deferred[int] = Deferred()
        d = shield(inner)
        self.assertNoResult(d)
        inner.callback(3)
        self.assertEqual(self.successResultOf(d), 3)
        inner2: Deferred[int] = Deferred()
        d2 = shield(inner2)
        inner2.errback(ValueError("x"))
        self.failureResultOf(d2, ValueError)

    def test_cancel_spares_the_work(self) -> None:
        """Cancelling the shield fails the caller at once; the work is not cancelled and goes
        on (a coroutine's later steps still run), and its late failure is logged."""
        steps: list[str] = []
        gate: Deferred[None] = Deferred()

        async def work() -> None:
            steps.append("began")
            await gate
            steps.append("finished")
            raise ValueError("late")

        d = shield(work(), "test work")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(steps, ["began"])
        gate.callback(None)
        self.assertEqual(steps, ["began", "finished"])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_cancel_inside_a_coroutine(self) -> None:
        """A coroutine awaiting a shield, cancelled: it sees CancelledError, the work goes on."""
        gate: Deferred[None] = Deferred()
        done: list[bool] = []

        async def work() -> None:
            await gate
            done.append(True)

        async def caller() -> str:
            try:
                await shield(work())
            except CancelledError:
                return "cancelled"
            return "finished"

        d = Deferred.fromCoroutine(caller())
        d.cancel()
        self.assertEqual(self.successResultOf(d), "cancelled")
        gate.callback(None)
        self.assertEqual(done, [True])
