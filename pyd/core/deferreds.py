"""Deferred helpers every layer may use (layer: core).

C{shield} runs work that must finish once begun (removing a container, a build's step
containers) apart from its caller's cancellation: when a client goes away, twisted.web and
Klein cancel the request's Deferred wherever it waits, and a cancel that lands inside a
clean-up would otherwise stop the clean-up halfway (asyncio's C{shield}, for Deferreds).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

T = TypeVar("T")

log = Logger()


def shield(work: Coroutine[Any, Any, T] | Deferred[T], what: str = "work") -> Deferred[T]:
    """A Deferred that fires with C{work}'s result; cancelling it fails it with
    C{CancelledError} at once but lets C{work} run to its end (a failure that then has nobody
    to report to is logged, naming C{what})."""
    inner = work if isinstance(work, Deferred) else Deferred.fromCoroutine(work)
    # The canceller does nothing: the Deferred then fails with CancelledError by itself.
    outer: Deferred[T] = Deferred(lambda _: None)

    def done(result: T) -> None:
        if not outer.called:
            outer.callback(result)

    def failed(f: Failure) -> None:
        if not outer.called:
            outer.errback(f)
        else:
            log.failure("{what} failed after its caller went away", f, what=what)

    inner.addCallbacks(done, failed)
    return outer
