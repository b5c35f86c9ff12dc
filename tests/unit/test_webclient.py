"""The registry clients' HTTP client (pyd/drivers/registry/webclient.py) against a twisted.web
server on loopback: what it sends (method, headers, Basic credentials, bodies, encoded URLs),
redirects, gzip answers, the deadline for an answer's head, and reading a body whole or
streamed."""

from __future__ import annotations

import base64
import gzip
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import TimeoutError
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone, ResponseFailed
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from pyd.drivers.registry.webclient import WebClient


class _Server(Resource):
    """Answers by path; remembers each request it saw."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []
        self.held: list[Any] = []

    def render(self, request: Any) -> Any:
        self.seen.append(
            {
                "method": request.method,
                "uri": request.uri,
                "auth": request.getHeader(b"authorization"),
                "accept-encoding": request.getHeader(b"accept-encoding"),
                "x-test": request.requestHeaders.getRawHeaders(b"x-test"),
                "length": request.getHeader(b"content-length"),
                "body": request.content.read(),
            }
        )
        path = request.path
        if path == b"/redirect":
            request.redirect(b"/plain")
            return b""
        if path == b"/gzip":
            request.setHeader(b"content-encoding", b"gzip")
            return gzip.compress(b"unzipped body")
        if path == b"/hold":
            self.held.append(request)
            return NOT_DONE_YET
        if path == b"/cut":
            request.setHeader(b"content-length", b"100")
            request.write(b"short")
            request.channel.transport.loseConnection()
            return NOT_DONE_YET
        if path == b"/big":
            return b"x" * 300_000
        request.setHeader(b"x-answer", b"yes")
        return b"plain body"


class WebClientTests(TestCase):
    def setUp(self) -> None:
        from twisted.internet import reactor

        self.server = _Server()
        self.port = reactor.listenTCP(0, Site(self.server), interface="127.0.0.1")
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = WebClient(Agent(reactor, pool=self.pool), reactor)
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"

    @inlineCallbacks
    def tearDown(self) -> Any:

        for request in self.server.held:
            if not request.finished and not request._disconnected:
                request.finish()
        yield self.pool.closeCachedConnections()
        yield self.port.stopListening()

    @inlineCallbacks
    def test_request_sent_and_answer(self) -> Any:
        """Method, headers (as a dict of lists), Basic credentials and a bytes body go out as
        given, with its length; the answer's status, phrase and headers come back."""
        resp = yield self.client.request(
            "put",
            self.base + "/plain",
            headers={"X-Test": ["one"]},
            data=b"payload",
            auth=("user", "pa:ss"),
        )
        self.assertEqual((resp.code, resp.phrase), (200, b"OK"))
        self.assertEqual(resp.headers.getRawHeaders(b"x-answer"), [b"yes"])
        self.assertEqual((yield resp.content()), b"plain body")
        seen = self.server.seen[0]
        self.assertEqual(seen["method"], b"PUT")
        self.assertEqual(seen["x-test"], [b"one"])
        self.assertEqual(seen["auth"], b"Basic " + base64.b64encode(b"user:pa:ss"))
        self.assertEqual((seen["length"], seen["body"]), (b"7", b"payload"))
        self.assertEqual(seen["accept-encoding"], b"gzip")

    def test_bodies_handed_to_the_agent(self) -> None:
        """An empty bytes body is no body producer at all (treq's rule; on the wire Twisted
        sends `Content-Length: 0` either way, so the agent's argument is what can tell);
        bytes become a producer of their length; a producer is passed as it is."""
        from twisted.internet import reactor
        from twisted.internet.defer import Deferred as D

        seen: list[Any] = []

        class Recording:
            def request(self, method: bytes, uri: bytes, headers: Any, producer: Any) -> Any:
                seen.append(producer)
                return D()  # never answers: only the request matters here

        client = WebClient(Recording(), reactor)  # type: ignore[arg-type]  # a duck-typed IAgent
        mine = object()
        client.post("http://x/", data=b"")
        client.post("http://x/", data=b"payload")
        client.post("http://x/", data=mine)  # type: ignore[arg-type]  # any producer
        self.assertIsNone(seen[0])
        self.assertEqual(seen[1].length, 7)
        self.assertIs(seen[2], mine)

    @inlineCallbacks
    def test_redirects(self) -> Any:
        """A redirect is followed by default and left to the caller when asked."""
        resp = yield self.client.get(self.base + "/redirect")
        self.assertEqual((resp.code, (yield resp.content())), (200, b"plain body"))
        self.assertEqual([s["uri"] for s in self.server.seen], [b"/redirect", b"/plain"])
        resp = yield self.client.get(self.base + "/redirect", allow_redirects=False)
        self.assertEqual(resp.code, 302)
        self.assertEqual(resp.headers.getRawHeaders(b"location"), [b"/plain"])
        yield resp.content()

    @inlineCallbacks
    def test_gzip_decoded(self) -> Any:
        """A gzip-encoded answer is decoded."""
        resp = yield self.client.get(self.base + "/gzip")
        self.assertEqual((yield resp.content()), b"unzipped body")

    @inlineCallbacks
    def test_url_percent_encoded(self) -> Any:
        """Characters a URL may not carry are percent-encoded; '%' escapes already there stay."""
        resp = yield self.client.get(self.base + "/plain?realm=a b&x=é&y=%2F")
        yield resp.content()
        self.assertEqual(self.server.seen[0]["uri"], b"/plain?realm=a%20b&x=%C3%A9&y=%2F")

    @inlineCallbacks
    def test_content_read_once(self) -> Any:
        """content() reads the body once: a second call, before or after it arrived, gets the
        same bytes."""
        resp = yield self.client.get(self.base + "/big")
        first, second = resp.content(), resp.content()
        self.assertEqual(len((yield first)), 300_000)
        self.assertEqual((yield second), b"x" * 300_000)
        self.assertEqual((yield resp.content()), b"x" * 300_000)

    @inlineCallbacks
    def test_streamed(self) -> Any:
        """deliverBody streams the body to a protocol, which sees it end cleanly."""
        resp = yield self.client.get(self.base + "/big")
        done: Deferred[tuple[int, Failure]] = Deferred()

        class Count(Protocol):
            n = 0

            def dataReceived(self, data: bytes) -> None:
                self.n += len(data)

            def connectionLost(self, reason: Any = None) -> None:
                done.callback((self.n, reason))

        resp.deliverBody(Count())
        n, reason = yield done
        self.assertEqual(n, 300_000)
        self.assertTrue(reason.check(ResponseDone))

    @inlineCallbacks
    def test_timeout_is_a_timeout_error(self) -> Any:
        """No answer's head within the deadline: the request fails with TimeoutError (which
        the registry client reports as a transport failure), not a bare cancellation."""
        d = self.client.get(self.base + "/hold", timeout=0.2)
        yield self.assertFailure(d, TimeoutError)

    @inlineCallbacks
    def test_body_failure_reaches_every_reader(self) -> Any:
        """A body cut short fails content() for each of its callers, before and after."""
        resp = yield self.client.get(self.base + "/cut")
        first, second = resp.content(), resp.content()
        yield self.assertFailure(first, ResponseFailed)
        yield self.assertFailure(second, ResponseFailed)
        yield self.assertFailure(resp.content(), ResponseFailed)
