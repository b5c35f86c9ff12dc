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
        self.args: list[dict[bytes, list[bytes]]] = []

    def render(self, request: Any) -> bytes:
        self.args.append(dict(request.args))
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


class FormBodyTests(SynchronousTestCase):
    """A POST body is parsed into C{args} only when its Content-Type is a form (as twisted.web
    and dockerd's ParseForm do); any other type is not parsed, nor given to the email package
    to be recognised."""

    def setUp(self) -> None:
        from twisted.web import http

        self.parsed: list[bytes] = []
        real = http._parseContentType

        def spy(line: bytes) -> bytes:
            self.parsed.append(line)
            return real(line)

        self.patch(http, "_parseContentType", spy)
        self.leaf = _Leaf()
        self.ch: Any = ApiSite(self.leaf, reactor=task.Clock()).buildProtocol(None)
        self.ch.makeConnection(StringTransport())

    def post(self, ctype: bytes, body: bytes) -> dict[bytes, list[bytes]]:
        self.ch.dataReceived(
            b"POST /x?a=1 HTTP/1.1\r\nHost: d\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (ctype, len(body), body)
        )
        return self.leaf.args[-1]

    def test_json_body_is_not_parsed(self) -> None:
        self.assertEqual(self.post(b"application/json", b'{"b":"2"}'), {b"a": [b"1"]})
        self.assertEqual(self.post(b"application/x-tar", b"b=2"), {b"a": [b"1"]})
        self.assertEqual(self.parsed, [])
        self.assertEqual(self.leaf.bodies[0][0], b'{"b":"2"}')

    def test_form_body_is_parsed_as_before(self) -> None:
        self.assertEqual(
            self.post(b"Application/X-WWW-Form-Urlencoded; charset=utf-8", b"b=2&a=3"),
            {b"a": [b"3"], b"b": [b"2"]},
        )
        self.assertEqual(self.parsed, [b"Application/X-WWW-Form-Urlencoded; charset=utf-8"])
        self.assertEqual(self.leaf.bodies[0][0], b"b=2&a=3")
