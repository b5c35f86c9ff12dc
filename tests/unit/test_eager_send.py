"""Connections of the API's listening ports send what a read produced at the end of that read
(pyd/daemon/eager.py), instead of on the reactor's next turn; everything else is Twisted's
path. A real socket pair, a memory reactor that records who waits for writability."""

from __future__ import annotations

import os
import re
import socket
import stat
from typing import Any

from twisted.internet import unix
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.base import make_app
from pyd.api.root import ApiRoot, ApiSite
from pyd.api.wire import json_body
from pyd.daemon.eager import (
    AdoptedTCPEndpoint,
    TCPEndpoint,
    UnixEndpoint,
    _TCPServer,
    _UnixServer,
)


class _Echo(Protocol):
    """Answers each read with what C{answer} says (default: the data, upper-cased)."""

    def __init__(self, answer: Any = None) -> None:
        self.answer = answer or (lambda p, data: p.transport.write(data.upper()))

    def dataReceived(self, data: bytes) -> None:
        self.answer(self, data)


class SendAfterReadTests(SynchronousTestCase):
    def _pair(self, answer: Any = None, cls: Any = _UnixServer) -> tuple[Any, socket.socket]:
        ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        peer.settimeout(5)
        self.addCleanup(peer.close)
        self.addCleanup(ours.close)
        self.reactor = MemoryReactorClock()
        proto = _Echo(answer)
        transport = cls(ours, proto, "peer", None, 1, self.reactor)
        proto.makeConnection(transport)
        return transport, peer

    def _read_all(self, peer: socket.socket, n: int) -> bytes:
        got = b""
        while len(got) < n:
            got += peer.recv(n - len(got))
        return got

    def test_answer_sent_within_the_read(self) -> None:
        """The answer is in the peer's socket when doRead returns; the transport never
        waited for writability."""
        t, peer = self._pair()
        peer.sendall(b"ping")
        self.assertIsNone(t.doRead())
        self.assertEqual(self._read_all(peer, 4), b"PING")
        self.assertNotIn(t, self.reactor.writers)
        self.assertEqual(t._tempDataLen, 0)

    def test_writes_of_one_read_go_out_together_in_order(self) -> None:
        """Several writes (a status line, headers, a body) during one read: one send, in order."""

        def answer(p: Any, data: bytes) -> None:
            p.transport.write(b"1")
            p.transport.writeSequence([b"2", b"3"])
            p.transport.write(b"4")

        t, peer = self._pair(answer)
        peer.sendall(b"x")
        t.doRead()
        self.assertEqual(self._read_all(peer, 4), b"1234")
        self.assertNotIn(t, self.reactor.writers)

    def test_write_outside_a_read_waits_for_the_reactor(self) -> None:
        """A write from elsewhere (a Deferred firing later) is Twisted's: queued, and the
        transport waits for writability."""
        t, peer = self._pair()
        t.write(b"later")
        self.assertIn(t, self.reactor.writers)
        t.doWrite()
        self.assertEqual(self._read_all(peer, 5), b"later")
        self.assertNotIn(t, self.reactor.writers)

    def test_what_the_kernel_does_not_take_waits(self) -> None:
        """A peer that stops reading: the part the socket buffer does not take stays queued,
        the transport waits for writability, and the rest follows in order."""
        big = bytes(range(256)) * 8192  # 2 MiB, far beyond a socket pair's buffer
        t, peer = self._pair(lambda p, data: p.transport.write(big))
        peer.sendall(b"x")
        t.doRead()
        self.assertIn(t, self.reactor.writers)
        self.assertGreater(t._tempDataLen + len(t.dataBuffer) - t.offset, 0)
        got = b""
        while len(got) < len(big):
            got += peer.recv(1 << 20)
            if t in self.reactor.writers:
                t.doWrite()
        self.assertEqual(got, big)
        self.assertNotIn(t, self.reactor.writers)

    def test_close_after_answer_closes_within_the_read(self) -> None:
        """loseConnection during the read (a C{Connection: close} answer): the answer is sent
        and the connection closed at the end of that read, as the reactor's doWrite would
        have done a turn later: the peer reads the answer, then the end; nothing waits."""
        lost: list[Any] = []

        def answer(p: Any, data: bytes) -> None:
            p.connectionLost = lost.append
            p.transport.write(b"bye")
            p.transport.loseConnection()

        t, peer = self._pair(answer)
        peer.sendall(b"x")
        t.doRead()
        self.assertTrue(t.disconnected)
        self.assertNotIn(t, self.reactor.writers)
        self.assertNotIn(t, self.reactor.readers)
        self.assertEqual(len(lost), 1)
        lost[0].trap(ConnectionDone)
        self.assertEqual(self._read_all(peer, 3), b"bye")
        self.assertEqual(peer.recv(10), b"")  # closed

    def test_close_with_more_than_the_kernel_takes_waits(self) -> None:
        """A close after an answer the socket does not take at once: what is left waits for
        writability, and the reactor's doWrite sends it and ends the connection."""
        big = bytes(range(256)) * 8192

        def answer(p: Any, data: bytes) -> None:
            p.transport.write(big)
            p.transport.loseConnection()

        t, peer = self._pair(answer)
        peer.sendall(b"x")
        t.doRead()
        self.assertFalse(t.disconnected)
        self.assertIn(t, self.reactor.writers)
        got = b""
        why = None
        while len(got) < len(big):
            got += peer.recv(1 << 20)
            if why is None:
                why = t.doWrite()
        self.assertEqual(got, big)
        self.assertIsInstance(why, ConnectionDone)

    def test_abort_during_the_read_sends_nothing(self) -> None:
        """abortConnection drops the queue: nothing sent, nothing waits."""

        def answer(p: Any, data: bytes) -> None:
            p.transport.write(b"never")
            p.transport.abortConnection()

        t, peer = self._pair(answer)
        peer.sendall(b"x")
        t.doRead()
        self.assertNotIn(t, self.reactor.writers)
        peer.setblocking(False)
        with self.assertRaises(BlockingIOError):
            peer.recv(10)

    def test_peer_gone_keeps_twisteds_error_path(self) -> None:
        """The peer closed before the answer: the send fails, the data stays queued and the
        reactor's doWrite reports the lost connection."""

        def answer(p: Any, data: bytes) -> None:
            peer.close()
            p.transport.write(b"x" * 100)

        t, peer = self._pair(answer)
        peer.sendall(b"x")
        t.doRead()
        self.assertIn(t, self.reactor.writers)
        self.assertIsNotNone(t.doWrite())

    def test_tcp_transport_too(self) -> None:
        """The TCP connection class behaves the same (here over a Unix pair: the class's
        send path is the socket's)."""
        t, peer = self._pair(cls=_TCPServer)
        peer.sendall(b"tcp")
        t.doRead()
        self.assertEqual(self._read_all(peer, 3), b"TCP")
        self.assertNotIn(t, self.reactor.writers)

    def test_close_without_answer_still_closes(self) -> None:
        """loseConnection during a read with nothing written (a detach key on an attach
        stream): the connection is closed at the end of the read."""
        t, peer = self._pair(lambda p, data: p.transport.loseConnection())
        peer.sendall(b"x")
        t.doRead()
        self.assertTrue(t.disconnected)
        self.assertNotIn(t, self.reactor.writers)
        self.assertEqual(peer.recv(10), b"")

    def test_half_close_after_answer(self) -> None:
        """loseWriteConnection during the read: the answer, then the half-close, from the
        reactor's doWrite (Twisted's order)."""

        def answer(p: Any, data: bytes) -> None:
            p.transport.write(b"last")
            p.transport.loseWriteConnection()

        t, peer = self._pair(answer)
        peer.sendall(b"x")
        t.doRead()
        self.assertIn(t, self.reactor.writers)
        t.doWrite()
        self.assertEqual(self._read_all(peer, 4), b"last")
        self.assertEqual(peer.recv(10), b"")  # end of stream: our side shut its writing half


class EndpointTests(SynchronousTestCase):
    """The listeners' endpoints make pyd's ports, whose connections are the classes above."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def _listen(self, endpoint: Any) -> Any:
        port = self.successResultOf(endpoint.listen(Factory.forProtocol(Protocol)))

        def stop() -> None:
            port.stopListening()
            self.reactor.advance(0)

        self.addCleanup(stop)
        self.assertIn(port, self.reactor.getReaders())
        return port

    def test_unix(self) -> None:
        """C{unix://PATH}: the socket with mode 660, connections that send after the read."""
        path = os.path.join(self.mktemp() + "d", "s.sock")
        os.makedirs(os.path.dirname(path))
        port = self._listen(UnixEndpoint(self.reactor, path))
        self.assertTrue(issubclass(port.transport, _UnixServer))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o660)

    def test_tcp(self) -> None:
        """C{tcp://HOST:PORT}: bound to HOST."""
        port = self._listen(TCPEndpoint(self.reactor, 0, "127.0.0.1"))
        self.assertTrue(issubclass(port.transport, _TCPServer))
        self.assertEqual(port.getHost().host, "127.0.0.1")

    def test_adopted_tcp(self) -> None:
        """An inherited TCP socket: the port listens on its own duplicate; the inherited
        descriptor is closed, as Twisted's adoption does."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", 0))
        s.listen(5)
        fd = os.dup(s.fileno())
        port = self._listen(AdoptedTCPEndpoint(self.reactor, fd, socket.AF_INET))
        self.assertTrue(issubclass(port.transport, _TCPServer))
        self.assertEqual(port.getHost().port, s.getsockname()[1])
        with self.assertRaises(OSError):
            os.fstat(fd)


class _PollLikeReactor(MemoryReactorClock):
    """A memory reactor with the poll-like reactors' read dispatch (what L{UnixPort} uses to
    read a connection in the turn it accepted it): the descriptors read and the dispatch."""

    _POLL_IN = 1

    def __init__(self) -> None:
        super().__init__()
        self.dispatched: list[Any] = []

    @property
    def _reads(self) -> set[int]:
        return {r.fileno() for r in self.readers}

    def _doReadOrWrite(self, selectable: Any, fd: int, event: int) -> None:
        self.dispatched.append(selectable)
        why = selectable.doRead()
        if why is not None:
            selectable.connectionLost(why)


class ReadAtAcceptTests(SynchronousTestCase):
    """A connection the port accepts is read in the same turn: a request already sent is
    answered before the port's doRead returns; one not sent yet waits for the reactor."""

    def _port(self) -> tuple[Any, _PollLikeReactor, str]:
        reactor = _PollLikeReactor()
        path = os.path.join(self.mktemp() + "d", "s.sock")
        os.makedirs(os.path.dirname(path))
        factory = Factory.forProtocol(lambda: _Echo())
        port = self.successResultOf(UnixEndpoint(reactor, path).listen(factory))
        self.addCleanup(port.stopListening)
        return port, reactor, path

    def _client(self, path: str) -> socket.socket:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(5)
        self.addCleanup(c.close)
        c.connect(path)
        return c

    def test_request_already_sent_is_answered_in_the_accept(self) -> None:
        port, reactor, path = self._port()
        c = self._client(path)
        c.sendall(b"hello")
        port.doRead()
        self.assertEqual(len(reactor.dispatched), 1)
        self.assertEqual(c.recv(10), b"HELLO")
        (t,) = reactor.dispatched
        self.assertIn(t, reactor.readers)  # still open, still read

    def test_nothing_sent_yet_waits_for_the_reactor(self) -> None:
        port, reactor, path = self._port()
        c = self._client(path)
        port.doRead()
        (t,) = reactor.dispatched  # tried: EAGAIN, nothing handed to the protocol
        self.assertIn(t, reactor.readers)
        self.assertFalse(t.disconnected)
        c.sendall(b"later")
        t.doRead()
        self.assertEqual(c.recv(10), b"LATER")

    def test_refused_connection_is_not_read(self) -> None:
        """A connection its protocol dropped while it was made (the guard over a cap) is left
        alone."""
        reactor = _PollLikeReactor()
        path = os.path.join(self.mktemp() + "d", "s.sock")
        os.makedirs(os.path.dirname(path))

        class Refuse(Protocol):
            def connectionMade(self) -> None:
                self.transport.abortConnection()  # type: ignore[union-attr]

        port = self.successResultOf(UnixEndpoint(reactor, path).listen(Factory.forProtocol(Refuse)))
        self.addCleanup(port.stopListening)
        c = self._client(path)
        c.sendall(b"x")
        port.doRead()
        self.assertEqual(reactor.dispatched, [])

    def test_several_connections_in_one_turn(self) -> None:
        port, reactor, path = self._port()
        clients = [self._client(path) for _ in range(3)]
        for i, c in enumerate(clients):
            c.sendall(b"c%d" % i)
        port.doRead()
        self.assertEqual(len(reactor.dispatched), 3)
        self.assertEqual([c.recv(10) for c in clients], [b"C0", b"C1", b"C2"])


class ApiOverSocketTests(SynchronousTestCase):
    """The API's channel on a real socket: the eager transport answers byte for byte what
    Twisted's own transport answers, for the quick ping and the full path, pipelined, split,
    HEAD and versioned, and a client that stops reading still gets everything in order."""

    CHUNKS = [
        b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n",
        b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n",
        b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\n\r\n",
        # pipelined: two requests in one chunk (the full path, one after the other)
        b"GET /_ping HTTP/1.1\r\nHost: a\r\n\r\nGET /v1.44/_ping HTTP/1.1\r\nHost: b\r\n\r\n",
        # one request split across three reads
        b"GET /v1.4",
        b"5/_ping HTTP/1.1\r\nHo",
        b"st: c\r\n\r\n",
        b"GET /nothing HTTP/1.1\r\n\r\n",  # the root's 404
        b"GET /_ping HTTP/1.1\r\nConnection: close\r\n\r\n",  # last: the full path, then close
    ]

    def _converse(self, cls: Any) -> bytes:
        reactor = MemoryReactorClock()
        reactor.advance(1_800_000_000)
        site = ApiSite(ApiRoot([]), header_timeout=10.0, reactor=reactor)
        ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        peer.settimeout(5)
        self.addCleanup(peer.close)
        self.addCleanup(ours.close)
        channel = site.buildProtocol(None)
        transport = cls(ours, channel, "peer", None, 1, reactor)
        channel.makeConnection(transport)
        for chunk in self.CHUNKS:
            peer.sendall(chunk)
            transport.doRead()
            while transport in reactor.writers and not transport.disconnected:
                if transport.doWrite() is not None:
                    break
        if ours.fileno() != -1:  # the eager transport closed it after the last answer already
            ours.shutdown(socket.SHUT_WR)  # everything was sent above: the peer reads to the end
        got = b""
        while chunk := peer.recv(65536):
            got += chunk
        return re.sub(rb"Date: [^\r]*\r\n", b"Date: X\r\n", got)

    def test_same_bytes_as_twisteds_transport(self) -> None:
        eager = self._converse(_UnixServer)
        plain = self._converse(unix.Server)
        self.assertEqual(eager, plain)
        self.assertEqual(eager.count(b"HTTP/1.1 200 OK"), 7)
        self.assertIn(b"HTTP/1.1 404 Not Found", eager)

    def test_client_that_stops_reading(self) -> None:
        """Many pipelined pings the peer does not read: what the socket does not take stays
        queued (the transport waits for writability), and once the peer reads, every answer
        arrives, complete and in order."""
        reactor = MemoryReactorClock()
        site = ApiSite(ApiRoot([]), header_timeout=10.0, reactor=reactor)
        ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        self.addCleanup(peer.close)
        self.addCleanup(ours.close)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        channel = site.buildProtocol(None)
        t = _UnixServer(ours, channel, "peer", None, 1, reactor)
        channel.makeConnection(t)
        n = 0
        for _ in range(200):
            peer.sendall(b"GET /v1.41/_ping HTTP/1.1\r\n\r\n")
            t.doRead()
            n += 1
            if t in reactor.writers:
                break
        self.assertIn(t, reactor.writers)  # the socket is full: the rest waits
        peer.settimeout(5)
        got = b""
        while got.count(b"\r\n\r\nOK") < n:
            if t in reactor.writers:
                t.doWrite()
            got += peer.recv(65536)
        self.assertEqual(got.count(b"HTTP/1.1 200 OK"), n)
        norm = re.sub(rb"Date: [^\r]*\r\n", b"Date: X\r\n", got)
        one = norm[: norm.index(b"\r\n\r\nOK") + 6]
        self.assertEqual(norm, one * n)  # n whole answers, nothing lost, reordered or cut


class PassedDescriptorTests(SynchronousTestCase):
    def test_descriptors_a_client_passes_are_never_held(self) -> None:
        """A client passing descriptors (SCM_RIGHTS) along its request: the data arrives, and
        the daemon's process never holds one of them (the kernel discards them at the read)."""
        got: list[bytes] = []
        ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        self.addCleanup(peer.close)
        self.addCleanup(ours.close)
        proto = _Echo(lambda p, data: got.append(data))
        t = _UnixServer(ours, proto, "peer", None, 1, MemoryReactorClock())
        proto.makeConnection(t)
        passed = [os.open(os.devnull, os.O_RDONLY) for _ in range(3)]
        self.addCleanup(lambda: [os.close(fd) for fd in passed])
        before = len(os.listdir("/proc/self/fd"))
        socket.send_fds(peer, [b"data"], passed)
        t.doRead()
        self.assertEqual(got, [b"data"])
        self.assertEqual(len(os.listdir("/proc/self/fd")), before)


class _Waiting:
    """A router whose one route answers when the test fires its Deferred."""

    prefixes = ("later",)
    app = make_app()

    def __init__(self) -> None:
        self.pending: list[Deferred[None]] = []

    def resource(self) -> Any:
        return self.app.resource()

    @app.route("/later", methods=["GET"])
    async def later(self, request: Any) -> bytes:
        d: Deferred[None] = Deferred()
        self.pending.append(d)
        await d
        return json_body(request, {"Done": True})


class AnswerOutsideReadTests(SynchronousTestCase):
    def test_answer_completed_later_leaves_when_finished(self) -> None:
        """An answer completed by a callback (as after a database read) is in the peer's
        socket as soon as its request finishes; the transport does not wait for the
        reactor's writability turn."""
        reactor = MemoryReactorClock()
        router = _Waiting()
        site = ApiSite(ApiRoot([router]), header_timeout=10.0, reactor=reactor)
        ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        peer.settimeout(5)
        self.addCleanup(peer.close)
        self.addCleanup(ours.close)
        channel = site.buildProtocol(None)
        t = _UnixServer(ours, channel, "peer", None, 1, reactor)
        channel.makeConnection(t)
        peer.sendall(b"GET /v1.41/later HTTP/1.1\r\nHost: x\r\n\r\n")
        t.doRead()
        self.assertEqual((len(router.pending), t._tempDataLen), (1, 0))  # nothing answered yet
        router.pending[0].callback(None)
        self.assertNotIn(t, reactor.writers)
        got = b""
        while not got.endswith(b'{"Done":true}\n'):  # the answer carries its length
            got += peer.recv(65536)
        self.assertTrue(got.startswith(b"HTTP/1.1 200 OK\r\n"), got)
        self.assertIn(b'{"Done":true}', got)

    def test_closing_answer_completed_later_closes_when_finished(self) -> None:
        """The same with C{Connection: close}: the answer is sent and the connection closed as
        soon as the request finishes (the peer reads to the end), not a reactor turn later."""
        reactor = MemoryReactorClock()
        router = _Waiting()
        site = ApiSite(ApiRoot([router]), header_timeout=10.0, reactor=reactor)
        ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        peer.settimeout(5)
        self.addCleanup(peer.close)
        self.addCleanup(ours.close)
        channel = site.buildProtocol(None)
        t = _UnixServer(ours, channel, "peer", None, 1, reactor)
        channel.makeConnection(t)
        peer.sendall(b"GET /v1.41/later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        t.doRead()
        self.assertEqual(len(router.pending), 1)
        router.pending[0].callback(None)
        self.assertTrue(t.disconnected)
        self.assertNotIn(t, reactor.writers)
        got = b""
        while chunk := peer.recv(65536):
            got += chunk
        self.assertTrue(got.startswith(b"HTTP/1.1 200 OK\r\n"), got)
        self.assertIn(b'{"Done":true}', got)
