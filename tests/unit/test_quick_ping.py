"""A request that is exactly one ping is answered from its raw bytes (pyd/api/root.py
`quick_ping`), byte for byte as the full twisted.web path answers it; anything else still takes
the full path."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import task
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from pyd.api import root
from pyd.api.root import ApiRoot, ApiSite, quick_ping

_DATE = re.compile(rb"Date: [^\r]*\r\n")

REQUESTS = [
    b"GET /_ping HTTP/1.1\r\nHost: docker\r\nUser-Agent: Docker-Client/28.2.2 (linux)\r\n\r\n",
    b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n",
    b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\nConnection: keep-alive\r\n\r\n",
    b"GET /v1.24/_ping HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\n\r\n",
]
# Requests the quick path must leave to the full path (and what the full path makes of them).
NOT_QUICK = [
    b"GET /_ping HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET /_ping HTTP/1.0\r\n\r\n",
    b"POST /_ping HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"GET /v1.99/_ping HTTP/1.1\r\n\r\n",
    b"GET /v1.12/_ping HTTP/1.1\r\n\r\n",
    b"GET /_ping?x=1 HTTP/1.1\r\n\r\n",
    b"get /_ping HTTP/1.1\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nBad Name: x\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\n folded\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nnocolon\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\nGET /_ping HTTP/1.1\r\n\r\n",
    b"GET /_ping HTTP/1.1\r\nHost: x\r\n",
]


class _Transport(StringTransport):
    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.disconnecting = True


class QuickPingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.seen: list[tuple[str, str, int]] = []

    def _site(self, quick: bool) -> ApiSite:
        site = ApiSite(
            ApiRoot([]),
            observers=[lambda p, m, c, _d: self.seen.append((p, m, c))],
            header_timeout=10.0,
            reactor=self.clock,
        )
        if not quick:
            site.quick_response = lambda _data: None  # type: ignore[method-assign]  # the full path only
        return site

    def _exchange(self, site: ApiSite, *chunks: bytes) -> tuple[bytes, _Transport]:
        ch: Any = site.buildProtocol(None)
        t = _Transport()
        ch.makeConnection(t)
        for c in chunks:
            ch.dataReceived(c)
        return _DATE.sub(b"Date: X\r\n", t.value()), t

    def test_same_bytes_as_the_full_path(self) -> None:
        """Each plain ping gets the full path's exact response (headers, order, body); both
        report the request to the observers the same way."""
        for req in REQUESTS:
            self.assertIsNotNone(quick_ping(req), req)
            self.seen.clear()
            quick, _ = self._exchange(self._site(True), req)
            seen_quick = list(self.seen)
            self.seen.clear()
            full, _ = self._exchange(self._site(False), req)
            self.assertEqual(quick, full, req)
            self.assertEqual(seen_quick, self.seen, req)
            self.assertEqual(seen_quick[0][2], 200)

    def test_anything_else_takes_the_full_path(self) -> None:
        """Close, HTTP/1.0, other methods, versions out of range, query strings, bodies,
        malformed headers, pipelined or partial requests: the quick path declines and the
        connection behaves as twisted.web makes it."""
        for req in NOT_QUICK:
            self.assertIsNone(quick_ping(req), req)
            quick, tq = self._exchange(self._site(True), req)
            full, tf = self._exchange(self._site(False), req)
            self.assertEqual(quick, full, req)
            self.assertEqual(tq.disconnecting, tf.disconnecting, req)

    def test_keep_alive_sequence_and_split_request(self) -> None:
        """Pings one after another on one connection, and a ping split in two chunks, each
        get their answer; the header deadline does not cut the idle connection afterwards."""
        site = self._site(True)
        out, t = self._exchange(
            site, REQUESTS[0], REQUESTS[1], b"GET /_ping HT", b"TP/1.1\r\n\r\n", REQUESTS[2]
        )
        self.assertEqual(out.count(b"HTTP/1.1 200 OK"), 4)
        self.clock.advance(60)
        self.assertFalse(t.aborted)

    def test_first_request_quick_then_idle(self) -> None:
        """A connection whose only request was answered quickly is not cut by the header
        deadline that its opening armed."""
        _, t = self._exchange(self._site(True), REQUESTS[0])
        self.clock.advance(60)
        self.assertFalse(t.aborted)

    def test_a_known_ping_is_answered_as_the_first_time(self) -> None:
        """A ping seen before is recognised by its exact bytes (the same answer, method and
        path); anything else is still parsed and declined, and the memory of pings is bounded."""
        for req in REQUESTS:
            self.assertEqual(quick_ping(req), quick_ping(req), req)
        for req in NOT_QUICK:
            self.assertIsNone(quick_ping(req), req)
        for i in range(1000):
            self.assertIsNotNone(quick_ping(b"GET /_ping HTTP/1.1\r\nX-N: %d\r\n\r\n" % i))
        self.assertLessEqual(len(root._known_pings), root._KNOWN_PINGS_MAX)
