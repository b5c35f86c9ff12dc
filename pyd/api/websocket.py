"""Attach over a websocket, C{GET /containers/{id}/attach/ws} (layer: api).

dockerd serves it with golang.org/x/net/websocket (moby api/server/router/container
container_routes.go wsContainersAttach): the handshake is RFC 6455's (version 13 only, no
Origin check), then each write of the container's output is one unmasked frame, binary from
API 1.28 on and text before, never stdcopy-multiplexed (stdout and stderr share the socket);
the payload of the client's data frames is the container's stdin. Before API 1.42 the
C{stdin}/C{stdout}/C{stderr} parameters are ignored and all three are attached. When the attach
ends the server sends a close frame (1000) and closes the socket, as Go's C{Conn.Close} does.

A handshake x/net/websocket refuses is answered with its status line and error text, raw on the
connection (Go writes them after hijacking it), after the container was found: a missing
container is the usual JSON 404.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from pyd.api.base import api_version
from pyd.api.hijack import HijackedStream
from pyd.api.wire import qbool

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL = (1000).to_bytes(2, "big")
# x/net/websocket's DefaultMaxPayloadBytes: a larger frame from the client ends the connection.
MAX_PAYLOAD = 32 << 20


class HandshakeRefused(Exception):
    """The request is not a websocket handshake x/net/websocket accepts: C{head} and C{text}
    are what it writes on the hijacked connection."""

    def __init__(self, head: bytes, text: str = "") -> None:
        super().__init__(text)
        self.head = head
        self.text = text


_BAD = b"HTTP/1.1 400 Bad Request\r\n"


def ws_streams(request: Any) -> tuple[bool, bool, bool]:
    """The streams a websocket attach joins (stdin, stdout, stderr): all three before API 1.42,
    whatever the query says (dockerd); the authorization check asks this too."""
    if api_version(request) < (1, 42):
        return True, True, True
    return qbool(request, "stdin"), qbool(request, "stdout"), qbool(request, "stderr")


def accept_head(request: Any) -> bytes:
    """The 101 answer to a websocket handshake, as x/net/websocket's C{AcceptHandshake}.

    @raise HandshakeRefused: what x/net/websocket's C{ReadHandshake} and C{AcceptHandshake}
        refuse (their texts).
    """

    def header(name: bytes) -> str:
        return (request.getHeader(name) or b"").decode("latin-1")

    if request.method != b"GET":
        raise HandshakeRefused(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n", "bad method")
    if header(b"upgrade").lower() != "websocket" or "upgrade" not in header(b"connection").lower():
        raise HandshakeRefused(_BAD + b"\r\n", "not websocket protocol")
    key = header(b"sec-websocket-key")
    if not key:
        raise HandshakeRefused(_BAD + b"\r\n", "mismatch challenge/response")
    if header(b"sec-websocket-version") != "13":
        raise HandshakeRefused(
            _BAD + b"Sec-WebSocket-Version: 13\r\n\r\n", "missing or bad WebSocket Version"
        )
    protocols = [p.strip() for p in header(b"sec-websocket-protocol").strip().split(",")]
    protocols = protocols if protocols != [""] else []
    if len(protocols) > 1:  # Go's server must pick one in a Handshake func; dockerd has none
        raise HandshakeRefused(_BAD + b"\r\n")
    accept = base64.b64encode(
        hashlib.sha1(key.encode("latin-1") + WS_GUID, usedforsecurity=False).digest()
    )
    head = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n"
    )
    if protocols:
        head += b"Sec-WebSocket-Protocol: " + protocols[0].encode("latin-1") + b"\r\n"
    return head + b"\r\n"


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame (a server's)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload


def _unmask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if not n:
        return data
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


class WebSocketStream(HijackedStream):
    """A hijacked connection speaking websocket frames: the client's data frames' payloads are
    the input, each output write is one frame of C{opcode}; pings are answered, a close frame
    is answered and ends the connection."""

    def __init__(self, opcode: int) -> None:
        super().__init__()
        self._opcode = opcode
        # bytearray: appending a large frame's chunks stays linear (bytes += would copy the
        # whole buffer at each chunk)
        self._buf = bytearray()
        self._closing = False

    def dataReceived(self, data: bytes) -> None:
        """Client frames: deliver the payload of data frames, answer control frames."""
        self._buf += data
        while not self._closing:
            parsed = self._next_frame()
            if parsed is None:
                return
            opcode, payload = parsed
            if opcode in (OP_CONT, OP_TEXT, OP_BINARY):
                if payload:
                    super().dataReceived(payload)
            elif opcode == OP_PING:
                self._send(frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self.close(payload[:2] or CLOSE_NORMAL)
            # pongs and unknown opcodes are dropped, as x/net/websocket drops them

    def _next_frame(self) -> tuple[int, bytes] | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        opcode, masked, n = buf[0] & 0x0F, buf[1] & 0x80, buf[1] & 0x7F
        pos = 2
        if n >= 126:
            size = 2 if n == 126 else 8
            if len(buf) < pos + size:
                return None
            n = int.from_bytes(buf[pos : pos + size], "big")
            pos += size
        if n > MAX_PAYLOAD:
            self._buf.clear()
            self.close()
            return None
        key = b""
        if masked:
            if len(buf) < pos + 4:
                return None
            key = bytes(buf[pos : pos + 4])
            pos += 4
        if len(buf) < pos + n:
            return None
        payload = bytes(buf[pos : pos + n])
        del buf[: pos + n]
        return opcode, _unmask(payload, key) if key else payload

    def _send(self, data: bytes) -> None:
        HijackedStream.write(self, data)

    def write(self, data: bytes) -> None:
        """One frame of output."""
        if data and not self._closing:
            self._send(frame(self._opcode, data))

    def write_sequence(self, parts: list[bytes]) -> None:
        """Output given in parts: one frame."""
        self.write(b"".join(parts))

    def close(self, status: bytes = CLOSE_NORMAL) -> None:
        """Send the close frame, then close the connection once it is flushed."""
        if not self._closing:
            self._closing = True
            self._send(frame(OP_CLOSE, status))
        super().close()
