"""Request bodies (pyd.api.root.ApiRequest): a large or chunked body is spooled to an unlinked
regular file in large writes (the docker cp helper reads that file in place); a small one stays
in memory, as twisted.web keeps it."""

from __future__ import annotations

import fcntl
import os
import stat
from typing import Any

from twisted.internet import task
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import server
from twisted.web.resource import Resource

from pyd.api.bodystream import BATCH, StreamedBody
from pyd.api.root import BODY_WRITE_BUFFER, ApiSite
from pyd.engine.archive import PIPE_SIZE


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


class _Early(Resource):
    """Records when it is rendered (before or after the body) and answers at once."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bytes, bool]] = []

    def render(self, request: Any) -> bytes:
        self.seen.append((request.path, isinstance(request.content, StreamedBody)))
        request.setResponseCode(403)
        return b"refused"


class StreamedBodyRequestTests(SynchronousTestCase):
    """C{PUT archive}: processed once its headers are in; its answer ends after the body."""

    def _channel(self, leaf: Resource) -> tuple[Any, StringTransport]:
        site = ApiSite(leaf, reactor=task.Clock())
        ch: Any = site.buildProtocol(None)
        transport = StringTransport()
        ch.makeConnection(transport)
        return ch, transport

    def test_processed_before_the_body_and_answered_after_it(self) -> None:
        """The resource (the route and the guard) decides on the headers alone; an early
        answer is finished only once the rest of the body has been read and discarded, and the
        connection then serves its next request."""
        leaf = _Early()
        ch, transport = self._channel(leaf)
        ch.dataReceived(
            b"PUT /v1.41/containers/c1/archive?path=/tmp HTTP/1.1\r\nHost: d\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        self.assertEqual(leaf.seen, [(b"/v1.41/containers/c1/archive", True)])
        piece = os.urandom(64 << 10)
        for _ in range(40):  # 2.5 MB: more than is ever kept
            ch.dataReceived(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.assertEqual(transport.producerState, "producing")  # discarded, never paused
        self.assertEqual(len(ch.requests), 1)  # not finished before the body's end
        ch.dataReceived(b"0\r\n\r\n")
        self.assertIn(b"403", transport.value().split(b"\r\n", 1)[0])
        self.assertEqual(ch.requests, [])
        ch.dataReceived(
            b"PUT /containers/c2/archive HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\n\r\nabc"
        )
        self.assertEqual(leaf.seen[-1], (b"/containers/c2/archive", True))
        self.assertEqual(transport.value().count(b"HTTP/1.1 403"), 2)

    def test_other_puts_are_gathered_first(self) -> None:
        leaf = _Early()
        ch, _ = self._channel(leaf)
        ch.dataReceived(
            b"PUT /containers/c1/archivex HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\n\r\n"
        )
        self.assertEqual(leaf.seen, [])
        ch.dataReceived(b"abc")
        self.assertEqual(leaf.seen, [(b"/containers/c1/archivex", False)])

    def test_a_client_gone_mid_body_fails_the_feed(self) -> None:
        bodies: list[Any] = []

        class _Feeder(Resource):
            isLeaf = True

            def render(self, request: Any) -> Any:
                bodies.append(request.content)
                return server.NOT_DONE_YET

        ch, _ = self._channel(_Feeder())
        ch.dataReceived(
            b"PUT /containers/c1/archive?path=/ HTTP/1.1\r\nHost: d\r\n"
            b"Content-Length: %d\r\n\r\n" % (2 * BATCH)
        )
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)  # a batch fits (the daemon's size)
        fed = bodies[0].feed(w)
        ch.dataReceived(b"x" * BATCH)
        ch.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(fed, ConnectionLost)
        got = b""
        while True:
            data = os.read(r, 1 << 20)
            if not data:
                break  # the reader sees the early end
            got += data
        self.assertEqual(got, b"x" * BATCH)
