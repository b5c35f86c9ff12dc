"""The HTTP channel of the API (layer: api): twisted.web's channel plus a header deadline and the
TLS handshake notice.

twisted.web's own timeout is an idle timer reset by every byte, so a client dripping its
headers one byte at a time holds the connection (and its buffers) forever. Here a request's
headers must be complete within the site's C{header_timeout} of its first byte (of the
connection, for the first request: a TLS client's handshake counts too), as Go's
C{ReadHeaderTimeout} does for dockerd; otherwise the connection is aborted.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.http_headers import Headers
from zope.interface import implementer

log = Logger()


def head_bytes(version: bytes, code: bytes, reason: bytes, headers: Headers) -> bytes:
    """A response's status line and headers, as twisted.web's channel writes them."""
    parts = [version, b" ", code, b" ", reason, b"\r\n"]
    for name, values in headers.getAllRawHeaders():
        for value in values:
            parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


@implementer(IHandshakeListener)
class ApiChannel(HTTPChannel):
    """An HTTP channel whose request headers have a deadline."""

    _header_deadline: Any = None
    # Whether the current request's headers are still due. The deadline's timer is kept across
    # the requests of a keep-alive connection and only pushed back (a reset to a later time is
    # cheap; a new timer and a cancel per request are not).
    _awaiting_headers = False
    # The connection's two addresses, once asked for (L{getHost}, L{getPeer}).
    _host: Any = None
    _peer: Any = None
    # The timers wait for the end of the read the listening port does as it accepts the
    # connection (see connectionMade).
    _timers_waiting = False
    _lost = False

    def _header_timeout(self) -> float:
        return float(getattr(self.factory, "header_timeout", 0) or 0)

    def _arm(self) -> None:
        if self._awaiting_headers:
            return
        timeout = self._header_timeout()
        if not timeout:
            return
        self._awaiting_headers = True
        if self._timers_waiting:
            return  # made once the accepting read is handled (L{_start_timers}), if still due
        call = self._header_deadline
        if call is not None and call.active():
            call.reset(timeout)
        else:
            self._header_deadline = self.callLater(timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        self._awaiting_headers = False

    def _cancel(self) -> None:
        self._awaiting_headers = False
        if self._header_deadline is not None:
            if self._header_deadline.active():
                self._header_deadline.cancel()
            self._header_deadline = None

    def handed_over(self) -> None:
        """The connection now belongs to a hijacked stream (L{pyd.api.hijack.hijack}): no timer
        of this channel's may keep it, its transport and its last request alive once the
        stream has ended (the header deadline outlives each request on purpose, see above)."""
        self.setTimeout(None)
        self._cancel()

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self._awaiting_headers:
            return  # the headers came in time; the next request arms a new timer
        transport: Any = self.transport
        log.debug("client too slow sending request headers: {peer}", peer=transport.getPeer())
        transport.abortConnection()

    def connectionMade(self) -> None:
        """Start the first request's header deadline (and twisted.web's idle timer).

        A connection its listening port reads in the turn it accepted it (L{pyd.daemon.eager})
        gets its timers once that read is handled, and only if they are still due then: a CLI
        command's connection is usually answered and closed by that read (L{pyd.api.lean}),
        and two timers made and cancelled for it were ~4 % of its cost.

        A connection whose first request the port answered before it had a transport
        (L{pyd.daemon.direct}) starts between requests: kept alive, it has the idle timer a
        channel has after an answer and no header deadline until the next request's first
        byte; closing, it only drains that answer (no timer, as a channel finishing a
        C{Connection: close} answer)."""
        answered = getattr(self.transport, "answered", None)
        if answered is None:
            defer = getattr(self.transport, "defer_timers", None)
            self._timers_waiting = callable(defer) and defer(self._start_timers) is True
        if self._timers_waiting or answered == "closing":
            period, self.timeOut = self.timeOut, None
            super().connectionMade()  # its idle timer for no period: none
            self.timeOut = period
        else:
            super().connectionMade()
        if answered is None:
            self._arm()

    def _start_timers(self) -> None:
        """The accepting read is handled: the timers the connection would have now, if it is
        still open (what the read did already moved or stopped them as it would have)."""
        self._timers_waiting = False
        if self.transport is None or self._lost:
            return
        if self.timeOut is not None and getattr(self, "_TimeoutMixin__timeoutCall", None) is None:
            self.setTimeout(self.timeOut)  # idle (None while a request is being answered)
        if self._awaiting_headers and self._header_deadline is None:
            self._header_deadline = self.callLater(self._header_timeout(), self._headers_too_slow)

    def dataReceived(self, data: bytes) -> None:
        """The first byte of a new request starts its header deadline. A chunk that is exactly
        one request the site answers without twisted.web's request machinery (C{/_ping}: every
        CLI command sends one) is answered here; one the site serves without twisted.web's
        parser (L{pyd.api.lean}) is handed to it."""
        if self.line_mode and not self._handlingRequest:
            if (
                not self.requests
                and not self._buffer
                and not self._waitingForTransport
                and self.persistent
                and getattr(self, "_HTTPChannel__first_line", 0) == 1
                and not getattr(self.transport, "declined_read", False)
            ):
                quick = getattr(getattr(self, "site", None), "quick_response", None)
                answer = quick(data) if quick is not None else None
                if answer is not None:
                    self._disarm()
                    self.resetTimeout()
                    self.transport.write(answer)  # type: ignore[union-attr]  # transport is set while the channel is connected
                    return
                lean = getattr(getattr(self, "site", None), "lean_request", None)
                if lean is not None and lean(self, data):
                    self._disarm()
                    return
            self._arm()
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        """Headers complete in time."""
        self._disarm()
        super().allHeadersReceived()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """No deadline outlives the connection."""
        self._lost = True
        self._cancel()
        super().connectionLost(reason)

    def requestDone(self, request: Any) -> None:
        """A request is finished: its answer, when completed outside a read, leaves now
        rather than on the reactor's next turn (the listeners' transports can send what they
        hold, L{pyd.daemon.eager}; through the connection guard and TLS, whose attributes
        fall through to the transport below)."""
        super().requestDone(request)
        send = getattr(self.transport, "send_queued", None)
        if send is not None:
            send()

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        """The status line and headers as one buffer (twisted.web hands the transport a list
        of some fifty pieces, each checked and queued on its own)."""
        if not isinstance(headers, Headers):
            super().writeHeaders(version, code, reason, headers)
            return
        self.transport.write(head_bytes(version, code, reason, headers))  # type: ignore[union-attr]  # transport is set while the channel is connected

    def getHost(self) -> Any:
        """The local address, read once per connection (twisted.web asks on every request, and
        a Unix socket's costs a C{getsockname} call and an address object each time)."""
        host = self._host
        if host is None:
            host = self._host = super().getHost()
        return host

    def getPeer(self) -> Any:
        """The peer's address, read once per connection (as L{getHost})."""
        peer = self._peer
        if peer is None:
            peer = self._peer = super().getPeer()
        return peer

    def handshakeCompleted(self) -> None:
        """Tell the connection guard below (if any) that the TLS handshake is done."""
        done = getattr(self.transport, "handshake_done", None)
        if callable(done):
            done()
