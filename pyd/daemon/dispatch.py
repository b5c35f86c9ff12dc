"""The reactor's dispatch of socket events without the legacy logging context (layer: daemon).

Twisted's epoll reactor runs each ready socket's read or write inside
C{twisted.python.log.callWithLogger}: it asks the transport for its log prefix, pushes it as
the C{system} of a new context for legacy C{log.msg} calls, and catches what escapes. With
keep-alive clients that wrapping was ~18 % of the reactor thread's time (py-spy, 8 clients
pinging: the read and the send themselves were less; docs/performance.md, issue 21 session
10). pyd logs with C{twisted.logger}, whose events name their own namespace, so the context
only ever labelled Twisted's own legacy messages.

L{lean_dispatch} gives an epoll reactor a C{doIteration} that is its C{doPoll} calling
C{_doReadOrWrite} directly (which already turns a failing read or write into the
connection's loss); anything that still escapes one socket's handling is logged and the other
ready sockets of the same wait are handled, as with C{callWithLogger}.
"""

from __future__ import annotations

import errno
import types
from typing import Any

from twisted.logger import Logger

_log = Logger()


def _do_poll(self: Any, timeout: float | None) -> None:
    """The epoll reactor's C{doPoll}, without the per-event logging context."""
    try:
        # as Twisted's: at most as many events as sockets watched
        ready = self._poller.poll(-1 if timeout is None else timeout, len(self._selectables))
    except OSError as e:
        if e.errno == errno.EINTR:
            return
        raise
    handle = self._doReadOrWrite
    selectables = self._selectables
    for fd, event in ready:
        selectable = selectables.get(fd)
        if selectable is None:
            continue  # removed by an earlier event of this same wait
        try:
            handle(selectable, fd, event)
        except Exception:  # noqa: BLE001 - as callWithLogger: logged, the loop goes on
            _log.failure("handling an event of {selectable!r}", selectable=selectable)


def lean_dispatch(reactor: Any) -> bool:
    """Use L{_do_poll} as C{reactor}'s C{doIteration} when it is Twisted's epoll reactor (the
    one the daemon runs on); another reactor is left as it is. @return: whether it was."""
    from twisted.internet.epollreactor import EPollReactor

    if not isinstance(reactor, EPollReactor):
        return False
    reactor.doIteration = types.MethodType(_do_poll, reactor)  # type: ignore[method-assign]  # this reactor instance only
    return True
