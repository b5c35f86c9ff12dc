"""The only code that takes over an HTTP connection: attach and exec start (layer: api).

dockerd answers C{POST /containers/{id}/attach} and C{POST /exec/{id}/start} with a 101 and then
treats the socket as a raw byte pipe in both directions (cli-wire-map.md section 12). Twisted's
C{HTTPChannel} would otherwise keep parsing: it buffers whatever the client sends after the request
(stdin typed early) as if it were a pipelined request, pauses reading while a request is in flight,
and has an idle timeout. L{hijack} writes the byte-exact 101, takes the transport away from the
channel, retires the L{Request} without letting it write anything, hands the bytes the channel had
already buffered to a L{HijackedStream} and resumes reading.

L{HijackedStream} provides C{IHalfCloseableProtocol}: when the CLI half-closes (stdin reached EOF,
C{shutdown(SHUT_WR)}), only the input side ends; output keeps flowing until the stream is closed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pyd.api.streams import frame_header

log = Logger()

RAW_STREAM = b"application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = b"application/vnd.docker.multiplexed-stream"


def upgrade_head(content_type: bytes) -> bytes:
    """The 101 response dockerd writes before a hijacked stream, byte for byte."""
    return (
        b"HTTP/1.1 101 UPGRADED\r\nContent-Type: "
        + content_type
        + b"\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    )


def stream_content_type(tty: bool, api_version: tuple[int, int]) -> bytes:
    """Multiplexed framing is announced only without a TTY and from API 1.42 on (as dockerd)."""
    if not tty and api_version >= (1, 42):
        return MULTIPLEXED_STREAM
    return RAW_STREAM


def wants_upgrade(request: Any) -> bool:
    """Whether the client asked to take the connection over (C{Upgrade: tcp})."""
    upgrade = (request.getHeader(b"upgrade") or b"").lower()
    connection = (request.getHeader(b"connection") or b"").lower()
    return upgrade == b"tcp" or b"upgrade" in connection


@implementer(IHalfCloseableProtocol)
class HijackedStream(Protocol):
    """Both directions of a hijacked connection.

    Input from the client goes to the callbacks given to L{set_input}; until then it is kept.
    C{closed} fires once the connection is gone (either side closed it).
    """

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._input_eof = False
        self._on_data: Callable[[bytes], None] | None = None
        self._on_eof: Callable[[], None] | None = None
        self.closed: Deferred[None] = Deferred()
        self.connected_ = False

    # -- input ------------------------------------------------------------------------------
    def set_input(self, on_data: Callable[[bytes], None], on_eof: Callable[[], None]) -> None:
        """Route client input to C{on_data}; C{on_eof} is called once on half-close or close.

        Bytes received before this call (already buffered by the HTTP channel, or typed early)
        are delivered now, in order.
        """
        self._on_data = on_data
        self._on_eof = on_eof
        pending, self._pending = self._pending, []
        for chunk in pending:
            on_data(chunk)
        if self._input_eof:
            self._input_eof = False
            self._signal_eof()

    def dataReceived(self, data: bytes) -> None:
        """Client bytes (stdin)."""
        if self._on_data is None:
            self._pending.append(data)
        else:
            self._on_data(data)

    def readConnectionLost(self) -> None:
        """The client half-closed: its input ended, our output side stays open."""
        self._signal_eof()

    def writeConnectionLost(self) -> None:
        """We half-closed our side; nothing to do."""

    def _signal_eof(self) -> None:
        if self._on_eof is None:
            self._input_eof = True
            return
        cb, self._on_eof = self._on_eof, None
        self._on_data = _drop
        cb()

    # -- output -----------------------------------------------------------------------------
    @property
    def _t(self) -> Any:
        """The transport, untyped: TCP/Unix/TLS transports are producers and consumers too."""
        return self.transport

    def write(self, data: bytes) -> None:
        """Send bytes to the client (dropped once the connection is gone)."""
        if self.connected_ and self.transport is not None and data:
            self.transport.write(data)

    def write_sequence(self, parts: list[bytes]) -> None:
        """Send several byte strings without joining them first."""
        if self.connected_ and self.transport is not None:
            self.transport.writeSequence(parts)

    def close(self) -> None:
        """Flush what was written, then close the connection."""
        if self.connected_ and self.transport is not None:
            if getattr(self.transport, "producer", None) is not None:
                self._t.unregisterProducer()
            self.transport.loseConnection()

    def register_producer(self, producer: Any) -> None:
        """Let the client's socket pause C{producer} (a push producer) when it cannot keep up."""
        if self.connected_ and self.transport is not None:
            if getattr(self.transport, "producer", None) is not None:
                # the log replay's producer gives way to conmon's connection
                self._t.unregisterProducer()
            self._t.registerProducer(producer, True)

    def pause_input(self) -> None:
        """Stop reading from the client (back-pressure toward it)."""
        if self.connected_ and self.transport is not None:
            self._t.pauseProducing()

    def resume_input(self) -> None:
        """Read from the client again."""
        if self.connected_ and self.transport is not None:
            self._t.resumeProducing()

    # -- lifecycle --------------------------------------------------------------------------
    def connectionMade(self) -> None:
        """The transport is ours now."""
        self.connected_ = True

    def connectionLost(self, reason: Failure = Failure(Exception("lost"))) -> None:  # noqa: B008
        """Both directions are gone."""
        self.connected_ = False
        if self._on_eof is not None or self._on_data is None:
            self._signal_eof()
        if not self.closed.called:
            self.closed.callback(None)


def _drop(_: bytes) -> None:
    """Input after EOF is impossible on a real socket; ignore it if a fake delivers some."""


class _HalfCloseTLS:
    """Wraps a pyOpenSSL connection so the peer's close_notify is a half-close.

    Go's C{tls.Conn.CloseWrite} (the CLI at stdin's EOF) sends close_notify and keeps reading.
    Twisted's TLS layer answers a close_notify by shutting the whole connection down, which
    would lose the container's remaining output; here it becomes C{readConnectionLost} and the
    connection stays open for writing until the stream closes it (then our close_notify goes out).
    """

    def __init__(self, connection: Any, stream: HijackedStream) -> None:
        self._connection = connection
        self._stream = stream
        self._eof = False

    def recv(self, size: int) -> bytes:
        """Application data, or "want read" forever once the peer said close_notify."""
        from OpenSSL.SSL import WantReadError, ZeroReturnError

        if self._eof:
            raise WantReadError()
        try:
            data: bytes = self._connection.recv(size)
        except ZeroReturnError:
            self._eof = True
            self._stream.readConnectionLost()
            raise WantReadError() from None
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class _RetiredChannel:
    """Stands in for the HTTP channel of a hijacked request so that finishing it writes nothing."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def requestDone(self, request: Any) -> None:
        """The real channel must not go back to parsing requests on this connection."""

    def write(self, data: bytes) -> None:
        """Discarded."""

    def writeSequence(self, data: Any) -> None:
        """Discarded."""

    def writeHeaders(self, *args: Any) -> None:
        """Discarded."""

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Ignored."""

    def unregisterProducer(self) -> None:
        """Ignored."""

    def loseConnection(self) -> None:
        """Ignored: the stream owns the connection now."""


class FramedSink:
    """An output sink over a hijacked stream: stdcopy frames without a TTY, raw bytes with one."""

    def __init__(self, stream: HijackedStream, framed: bool) -> None:
        self._stream = stream
        self._framed = framed

    def output(self, stream: int, data: bytes) -> None:
        """One chunk of stdout (1) or stderr (2)."""
        if self._framed:
            self._stream.write_sequence([frame_header(stream, len(data)), data])
        else:
            self._stream.write(data)

    def end(self) -> None:
        """Close the connection once written data is flushed."""
        self._stream.close()

    def register_producer(self, producer: Any) -> None:
        """Back-pressure from the client to C{producer}."""
        self._stream.register_producer(producer)


def hijack(
    request: Any,
    content_type: bytes,
    stream: HijackedStream | None = None,
    head: bytes | None = None,
) -> HijackedStream:
    """Answer 101 on C{request}'s connection and give the connection to C{stream}.

    C{head}, when given, is written instead of dockerd's raw-stream answer (a websocket's 101).

    The request must have been fully read (twisted.web buffers the body before rendering), and
    nothing may have been written for it yet. After this call the request counts as finished
    (code 101 in the access log) and writes to it are errors.

    @return: the stream now owning the connection.
    """
    stream = stream if stream is not None else HijackedStream()
    channel = request.channel
    transport: Any = channel.transport
    if head is not None:
        transport.write(head)
    elif wants_upgrade(request):
        transport.write(upgrade_head(content_type))
    else:
        # dockerd without an Upgrade header: a plain 200 head, then the raw stream.
        transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\n\r\n")

    # Whatever the client sent after the request (early stdin) sits in the channel's buffer.
    buffered = b"".join(getattr(channel, "_dataBuffer", []))
    channel._dataBuffer = []
    handed_over = getattr(channel, "handed_over", None)  # ApiChannel: its timers too
    if handed_over is not None:
        handed_over()
    else:
        channel.setTimeout(None)
    # The channel registered itself as the transport's producer; it no longer produces anything.
    registered = getattr(channel, "_networkProducer", None) is transport
    if registered:
        transport.unregisterProducer()
    if hasattr(transport, "wrappedProtocol"):  # TLS (TLSMemoryBIOProtocol) or another wrapper
        transport.wrappedProtocol = stream
        tls_connection = getattr(transport, "_tlsConnection", None)
        if tls_connection is not None:
            transport._tlsConnection = _HalfCloseTLS(tls_connection, stream)
    else:
        transport.protocol = stream
    stream.makeConnection(transport)

    # Retire the request: it "finishes" with no bytes written, so nothing (Klein included)
    # writes headers or a body into the raw stream later.
    request.setResponseCode(101)
    request.startedWriting = 1
    request.chunked = 0
    request.channel = _RetiredChannel(getattr(channel, "factory", None))
    request.finish()

    transport.resumeProducing()
    if buffered:
        stream.dataReceived(buffered)
    return stream
