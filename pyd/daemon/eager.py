"""Listening ports whose connections send a read's answer in the same reactor turn (layer: daemon).

Twisted's socket transport only queues a write: it asks the reactor to watch the socket for
writability (one C{epoll_ctl}), and the send happens on the next turn of the loop (one more
C{epoll_wait}, the reactor's dispatch, and another C{epoll_ctl} to stop watching). For a
request-response protocol that is half of the work of a small request: a keep-alive C{/_ping}
cost 6 system calls, 2 of them waits. Go's net package, under dockerd, writes at once.

Here a connection's transport, while it handles a read, only queues what its protocol writes;
once the read is handled it sends the queue at once (one C{send} for the status line, headers
and body of every response that read produced), and only what the kernel did not take waits for
writability as before. An answer completed outside a read (one that needed the database) is
sent when its request finishes (L{_SendAfterRead.send_queued}, called by the API's channel).
A connection its protocol closes after the answer (C{Connection: close}: every CLI command)
is closed in that same turn once the kernel took everything, as the reactor's C{doWrite}
would have closed it a turn later. Whatever else is written outside a read (a log stream), a
half-closed connection, a close with data the kernel did not take, and every error path keep
Twisted's own behaviour: the transport is watched for writability and its C{doWrite} runs
from the reactor. Order is kept: everything goes through the transport's one buffer.

The listening ports also read each connection they accept in the accepting turn
(L{_ReadAtAccept}): a client sends its request right after connecting, so waiting for the
reactor to report it would cost one more C{epoll_wait} and turn per connection.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import main, tcp, unix
from twisted.internet.defer import Deferred, execute
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pyd.daemon.direct import DirectAccept

_log = Logger()


class _SendAfterRead:
    """Mixin for a connection transport (before Twisted's C{tcp.Server} in the bases)."""

    # True while the protocol handles a read: a wish to write (startWriting, from a write, a
    # loseConnection, a half-close) is only noted, and served once the read is handled.
    _handling_read = False
    _wants_write = False

    def doRead(self) -> Any:
        """Read as Twisted does, then send what the protocol wrote meanwhile."""
        self._handling_read = True
        try:
            why = super().doRead()  # type: ignore[misc]  # cooperative mixin over tcp.Connection
        finally:
            self._handling_read = False
        if self._wants_write:
            self._wants_write = False
            if why is None:
                self._send_now()
            else:
                super().startWriting()  # type: ignore[misc]  # the connection is being lost
        return why

    def startWriting(self) -> None:
        """Watch for writability, except while a read is handled (served after it)."""
        if self._handling_read:
            self._wants_write = True
            return
        super().startWriting()  # type: ignore[misc]  # cooperative mixin over tcp.Connection

    def send_queued(self) -> None:
        """Send what is queued now, from outside a read (an answer completed by a callback,
        once its request is finished): the reactor's turn for writability is skipped. Inside
        a read, a close, an abort or an error: nothing (the usual paths send or report it)."""
        me: Any = self
        if me._handling_read or not me.connected or me._writeDisconnecting or me._aborting:
            return
        if me.disconnecting:
            self._close_now()  # what is not sent now is left to the reactor's doWrite
            return
        if not _queued(me):
            return
        # Outside a read, write() already asked for writability: what is not sent now (or an
        # error) is left to the reactor's doWrite, as before; all sent stops the watch.
        me.doWrite()

    def _send_now(self) -> None:
        me: Any = self
        if me._aborting:
            return  # abortConnection dropped what was queued and stopped writing
        if me.connected and not me._writeDisconnecting:
            if me.disconnecting:
                if self._close_now():
                    return  # answered and closed in this turn
            # doWrite returns an error (the connection is gone) or None; on an error the data
            # stays queued and the reactor's doWrite reports the loss, as it would have.
            elif _queued(me) and me.doWrite() is None and not _queued(me):
                return  # all sent in this turn
        # What the kernel did not take, a close or half-close after the answer, or an error:
        # as Twisted does it, from the reactor once the socket is writable.
        super().startWriting()  # type: ignore[misc]  # cooperative mixin over tcp.Connection

    def _close_now(self) -> bool:
        """A connection its protocol closes (C{loseConnection}: a C{Connection: close} answer
        finished): send what is queued and, once the kernel took all of it, close now, as the
        reactor would on the next turn once the socket was writable (its C{doWrite} returns
        the end of the connection, which the reactor turns into C{connectionLost}). The client
        that reads to the end sees it a turn and four system calls sooner. False when data is
        left (or a producer may still write): the reactor's path does the rest."""
        me: Any = self
        if me.producer is not None:
            return False
        why = me.doWrite()
        if why is None:
            return False
        # all sent (ConnectionDone) or the send failed (ConnectionLost): what the reactor does
        # with a doWrite's verdict (its _disconnectSelectable: the connection stops being
        # watched, in connectionLost, and learns why)
        me.connectionLost(_CLEAN_CLOSE if why is main.CONNECTION_DONE else Failure(why))
        return True


def _clean_close() -> Failure:
    """The reason of every clean close this module reports: one Failure, examined once (each
    C{Failure.check} of a fresh one names every class of its exception's MRO, per connection),
    as Twisted's own C{protocol.connectionDone} is shared by every protocol."""
    done = Failure(main.CONNECTION_DONE)
    done.check(Exception)
    return done


_CLEAN_CLOSE = _clean_close()


def _queued(fd: Any) -> bool:
    """Whether a transport holds data not yet sent (Twisted's two write buffers)."""
    return bool(fd._tempDataLen or fd.offset < len(fd.dataBuffer))


class _StreamRead:
    """A Unix connection read as a TCP one (C{recv}): Twisted's Unix transport reads with
    C{recvmsg} to hand passed descriptors to protocols that take them, which the API's do
    not (it then closes each one a client passed); with C{recv} the kernel discards them and
    the daemon never holds one. Cheaper too: no ancillary buffer, no message record."""

    # What the port read when it accepted the connection (L{pyd.daemon.direct}), handed to the
    # protocol as the connection's first read.
    preread: bytes | None = None
    declined_read = False
    # Whether the port's direct door answered the connection's first request already, and
    # how it goes on (L{pyd.daemon.direct.DirectAccept.adopt}).
    answered: str | None = None

    def doRead(self) -> Any:
        """Read what is there and hand it to the protocol (Twisted's TCP read)."""
        data = self.preread
        if data is not None:
            self.preread = None
            self.declined_read = True  # the site has seen this read already (not its to take)
            try:
                return tcp.Connection._dataReceived(self, data)  # type: ignore[arg-type]  # a Unix server is a tcp.Connection
            finally:
                self.declined_read = False
        return tcp.Connection.doRead(self)  # type: ignore[arg-type]  # a Unix server is a tcp.Connection


class _UnixServer(_SendAfterRead, _StreamRead, unix.Server):
    """A Unix-socket connection that sends a read's answer in the same turn."""


class _TCPServer(_SendAfterRead, tcp.Server):
    """A TCP connection that sends a read's answer in the same turn."""


class _ReadAtAccept:
    """Mixin for a listening port: the connections it accepted in one turn are read at once,
    in that turn, instead of on the reactor's next one.

    A client connects and sends its request right away (every CLI command opens a new
    connection), so by the time the daemon accepts, the request is usually in the socket:
    waiting for the reactor to report it costs one more C{epoll_wait} and turn of the loop
    for each connection. The read is dispatched as the reactor dispatches a read event (its
    errors handled alike); a connection with nothing to read yet answers C{EAGAIN} and is read
    when the reactor reports it, as before. Skipped for a connection its protocol closed or
    stopped reading from while it was made (a refused one), and on reactors without the
    poll-like dispatch (tests' memory reactors)."""

    _fresh: list[Any] | None = None

    def doRead(self) -> Any:
        """Accept as Twisted does, then read each new connection once."""
        fresh: list[Any] = []
        self._fresh = fresh
        try:
            why = super().doRead()  # type: ignore[misc]  # cooperative mixin over tcp.Port
        finally:
            self._fresh = None
        self.read_fresh(fresh)
        return why

    def read_fresh(self, fresh: list[Any]) -> None:
        """Read each of the connections made in this turn once, as the reactor would dispatch
        a read event; then tell each the turn is over."""
        me: Any = self
        try:
            dispatch = getattr(me.reactor, "_doReadOrWrite", None)
            reads = getattr(me.reactor, "_reads", None)
            event = getattr(me.reactor, "_POLL_IN", None)
            if dispatch is not None and reads is not None and event is not None:
                for transport in fresh:
                    if transport.connected and not transport.disconnecting:
                        fd = transport.fileno()
                        if fd in reads:
                            dispatch(transport, fd, event)
        finally:
            for transport in fresh:
                transport.accept_turn_over()

    def accepted(self, transport: Any) -> bool:
        """A connection this port just made (called by its transport's constructor): True
        when it is read in this turn."""
        if self._fresh is None:
            return False
        self._fresh.append(transport)
        return True


class _Accepted:
    """Mixin for a connection transport: tells its port it was just accepted; its protocol
    may leave its timers until the port's read in the accepting turn is handled
    (L{defer_timers})."""

    _in_accept_turn = False
    _after_accept_read: Any = None

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        note = getattr(args[3] if len(args) > 3 else kw.get("server"), "accepted", None)
        if note is not None and note(self) is True:
            self._in_accept_turn = True

    def defer_timers(self, start: Any) -> bool:
        """Call C{start} once the read of the accepting turn is handled (True), or refuse when
        no such read is to come (False: the caller starts its timers now). A connection that
        read answers and closes never needs them (the HTTP channel's idle timer and header
        deadline, L{pyd.api.channel.ApiChannel})."""
        if not self._in_accept_turn:
            return False
        self._after_accept_read = start
        return True

    def accept_turn_over(self) -> None:
        """Called by the port after the accepting turn's read (or when there was none)."""
        self._in_accept_turn = False
        start, self._after_accept_read = self._after_accept_read, None
        if start is not None:
            try:
                start()
            except Exception:  # noqa: BLE001 - one connection's protocol must not stop the port's others
                _log.failure("starting the timers of a new connection")


class _AcceptedUnixServer(_Accepted, _UnixServer):
    """A L{_UnixServer} a L{UnixPort} reads in the turn it accepted it."""


class _AcceptedTCPServer(_Accepted, _TCPServer):
    """A L{_TCPServer} a L{TCPPort} reads in the turn it accepted it."""


class UnixPort(DirectAccept, _ReadAtAccept, unix.Port):
    """Twisted's Unix listening port, with L{_SendAfterRead} connections read when accepted;
    a first read the site answers at once takes no transport at all (L{DirectAccept})."""

    transport = _AcceptedUnixServer
    _unnamed: Any = None

    def _buildAddr(self, name: Any) -> Any:
        """The peer's address: a client's Unix socket is almost always unbound (no name), and
        the one address object for that is made once per port (an attrs object with a
        converter, ~2 % of a small request when built for each connection)."""
        if name:
            return super()._buildAddr(name)
        unnamed = self._unnamed
        if unnamed is None or unnamed[0] != name or type(unnamed[0]) is not type(name):
            unnamed = self._unnamed = (name, super()._buildAddr(name))
        return unnamed[1]


class TCPPort(_ReadAtAccept, tcp.Port):
    """Twisted's TCP listening port, with L{_SendAfterRead} connections read when accepted."""

    transport = _AcceptedTCPServer


@implementer(IStreamServerEndpoint)
class UnixEndpoint:
    """C{unix:PATH:mode=660} as L{twisted.internet.endpoints.serverFromString} makes it (a
    C{PATH.lock} file, backlog 50), on a L{UnixPort}."""

    def __init__(self, reactor: Any, path: str, mode: int = 0o660) -> None:
        self.reactor = reactor
        self.path = path
        self.mode = mode

    def listen(self, factory: Any) -> Deferred[Any]:
        """Bind, listen, and start accepting."""

        def start() -> Any:
            port = UnixPort(self.path, factory, 50, self.mode, self.reactor, True)  # type: ignore[arg-type]  # a str path, as listenUNIX passes it
            port.startListening()
            return port

        return execute(start)


@implementer(IStreamServerEndpoint)
class TCPEndpoint:
    """C{tcp:PORT:interface=HOST} as L{twisted.internet.endpoints.serverFromString} makes it
    (backlog 50; an IPv6 C{HOST} gives an IPv6 socket), on a L{TCPPort}."""

    def __init__(self, reactor: Any, port: int, interface: str) -> None:
        self.reactor = reactor
        self.port = port
        self.interface = interface

    def listen(self, factory: Any) -> Deferred[Any]:
        """Bind, listen, and start accepting."""

        def start() -> Any:
            port = TCPPort(self.port, factory, 50, self.interface, self.reactor)
            port.startListening()
            return port

        return execute(start)


@implementer(IStreamServerEndpoint)
class AdoptedTCPEndpoint:
    """An inherited, already-listening TCP socket (systemd's), on a L{TCPPort}."""

    def __init__(self, reactor: Any, fd: int, family: int) -> None:
        self.reactor = reactor
        self.fd = fd
        self.family = family

    def listen(self, factory: Any) -> Deferred[Any]:
        """Adopt the descriptor and start accepting."""

        def adopt() -> Any:
            os.set_blocking(self.fd, False)
            port = TCPPort._fromListeningDescriptor(self.reactor, self.fd, self.family, factory)
            port.startListening()
            os.close(self.fd)  # the port listens on its own duplicate, as Twisted's adoption does
            return port

        return execute(adopt)
