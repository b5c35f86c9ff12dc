"""The direct door of the Unix listening port (layer: daemon): a connection whose first read is
one whole request the site can answer is answered on its bare socket, and no Twisted transport,
connection guard wrapper or HTTP channel is ever built for it.

Every CLI command, docker-py call without a pooled connection and health check opens a
connection, sends one small request and, once answered, closes. For a request answered from
memory (an inspect, a list, a ping), building Twisted's per-connection machinery (the socket
transport and its registration with the reactor, the guard's wrapper, twisted.web's channel and
its timers) and tearing it down again cost more than the request itself: a bare accept, read,
answer and close is a quarter of the time.

Here the port accepts, reads at once (a client sends its request right after connecting) and
offers the read to its factory (L{pyd.daemon.guard.ConnectionGuard.direct}, then the site's
L{pyd.api.lean.serve_direct}) with a L{RawConnection} standing in for the transport. What the
factory declines (nothing read yet, a partial or pipelined read, a route not marked lean, a
connection over the guard's cap, TLS) gets Twisted's transport as before, with the bytes already
read handed to it as its first read. A request taken is answered through L{RawConnection.done}:
the answer is sent on the socket; then the socket is closed (C{Connection: close}), or a
keep-alive connection waits for its next request still without a transport (L{_Idle}: the CLI's
C{HEAD /_ping} and its request come on one connection), its next read offered to the door as a
first read is. An answer the kernel did not take whole, or a later read the door declines, gets
a Twisted transport built then, which sends the rest and reads the next request as any
connection's would.

A request taken while its handler waits (an operator's guarded call, a volume create's
database hop) has no transport watching its socket: a client that goes away meanwhile does not
cancel the handler, as it would on the full path; the handler ends and its answer meets a
closed socket. Only C{@lean} routes come here, whose handlers only compute a body.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.internet.tcp import _accept, _BuffersLogs, _reservedFD
from twisted.python import log

from pyd.daemon.guard import peer_cred

# What one read at accept takes: Twisted's own read size for a connection.
READ_SIZE = 65536


class RawConnection:
    """An accepted Unix connection with no Twisted transport yet: what a request answered on it
    needs of a transport (the socket, the peer's credentials, the two addresses) and the way
    its answer leaves (L{done})."""

    __slots__ = ("_addr", "_port", "_release", "pyd_peercred", "socket")

    def __init__(self, port: Any, skt: socket.socket, addr: Any) -> None:
        self._port = port
        self._addr = addr
        self.socket = skt
        self._release: Callable[[], None] | None = None
        # (pid, uid, gid) at connect time, as the connection guard reads it for any connection
        self.pyd_peercred = peer_cred(self)

    def getPeer(self) -> Any:
        """The peer's address, as the port makes it for a transport."""
        return self._port._buildAddr(self._addr)

    def getHost(self) -> Any:
        """The listening address."""
        return self._port.getHost()

    def counted(self, release: Callable[[], None]) -> None:
        """C{release} is called once when the connection is no longer this object's (closed,
        or handed to a Twisted transport): the guard's count of open connections."""
        self._release = release

    def release(self) -> None:
        """Stop counting the connection (once)."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def done(self, answer: bytes, keep: bool) -> None:
        """Send C{answer}; then close the connection or, when C{keep} (a keep-alive request),
        let it wait for its next request (L{_Idle}). What the kernel does not take now goes to
        a Twisted transport made then, which sends it as it sends anything (and then reads the
        next request, or closes when not C{keep}). A peer already gone just closes the socket."""
        skt = self.socket
        try:
            sent = skt.send(answer) if answer else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            skt.close()
            self.release()
            return
        if sent == len(answer):
            if not keep:
                skt.close()  # the client reads to the end: its end comes before any bookkeeping
                self.release()
                return
            # still counted against its peer while it waits (as a transport's connection is)
            release, self._release = self._release, None
            _Idle(self._port, skt, self._addr, release)
            return
        self.release()
        self._port.adopt(skt, self._addr, answer[sent:], answered="kept" if keep else "closing")


class _Idle:
    """A keep-alive connection whose request the direct door answered, waiting for its next
    one still without a Twisted transport: the CLI sends C{HEAD /_ping}, then its request, on
    one connection, and closes. The next read is offered to the door as a first read is
    (L{DirectAccept.offer}); the connection gets its transport only when the door declines it.

    It waits as a channel waits between requests: no header deadline before the next request's
    first byte, closed after the site's idle timeout; counted against its peer meanwhile."""

    __slots__ = ("_addr", "_port", "_release", "_timer", "socket")

    def __init__(
        self, port: Any, skt: socket.socket, addr: Any, release: Callable[[], None] | None
    ) -> None:
        self._port = port
        self._addr = addr
        self.socket = skt
        self._release = release
        reactor = port.reactor
        reactor.addReader(self)
        self._timer: Any = reactor.callLater(port.idle_timeout(), self._expire)

    def fileno(self) -> int:
        return self.socket.fileno()

    def logPrefix(self) -> str:
        return "pyd-direct-idle"

    def doRead(self) -> None:
        """The next request (or the end): offered to the door, else to a transport."""
        try:
            data = self.socket.recv(READ_SIZE)
        except BlockingIOError:
            return  # nothing after all: still waiting
        except OSError:
            data = b""
        self._stop()
        release, self._release = self._release, None
        if release is not None:
            release()
        if not data:
            self.socket.close()
            return
        self._port.offer(self.socket, self._addr, data)

    def connectionLost(self, reason: Any) -> None:
        """The reactor gave up on the socket (an error, its shutdown): closed, uncounted."""
        self._stop()
        self._close()

    def _expire(self) -> None:
        self._timer = None
        self._stop()
        self._close()

    def _stop(self) -> None:
        self._port.reactor.removeReader(self)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _close(self) -> None:
        if self.socket.fileno() >= 0:
            self.socket.close()
        release, self._release = self._release, None
        if release is not None:
            release()


class DirectAccept:
    """Mixin for a Unix listening port (before L{pyd.daemon.eager.UnixPort}'s other bases):
    accepts as Twisted's port does, reads each connection at once and offers the read to the
    factory's C{direct(conn, data)}; a connection it declines gets its Twisted transport, with
    the read handed over as that transport's first (L{pyd.daemon.eager._StreamRead})."""

    # Off: Twisted's own accept (tests compare the two).
    direct_on = True

    def doRead(self) -> Any:
        """Accept what is queued, as Twisted's C{tcp.Port.doRead} does (its accept helper, its
        handling of a full descriptor table, its growing batch), then read the connections
        made in this turn (L{pyd.daemon.eager._ReadAtAccept})."""
        me: Any = self
        take = getattr(me.factory, "direct", None)
        if take is None or not self.direct_on:
            return super().doRead()  # type: ignore[misc]  # cooperative mixin over tcp.Port
        fresh: list[Any] = []
        me._fresh = fresh
        try:
            accepted = 0
            with _BuffersLogs(me._logger.namespace, me._logger.observer) as logger:
                clients = _accept(logger, range(me.numberAccepts), me.socket, _reservedFD)
                for skt, addr in clients:
                    accepted += 1
                    self._arrived(skt, addr, take)
            if accepted == me.numberAccepts:
                me.numberAccepts += 20
            else:
                me.numberAccepts = max(1, accepted)
        except BaseException:  # noqa: BLE001 - Twisted's port logs and goes on, as here
            log.deferr()
        finally:
            me._fresh = None
        me.read_fresh(fresh)
        return None

    def _arrived(self, skt: socket.socket, addr: Any, take: Callable[[Any, bytes], bool]) -> None:
        skt.setblocking(False)
        try:
            data: bytes | None = skt.recv(READ_SIZE)
        except OSError:
            data = None  # nothing yet (or an error the transport's own read will meet)
        if data == b"":
            skt.close()  # connected and closed without a byte: nothing to answer
            return
        if data is not None and self._take(skt, addr, data, take):
            return
        self.adopt(skt, addr, preread=data)

    def _take(
        self, skt: socket.socket, addr: Any, data: bytes, take: Callable[[Any, bytes], bool]
    ) -> bool:
        """Offer C{data} to the factory's door on a L{RawConnection}: whether it took it."""
        conn = RawConnection(self, skt, addr)
        try:
            if take(conn, data):
                return True
        except Exception:  # noqa: BLE001 - the full path then has the read, as when declined
            log.err(None, "direct door declined a connection by a failure")
        conn.release()
        return False

    def offer(self, skt: socket.socket, addr: Any, data: bytes) -> None:
        """The next read of a connection the door answered before (L{_Idle}): taken by the
        door, or given to a Twisted transport as its first read, read in this same turn (as
        the connections of an accepting turn are)."""
        me: Any = self
        take = getattr(me.factory, "direct", None)
        if take is not None and self._take(skt, addr, data, take):
            return
        fresh: list[Any] = []
        me._fresh = fresh
        try:
            self.adopt(skt, addr, preread=data, answered="kept")
        finally:
            me._fresh = None
        me.read_fresh(fresh)

    def idle_timeout(self) -> float:
        """How long a connection may wait between requests: the site's idle timeout (as its
        channel's), else twisted.web's default."""
        me: Any = self
        site = getattr(me.factory, "wrappedFactory", me.factory)
        return float(getattr(site, "timeOut", None) or 60 * 60 * 12)

    def adopt(
        self,
        skt: socket.socket,
        addr: Any,
        rest: bytes = b"",
        preread: bytes | None = None,
        answered: str | None = None,
    ) -> Any:
        """Give C{skt} its Twisted transport and protocol, as Twisted's accept does; then send
        C{rest} on it, or hand it C{preread} as its first read (only in the accepting turn,
        whose end reads each connection made in it).

        C{answered} tells the protocol (C{transport.answered}) that its first request was
        answered already: C{"kept"}, the connection is between requests (the API's channel
        then waits for the next one as after any answer: no header deadline before its first
        byte); C{"closing"}, it only sends the rest of that answer and closes."""
        me: Any = self
        protocol = me.factory.buildProtocol(me._buildAddr(addr))
        if protocol is None:
            skt.close()
            return None
        session = me.sessionno
        me.sessionno = session + 1
        transport = me.transport(skt, protocol, addr, me, session, me.reactor)
        if preread is not None:
            transport.preread = preread
        transport.answered = answered
        protocol.makeConnection(transport)
        if rest:
            transport.write(rest)
        if answered == "closing":
            # the protocol may be its transport's producer (twisted.web's channel is): it
            # stops being one first, or the transport would wake it once the rest is sent
            # instead of closing (as the channel's own loseConnection does)
            if transport.producer is not None:
                transport.unregisterProducer()
            transport.loseConnection()
        return transport
