"""Seams every layer depends on (layer: core).

C{Blocking} is how code that must not run on the reactor thread (SQL, tar, hashing, netlink,
mount) gets run: the daemon gives each consumer a pool of worker threads (L{pyd.core.workers}), tests the inline one.

The C{I*Reactor} interfaces name the slices of Twisted's reactor a consumer uses. They are zope
Interfaces (not typing.Protocols) because Twisted's own signatures ask for its interfaces by name
(C{deferLater(clock: IReactorTime)}), which mypy-zope checks nominally: a Protocol would not pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import (
    IDelayedCall,
    IReactorCore,
    IReactorFDSet,
    IReactorFromThreads,
    IReactorPluggableNameResolver,
    IReactorProcess,
    IReactorSocket,
    IReactorTCP,
    IReactorTime,
    IReactorUDP,
    IReactorUNIX,
)

from pyd.core.records import Event

P = ParamSpec("P")
T = TypeVar("T")


class Clock(Protocol):
    """Time as the engine reads it: the reactor in the daemon, C{task.Clock} in tests."""

    def seconds(self) -> float:
        """Now, in seconds since the epoch."""
        ...

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> IDelayedCall:
        """Call C{callable} after C{delay} seconds."""
        ...


class IWatchReactor(IReactorTime, IReactorFDSet):
    """What a file watcher uses: inotify's descriptor, or a poll loop's clock."""


class IProcessReactor(IWatchReactor, IReactorProcess):
    """What a supervisor of child processes uses: spawning, watching files, timeouts."""


class INetReactor(IReactorTime, IReactorTCP, IReactorPluggableNameResolver):
    """What an HTTP(S) client uses: name resolution, TCP connections, timeouts."""


class IDnsReactor(IReactorTime, IReactorTCP, IReactorUDP, IReactorSocket):
    """What the embedded DNS uses: adopted listening sockets and an upstream resolver."""


class ICliReactor(IReactorTime, IReactorTCP, IReactorUNIX, IReactorFromThreads):
    """What the command-line client uses: TCP or Unix connections to daemons, timeouts, and
    a signal handler's hop back onto the reactor thread."""


class IDaemonReactor(
    IProcessReactor, INetReactor, IDnsReactor, IReactorCore, IReactorFromThreads, IReactorUNIX
):
    """The whole reactor the daemon hands out, slice by slice, to the services it wires."""


class Blocking(Protocol):
    """Runs a blocking callable somewhere that is not the reactor thread."""

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        """Call C{fn(*args, **kwargs)} off the reactor thread; fire with its result."""
        ...


class InlineBlocking:
    """The test implementation of L{Blocking}: runs the callable at once, on the caller's thread."""

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        """Call C{fn} now and wrap its outcome in an already-fired Deferred."""
        try:
            return succeed(fn(*args, **kwargs))
        except BaseException:  # noqa: BLE001 - turned into a failed Deferred, nothing lost
            return fail()


class StagedEvent(Protocol):
    """An event stored by another repository's transaction (L{EventSink.stage})."""

    def write(self, conn: Any) -> None:
        """Store the event with C{conn}, inside the caller's transaction (on the DB thread)."""
        ...

    def publish(self) -> None:
        """Hand the stored event to the live subscribers (on the reactor, once the transaction
        committed); nothing if it was not written."""
        ...


class EventSink(Protocol):
    """Where engine services report what happened (persisted, then fanned out to /events)."""

    def stage(
        self,
        type_: str,
        action: str,
        actor_id: str,
        attributes: dict[str, str] | None = None,
        scope: str = "local",
    ) -> StagedEvent:
        """An event to be stored in the transaction of the change it reports (one DB round
        trip for both, and no event without its change), then published."""
        ...

    def emit(
        self,
        type_: str,
        action: str,
        actor_id: str,
        attributes: dict[str, str] | None = None,
        scope: str = "local",
    ) -> Deferred[Event]:
        """Record one event; fires once it is stored."""
        ...
