"""L{pyd.api.base.run_route} steps a handler's coroutine once and, when it waits, hands it to
Twisted's driver from where it stopped (L{pyd.api.base._resume}): every outcome of each later
await reaches the handler's own code as it would under C{ensureDeferred}."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.base import _resume


async def _handler(first: Deferred[int], second: Deferred[int]) -> Any:
    try:
        x = await first
    except KeyError:
        return "caught"
    y = await second
    z = await succeed(1)
    return x + y + z


class ResumeTests(SynchronousTestCase):
    def _started(self) -> tuple[Deferred[Any], Deferred[int], Deferred[int]]:
        first: Deferred[int] = Deferred()
        second: Deferred[int] = Deferred()
        coro = _handler(first, second)
        waiting = coro.send(None)  # what run_route does: one step, here suspended
        self.assertIs(waiting, first)
        return Deferred.fromCoroutine(_resume(coro, waiting)), first, second

    def test_values_reach_each_await(self) -> None:
        out, first, second = self._started()
        first.callback(10)
        self.assertNoResult(out)
        second.callback(100)
        self.assertEqual(self.successResultOf(out), 111)

    def test_failure_raised_where_the_handler_catches_it(self) -> None:
        out, first, _ = self._started()
        first.errback(KeyError("x"))
        self.assertEqual(self.successResultOf(out), "caught")

    def test_cancel_cancels_the_awaited_deferred(self) -> None:
        out, first, _ = self._started()
        out.cancel()
        self.assertTrue(first.called)  # cancelled (its outcome went to the handler)
        self.failureResultOf(out, CancelledError)

    def test_cancel_after_a_step(self) -> None:
        out, first, second = self._started()
        first.callback(1)
        out.cancel()
        self.assertTrue(second.called)
        self.failureResultOf(out, CancelledError)
