"""Request bodies (pyd.api.root.ApiRequest): a large or chunked body is spooled to an unlinked
regular file in large writes (the docker cp helper reads that file in place); a small one stays
in memory, as twisted.web keeps it."""

from __future__ import annotations

import os
import stat
from typing import Any

from twisted.internet import task
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pyd.api.root import BODY_WRITE_BUFFER, ApiSite


class _Leaf(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[tuple[bytes, bool]] = []

    def render(self, request: Any) -> bytes:
        content = request.content
        try:
            regular = stat.S_ISREG(os.fstat(content.fileno()).st_mode)
        except (AttributeError, OSError, ValueError):
            regular = False
        self.bodies.append((content.read(), regular))
        return b""


class RequestBodyTests(SynchronousTestCase):
    def _channel(self) -> tuple[Any, _Leaf]:
        leaf = _Leaf()
        site = ApiSite(leaf, reactor=task.Clock())
        ch: Any = site.buildProtocol(None)
        ch.makeConnection(StringTransport())
        return ch, leaf

    def test_chunked_body_goes_to_a_file_in_large_writes(self) -> None:
        """32 KiB chunks, as the CLI sends them: the file holds nothing until the buffer
        fills; the resource reads the whole body from a regular file."""
        ch, leaf = self._channel()
        ch.dataReceived(b"PUT /x HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = os.urandom(32 << 10)
        ch.dataReceived(b"%x\r\n%s\r\n" % (len(piece), piece))
        content = ch.requests[0].content
        self.assertEqual(os.fstat(content.fileno()).st_size, 0)  # still in the buffer
        body = piece
        while len(body) < BODY_WRITE_BUFFER + (100 << 10):
            ch.dataReceived(b"%x\r\n%s\r\n" % (len(piece), piece))
            body += piece
        ch.dataReceived(b"0\r\n\r\n")
        self.assertEqual(leaf.bodies, [(body, True)])

    def test_small_body_stays_in_memory(self) -> None:
        ch, leaf = self._channel()
        ch.dataReceived(b"POST /x HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\n\r\nhello")
        self.assertEqual(leaf.bodies, [(b"hello", False)])
