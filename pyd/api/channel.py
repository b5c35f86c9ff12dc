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
from zope.interface import implementer

log = Logger()


@implementer(IHandshakeListener)
class ApiChannel(HTTPChannel):
    """An HTTP channel whose request headers have a deadline."""

    _header_deadline: Any = None

    def _header_timeout(self) -> float:
        return float(getattr(self.factory, "header_timeout", 0) or 0)

    def _arm(self) -> None:
        timeout = self._header_timeout()
        if timeout and self._header_deadline is None:
            self._header_deadline = self.callLater(timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            if self._header_deadline.active():
                self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        transport: Any = self.transport
        log.debug("client too slow sending request headers: {peer}", peer=transport.getPeer())
        transport.abortConnection()

    def connectionMade(self) -> None:
        """Start the first request's header deadline."""
        super().connectionMade()
        self._arm()

    def dataReceived(self, data: bytes) -> None:
        """The first byte of a new request starts its header deadline."""
        if self.line_mode and not self._handlingRequest:
            self._arm()
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        """Headers complete in time."""
        self._disarm()
        super().allHeadersReceived()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """No deadline outlives the connection."""
        self._disarm()
        super().connectionLost(reason)

    def handshakeCompleted(self) -> None:
        """Tell the connection guard below (if any) that the TLS handshake is done."""
        done = getattr(self.transport, "handshake_done", None)
        if callable(done):
            done()
