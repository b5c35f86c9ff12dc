"""The websocket attach's handshake and frames (pyd.api.websocket), as x/net/websocket does
them in dockerd."""

from __future__ import annotations

import base64
import hashlib
import os
import unittest
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from pyd.api.websocket import (
    OP_BINARY,
    HandshakeRefused,
    WebSocketStream,
    accept_head,
    frame,
    ws_streams,
)


def _request(method: bytes = b"GET", **headers: str) -> Any:
    req = DummyRequest([b""])
    req.method = method
    base = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    for k, v in {**base, **headers}.items():
        if v:
            req.requestHeaders.setRawHeaders(k.encode(), [v.encode()])
    return req


def _client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked frame, as a client sends it."""
    key = os.urandom(4)
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((b0, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, 0x80 | 127)) + n.to_bytes(8, "big")
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


class HandshakeTests(unittest.TestCase):
    def test_accept(self) -> None:
        """RFC 6455's example key gives its example accept; one subprotocol is echoed."""
        head = accept_head(_request())
        self.assertEqual(
            head,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        )
        head = accept_head(_request(**{"Sec-WebSocket-Protocol": " chat "}))
        self.assertIn(b"\r\nSec-WebSocket-Protocol: chat\r\n", head)
        key = "x" * 24
        want = base64.b64encode(
            hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode(), usedforsecurity=False
            ).digest()
        )
        self.assertIn(want, accept_head(_request(**{"Sec-WebSocket-Key": key})))

    def test_refusals(self) -> None:
        """x/net/websocket's refusals: their status lines and texts."""
        cases = [
            (_request(method=b"POST"), b"HTTP/1.1 405 Method Not Allowed\r\n\r\n", "bad method"),
            (_request(Upgrade="tcp"), b"HTTP/1.1 400 Bad Request\r\n\r\n", "not websocket protocol"),
            (_request(Connection="keep-alive"), b"HTTP/1.1 400 Bad Request\r\n\r\n", "not websocket protocol"),
            (_request(**{"Sec-WebSocket-Key": ""}), b"HTTP/1.1 400 Bad Request\r\n\r\n", "mismatch challenge/response"),
            (
                _request(**{"Sec-WebSocket-Version": "8"}),
                b"HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Version: 13\r\n\r\n",
                "missing or bad WebSocket Version",
            ),
            (_request(**{"Sec-WebSocket-Protocol": "a, b"}), b"HTTP/1.1 400 Bad Request\r\n\r\n", ""),
        ]  # fmt: skip
        for req, head, text in cases:
            with self.assertRaises(HandshakeRefused) as cm:
                accept_head(req)
            self.assertEqual((cm.exception.head, cm.exception.text), (head, text))

    def test_streams_by_version(self) -> None:
        """Before API 1.42 all three streams are attached whatever the query asks (dockerd)."""
        req = _request()
        req.args = {b"stdout": [b"1"]}
        req.pyd_api_version = (1, 41)
        self.assertEqual(ws_streams(req), (True, True, True))
        req.pyd_api_version = (1, 42)
        self.assertEqual(ws_streams(req), (False, True, False))


class FrameTests(unittest.TestCase):
    def setUp(self) -> None:
        self.got: list[bytes] = []
        self.eof: list[bool] = []
        self.stream = WebSocketStream(OP_BINARY)
        self.transport = StringTransport()
        self.stream.makeConnection(self.transport)
        self.stream.set_input(self.got.append, lambda: self.eof.append(True))

    def test_output_frames(self) -> None:
        """Each write is one unmasked final frame, with the 7-bit, 16-bit and 64-bit lengths."""
        for n in (5, 300, 70000):
            self.transport.clear()
            self.stream.write(b"a" * n)
            self.assertEqual(self.transport.value(), frame(OP_BINARY, b"a" * n))
        self.assertEqual(frame(OP_BINARY, b"hi"), b"\x82\x02hi")
        self.assertEqual(frame(OP_BINARY, b"a" * 300)[:4], b"\x82\x7e\x01\x2c")
        self.assertEqual(
            frame(OP_BINARY, b"a" * 70000)[:10], b"\x82\x7f" + (70000).to_bytes(8, "big")
        )

    def test_input_masked_split_and_fragmented(self) -> None:
        """Masked frames delivered a byte at a time, a fragmented message and a 16-bit length
        arrive as their payloads, in order."""
        data = _client_frame(0x2, b"hello\n") + _client_frame(0x1, b"par", fin=False)
        data += _client_frame(0x0, b"ts\n") + _client_frame(0x2, b"x" * 1000)
        for i in range(len(data)):
            self.stream.dataReceived(data[i : i + 1])
        self.assertEqual(b"".join(self.got), b"hello\nparts\n" + b"x" * 1000)
        self.assertEqual(self.transport.value(), b"")

    def test_ping_and_close(self) -> None:
        """A ping is answered with a pong of its payload; a close frame is answered with one of
        the same status, the connection closes and the input ends."""
        self.stream.dataReceived(_client_frame(0x9, b"p1") + _client_frame(0xA, b"ignored"))
        self.assertEqual(self.transport.value(), b"\x8a\x02p1")
        self.transport.clear()
        self.stream.dataReceived(_client_frame(0x8, b"\x03\xe9bye") + _client_frame(0x2, b"late"))
        self.assertEqual(self.transport.value(), b"\x88\x02\x03\xe9")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.got, [])
        # the transport closing (what StringTransport never delivers by itself) ends the input
        self.assertEqual(self.eof, [])
        self.stream.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.eof, [True])

    def test_close_sends_normal_close_once(self) -> None:
        """The attach ending sends a 1000 close frame, once, and nothing after it."""
        self.stream.close()
        self.stream.close()
        self.stream.write(b"after")
        self.assertEqual(self.transport.value(), b"\x88\x02\x03\xe8")
        self.assertTrue(self.transport.disconnecting)

    def test_oversized_frame_closes(self) -> None:
        """A frame over x/net/websocket's 32 MiB payload limit ends the connection."""
        self.stream.dataReceived(b"\x82\xff" + (33 << 20).to_bytes(8, "big") + b"kkkk")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.got, [])
