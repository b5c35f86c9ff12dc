"""Drive a coroutine whose awaits have all fired already (fakes, inline blocking, a synchronous
process runner): its value, or its exception raised here. The one such helper of the tests."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.python.failure import Failure

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T] | Deferred[T]) -> T:
    """The coroutine's (or fired Deferred's) result; its exception is raised.

    @raise AssertionError: it is still waiting for something (it did not finish synchronously).
    """
    box: list[T | Failure] = []
    ensureDeferred(coro).addBoth(box.append)
    assert box, "the coroutine did not finish synchronously"
    out = box[0]
    if isinstance(out, Failure):
        out.raiseException()
    return out  # type: ignore[return-value]  # a Failure was raised just above
