"""The direct door (pyd/daemon/direct.py): the Unix port answers a first read that is one whole
lean request on the bare socket, with no Twisted transport, guard wrapper or channel; anything
else gets its transport with the read handed over. Real Unix sockets, the real port, guard,
site and root, a memory reactor with the poll-like read dispatch."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionAborted
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.base import lean, make_app, role
from pyd.api.root import ApiRoot, ApiSite
from pyd.api.wire import json_body
from pyd.daemon.eager import UnixEndpoint, UnixPort
from pyd.daemon.guard import ConnectionGuard, GuardState
from tests.helpers.daemon import parse_answer

BIG = 4 << 20  # over a Unix socket's send buffer: the kernel takes part of it at first


class _Router:
    prefixes: tuple[str, ...] = ("t",)
    app = make_app()

    def __init__(self) -> None:
        self.pending: list[Deferred[None]] = []

    def resource(self) -> Any:
        return self.app.resource()

    @app.route("/t/<string:ref>", methods=["GET", "HEAD"])
    @role("viewer")
    @lean
    def get(self, request: Any, ref: str) -> bytes:
        return json_body(request, {"Ref": ref})

    @app.route("/t/big/<int:n>", methods=["GET"])
    @role("viewer")
    @lean
    def big(self, request: Any, n: int) -> bytes:
        request.setHeader(b"Content-Type", b"application/octet-stream")
        return b"x" * n

    @app.route("/t/<string:ref>/slow", methods=["GET"])
    @role("viewer")
    @lean
    async def slow(self, request: Any, ref: str) -> bytes:
        d: Deferred[None] = Deferred()
        self.pending.append(d)
        await d
        return json_body(request, {"Slow": ref})

    @app.route("/t/<string:ref>/plain", methods=["GET"])
    @role("viewer")
    def plain(self, request: Any, ref: str) -> bytes:
        """Not marked lean: the full path serves it."""
        return json_body(request, {"Plain": ref})


class _Reactor(MemoryReactorClock):
    """A memory reactor with the poll-like reactors' read dispatch (what the port uses to read
    the connections it made in the accepting turn)."""

    _POLL_IN = 1

    @property
    def _reads(self) -> set[int]:
        return {r.fileno() for r in self.readers}

    def _doReadOrWrite(self, selectable: Any, fd: int, event: int) -> None:
        why = selectable.doRead()
        if why is not None:
            selectable.connectionLost(Failure(why))


def req(path: str, close: bool = True, method: str = "GET") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: api.moby.localhost\r\n"
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode()


class DirectDoorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = _Reactor()
        self.reactor.advance(1_800_000_000)
        self.router = _Router()
        self.seen: list[tuple[str, str, int]] = []
        self.state = GuardState(0, 0, 5.0, self.reactor.callLater)
        self.site = ApiSite(
            ApiRoot([self.router]),
            observers=[lambda p, m, c, _d: self.seen.append((p, m, c))],
            header_timeout=10.0,
            reactor=self.reactor,
        )
        self.lean_calls = 0
        serve = self.site.lean_request

        def spy(channel: Any, data: bytes) -> bool:
            self.lean_calls += 1
            return serve(channel, data)

        self.site.lean_request = spy  # type: ignore[method-assign]  # counts the channel's tries
        tmp = tempfile.mkdtemp(prefix="pyd-direct-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "s.sock")
        self.path = path
        self.port: UnixPort = self.successResultOf(
            UnixEndpoint(self.reactor, path).listen(ConnectionGuard(self.site, self.state))
        )
        self.addCleanup(self._stop)

    def _stop(self) -> None:
        for r in list(self.reactor.readers) + list(self.reactor.writers):
            if r is not self.port:
                r.connectionLost(Failure(ConnectionAborted()))
        self.port.stopListening()
        self.reactor.advance(0)

    def _client(self) -> socket.socket:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(5)
        self.addCleanup(c.close)
        c.connect(self.path)
        return c

    def _pump(self) -> None:
        """What the reactor would do, a few turns: write every connection waiting to write,
        read every one with something to read."""
        for _ in range(100):
            if not self.reactor.writers and not self._read_once():
                return
            for w in list(self.reactor.writers):
                why = w.doWrite()
                if why is not None:
                    w.connectionLost(Failure(why))

    def _read_once(self) -> bool:
        """Read each connection once; whether one ended."""
        ended = False
        for r in list(self.reactor.readers):
            if r is not self.port:
                why = r.doRead()
                if why is not None:
                    ended = True
                    r.connectionLost(Failure(why))
        return ended

    def _read_to_end(self, c: socket.socket) -> bytes:
        got = b""
        c.setblocking(False)
        for _ in range(100_000):
            try:
                chunk = c.recv(1 << 20)
            except BlockingIOError:
                self._pump()
                continue
            if not chunk:
                return got
            got += chunk
        self.fail("the answer never ended")

    def _converse(self, chunks: list[bytes], direct: bool) -> bytes:
        """Send C{chunks} on one connection (the first right after connecting, as a client
        does), each after the answers to the one before; everything read until the end."""
        self.port.direct_on = direct
        c = self._client()
        c.sendall(chunks[0])
        self.port.doRead()
        for chunk in chunks[1:]:
            self._pump()
            c.sendall(chunk)
            self._pump()
        c.shutdown(socket.SHUT_WR)
        self._pump()
        out = self._read_to_end(c)
        return re.sub(rb"Date: [^\r]*\r\n", b"Date: X\r\n", out)

    def test_close_request_takes_no_transport(self) -> None:
        """A C{Connection: close} lean request is answered and the socket closed inside the
        port's read: no transport, nothing counted afterwards."""
        c = self._client()
        c.sendall(req("/v1.41/t/a"))
        self.port.doRead()
        self.assertEqual(self.port.sessionno, 0)  # no Twisted transport was made
        self.assertEqual(self.reactor.readers, {self.port})
        out = c.recv(65536)
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK\r\n"), out)
        self.assertTrue(out.endswith(b'{"Ref":"a"}\n'), out)
        self.assertIn(b"Connection: close\r\n", out)
        self.assertEqual(c.recv(10), b"")
        self.assertEqual(self.state.by_peer, {})
        self.assertEqual(self.seen, [("/v1.41/t/a", "GET", 200)])
        self.assertEqual(self.lean_calls, 0)

    def test_same_bytes_as_the_transport_path(self) -> None:
        """Each conversation gets the same bytes with the door and without it."""
        conversations = [
            [req("/v1.41/t/a")],
            [req("/t/a", method="HEAD")],
            [req("/v1.41/t/a", close=False), req("/v1.41/t/b")],
            [req("/v1.41/t/a", close=False), req("/v1.41/t/b/plain", close=False), req("/t/c")],
            [req("/v1.41/t/a/plain")],
            [req("/_ping", close=False), req("/v1.41/t/a")],
            [req("/_ping")],
            [req("/v1.99/t/a")],
            [req("/v1.41/nothing")],
            [req("/v1.41/t/a", close=False) + req("/v1.41/t/b")],  # pipelined
            [b"GET /v1.41/t/a HTTP/1.1\r\nHo", b"st: x\r\nConnection: close\r\n\r\n"],  # split
            [b"GET /v1.41/t/a HTTP/1.0\r\n\r\n"],
            [b"garbage\r\n\r\n"],
        ]
        for chunks in conversations:
            with_door = self._converse(chunks, True)
            without = self._converse(chunks, False)
            self.assertEqual(with_door, without, chunks)
            self.assertTrue(with_door.startswith(b"HTTP/1."), (chunks, with_door))
        self.assertEqual(self.state.by_peer, {})

    def test_keep_alive_waits_without_a_transport(self) -> None:
        """The CLI's shape: C{HEAD /_ping} kept alive, then its request, then the close. Both
        are answered on the bare socket; no transport is ever made; the connection is counted
        against its peer while it waits, and no longer once closed."""
        c = self._client()
        c.sendall(req("/_ping", close=False, method="HEAD"))
        self.port.doRead()
        self.assertTrue(c.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertEqual(len(self.reactor.readers), 2)  # the port and the waiting connection
        self.assertEqual(sum(self.state.by_peer.values()), 1)
        c.sendall(req("/v1.41/t/a", close=False))
        self._pump()
        self.assertTrue(c.recv(65536).endswith(b'{"Ref":"a"}\n'))
        c.close()
        self._pump()
        self.assertEqual(self.port.sessionno, 0)
        self.assertEqual(self.reactor.readers, {self.port})
        self.assertEqual(self.state.by_peer, {})
        site = self._site_timers()
        self.assertEqual([t for t in self.reactor.getDelayedCalls() if t not in site], [])
        self.assertEqual(
            [(p, c_) for p, _m, c_ in self.seen], [("/_ping", 200), ("/v1.41/t/a", 200)]
        )

    def _site_timers(self) -> list[Any]:
        return [
            call
            for call in self.reactor.getDelayedCalls()
            if getattr(call.func, "__self__", None) is self.site  # its log clock
        ]

    def test_keep_alive_is_handed_to_a_transport_when_the_door_declines(self) -> None:
        """A kept-alive connection's next request that the door does not take (a route not
        marked lean) gets its transport then, which serves it from the read already made."""
        c = self._client()
        c.sendall(req("/v1.41/t/a", close=False))
        self.port.doRead()
        self.assertEqual(self.port.sessionno, 0)
        first = c.recv(65536)
        self.assertTrue(first.endswith(b'{"Ref":"a"}\n'), first)
        c.sendall(req("/v1.41/t/b/plain"))
        self._pump()
        self.assertEqual(self.port.sessionno, 1)
        self.assertTrue(self._read_to_end(c).endswith(b'{"Plain":"b"}\n'))
        self.assertEqual(self.state.by_peer, {})

    def test_waiting_connection_closed_after_the_idle_timeout(self) -> None:
        """A kept-alive connection left idle is closed after the site's idle timeout, as its
        channel would close it, and stops counting against its peer."""
        c = self._client()
        c.sendall(req("/v1.41/t/a", close=False))
        self.port.doRead()
        self.assertTrue(c.recv(65536).endswith(b'{"Ref":"a"}\n'))
        self.reactor.advance(self.port.idle_timeout() - 1)
        self.assertEqual(len(self.reactor.readers), 2)
        self.reactor.advance(2)
        self.assertEqual(self.reactor.readers, {self.port})
        self.assertEqual(c.recv(10), b"")
        self.assertEqual(self.state.by_peer, {})

    def test_waiting_connection_counts_against_the_peer_cap(self) -> None:
        """A peer at its cap with a kept-alive connection waiting: its next connection is
        refused, as when that connection has its transport."""
        self.state.per_peer = 1
        idle = self._client()
        idle.sendall(req("/v1.41/t/a", close=False))
        self.port.doRead()
        self.assertTrue(idle.recv(65536).endswith(b'{"Ref":"a"}\n'))
        c = self._client()
        c.sendall(req("/v1.41/t/b"))
        self.port.doRead()
        self.reactor.advance(0)
        try:
            out = c.recv(65536)
        except ConnectionResetError:
            out = b""
        self.assertEqual(out, b"")
        self.assertEqual(self.state.refused, 1)
        idle.sendall(req("/v1.41/t/c"))  # the waiting one is still served
        self._pump()
        self.assertTrue(self._read_to_end(idle).endswith(b'{"Ref":"c"}\n'))
        self.assertEqual(self.state.by_peer, {})

    def test_kept_alive_connection_waits_as_after_any_answer(self) -> None:
        """After a direct answer, the connection waits for its next request as a channel does
        after an answer: no header deadline before that request's first byte (an idle client
        keeps its connection past it), then the deadline for that request's headers."""
        c = self._client()
        c.sendall(req("/v1.41/t/a", close=False))
        self.port.doRead()
        self.assertTrue(c.recv(65536).endswith(b'{"Ref":"a"}\n'))
        self.reactor.advance(11)  # past the header deadline (10 s)
        self._pump()
        c.sendall(req("/v1.41/t/b", close=False))
        self._pump()
        self.assertTrue(c.recv(65536).endswith(b'{"Ref":"b"}\n'))
        c.sendall(b"GET /v1.41/t/c HTTP/1.1\r\n")  # headers begun, never finished
        self._pump()
        self.reactor.advance(11)
        self._pump()
        self.assertEqual(self._read_to_end(c), b"")  # cut by the deadline
        self.assertEqual(self.state.by_peer, {})

    def test_answer_larger_than_the_socket_takes(self) -> None:
        """What the kernel does not take at once is sent by a transport made then; the
        connection closes after the last byte."""
        c = self._client()
        c.sendall(req(f"/v1.41/t/big/{BIG}"))
        self.port.doRead()
        self.assertEqual(self.port.sessionno, 1)  # the rest went to a transport
        timers = [
            call
            for call in self.reactor.getDelayedCalls()
            if getattr(call.func, "__self__", None) is not self.site  # its log clock
        ]
        self.assertEqual(timers, [])  # draining its answer: no timer, as a channel
        out = self._read_to_end(c)
        status, _, body = parse_answer(out)
        self.assertEqual((status, body), (200, b"x" * BIG))
        self.assertEqual(self.state.by_peer, {})
        self.assertEqual(
            re.sub(rb"Date: [^\r]*\r\n", b"Date: X\r\n", out),
            self._converse([req(f"/v1.41/t/big/{BIG}")], False),
        )

    def test_answer_completed_later(self) -> None:
        """A request whose handler waits is counted against its peer until answered; then
        it is sent and the connection closed with no transport; a peer gone meanwhile costs
        nothing."""
        c = self._client()
        c.sendall(req("/v1.41/t/a/slow"))
        self.port.doRead()
        self.assertEqual(sum(self.state.by_peer.values()), 1)
        self.router.pending.pop().callback(None)
        self.assertEqual(self.port.sessionno, 0)
        self.assertTrue(c.recv(65536).endswith(b'{"Slow":"a"}\n'))
        self.assertEqual(c.recv(10), b"")
        self.assertEqual(self.state.by_peer, {})

        gone = self._client()
        gone.sendall(req("/v1.41/t/b/slow"))
        self.port.doRead()
        gone.close()
        self.router.pending.pop().callback(None)
        self.assertEqual(self.state.by_peer, {})
        self.assertEqual(self.seen[-1], ("/v1.41/t/b/slow", "GET", 200))

    def test_over_the_peer_cap_is_refused_as_before(self) -> None:
        """A peer at its cap of open connections: its next connection is refused before any
        answer, door or not."""
        self.state.per_peer = 1
        idle = self._client()
        self.port.doRead()  # counted, waiting for its request
        self.assertEqual(sum(self.state.by_peer.values()), 1)
        c = self._client()
        c.sendall(req("/v1.41/t/a"))
        self.port.doRead()
        self.reactor.advance(0)  # the abort's connectionLost
        try:
            out = c.recv(65536)
        except ConnectionResetError:
            out = b""
        self.assertEqual(out, b"")
        self.assertEqual(self.seen, [])
        self.assertEqual(self.state.refused, 1)
        idle.close()

    def test_read_declined_by_the_door_is_not_offered_twice(self) -> None:
        """The channel does not try its own lean door on a read the port's door declined;
        later reads of the connection it does."""
        c = self._client()
        c.sendall(req("/v1.41/t/a/plain", close=False))
        self.port.doRead()
        self.assertEqual(self.lean_calls, 0)
        c.sendall(req("/v1.41/t/b"))
        self._pump()
        self.assertEqual(self.lean_calls, 1)
        self.assertTrue(self._read_to_end(c).endswith(b'{"Ref":"b"}\n'))

    def test_connected_and_closed_without_a_byte(self) -> None:
        c = self._client()
        c.close()
        self.port.doRead()
        self.assertEqual(self.port.sessionno, 0)
        self.assertEqual(self.reactor.readers, {self.port})
