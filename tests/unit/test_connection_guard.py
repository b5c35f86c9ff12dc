"""The connection guard and the API channel's header deadline (issue 18: bounded per client)."""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from pyd.api.identity import Policy, identify
from pyd.api.root import ApiRoot, ApiSite
from pyd.daemon.guard import ConnectionGuard, GuardState, raise_fd_limit


@implementer(IHalfCloseableProtocol)
class _Echo(Protocol):
    def __init__(self) -> None:
        self.half_closed = False
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def readConnectionLost(self) -> None:
        self.half_closed = True

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        self.lost = True


class _Transport(StringTransport):
    def __init__(self, host: str) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", host, 40000))
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.disconnecting = True


def _connect(factory: Any, host: str = "10.0.0.1") -> tuple[Any, _Transport]:
    proto = factory.buildProtocol(None)
    t = _Transport(host)
    proto.makeConnection(t)
    return proto, t


class ConnectionGuardTests(SynchronousTestCase):
    """Caps per peer and on handshaking connections; connections over a cap are aborted."""

    def setUp(self) -> None:
        self.clock = task.Clock()

    def _guard(self, per_peer: int = 2, handshaking: int = 2, tls: bool = False) -> Any:
        state = GuardState(per_peer, handshaking, 5.0, self.clock.callLater)
        return ConnectionGuard(Factory.forProtocol(_Echo), state, tls=tls), state

    def test_per_peer_cap(self) -> None:
        """The third connection of a peer is aborted; another peer still gets in; a closed
        connection frees its slot."""
        guard, state = self._guard(per_peer=2)
        p1, t1 = _connect(guard)
        _p2, t2 = _connect(guard)
        _p3, t3 = _connect(guard)
        self.assertEqual((t1.aborted, t2.aborted, t3.aborted), (False, False, True))
        _p4, t4 = _connect(guard, "10.0.0.2")
        self.assertFalse(t4.aborted)
        p1.connectionLost(None)
        _p5, t5 = _connect(guard)
        self.assertFalse(t5.aborted)
        self.assertEqual(state.refused, 1)

    def test_data_flows(self) -> None:
        """The guard is transparent: bytes both ways, half-closes reach a protocol that wants
        them."""
        guard, _ = self._guard()
        p, t = _connect(guard)
        p.dataReceived(b"hello")
        self.assertEqual(t.value(), b"hello")
        p.readConnectionLost()
        self.assertTrue(p.wrappedProtocol.half_closed)
        self.assertFalse(t.disconnecting)

    def test_unix_peer_read_once_for_the_identity(self) -> None:
        """On a Unix socket the guard reads the peer's credentials once (its per-peer key),
        and the API's identity takes them from the wrapper it sees as its transport instead of
        asking the kernel again: the same uid and role."""
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        guard, state = self._guard()
        proto = guard.buildProtocol(None)
        t = StringTransport()
        t.socket = a  # type: ignore[attr-defined]  # what the guard and the identity read
        proto.makeConnection(t)
        self.assertEqual(proto.pyd_peercred, (os.getpid(), os.getuid(), os.getgid()))
        self.assertEqual(list(state.by_peer), [f"uid:{os.getuid()}"])
        proto.pyd_peercred = (1, 4242, 4242)  # taken from here, not read again
        ident = identify(proto, Policy(unix_roles={"uid:4242": "viewer"}))
        self.assertEqual((ident.role, ident.transport), ("viewer", "unix"))

    def test_tcp_peer_keyed_by_address_without_credentials(self) -> None:
        """A TCP connection has no SO_PEERCRED: the guard keys it by address and the identity
        does not take Unix credentials for it."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        guard, state = self._guard()
        proto = guard.buildProtocol(None)
        t = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 4000))
        t.socket = sock  # type: ignore[attr-defined]  # what the guard and the identity read
        proto.makeConnection(t)
        self.assertIsNone(proto.pyd_peercred)
        self.assertEqual(list(state.by_peer), ["ip:192.0.2.7"])
        self.assertEqual(identify(proto, Policy()).transport, "tcp")

    def test_handshake_cap_and_timeout(self) -> None:
        """Handshaking TLS connections are capped; one that never finishes is aborted after the
        handshake timeout; a finished handshake frees its slot and cancels the deadline."""
        guard, state = self._guard(per_peer=0, handshaking=2, tls=True)
        p1, t1 = _connect(guard, "10.0.0.1")
        _p2, t2 = _connect(guard, "10.0.0.2")
        _p3, t3 = _connect(guard, "10.0.0.3")
        self.assertTrue(t3.aborted)
        self.assertEqual(state.handshaking, 2)
        p1.handshake_done()
        self.assertEqual(state.handshaking, 1)
        _p4, t4 = _connect(guard, "10.0.0.4")
        self.assertFalse(t4.aborted)
        self.clock.advance(5.0)
        self.assertFalse(t1.aborted)
        self.assertTrue(t2.aborted)
        self.assertTrue(t4.aborted)

    def test_fd_limit(self) -> None:
        """The soft open-file limit ends at the hard limit."""
        import resource

        _before, after = raise_fd_limit()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.assertEqual(soft, after)
        if hard != resource.RLIM_INFINITY:
            self.assertEqual(soft, hard)


class HeaderDeadlineTests(SynchronousTestCase):
    """A request's headers must arrive within the site's header timeout of its first byte."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.site = ApiSite(ApiRoot([]), header_timeout=10.0, reactor=self.clock)

    def test_dripping_headers_are_cut(self) -> None:
        """A client sending a byte every few seconds is aborted at the deadline."""
        ch = self.site.buildProtocol(None)
        t = _Transport("10.0.0.1")
        ch.makeConnection(t)
        for b in b"GET /_ping HTTP/1.1\r\n":
            ch.dataReceived(bytes([b]))
            self.clock.advance(1.0)
            if t.aborted:
                break
        self.assertTrue(t.aborted)

    def test_prompt_request_is_served_and_idle_keeps(self) -> None:
        """Headers in time: the request is served; the idle connection is not cut by the
        header deadline, and the next request gets a fresh one."""
        ch = self.site.buildProtocol(None)
        t = _Transport("10.0.0.1")
        ch.makeConnection(t)
        ch.dataReceived(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200 OK", t.value())
        self.clock.advance(60)
        self.assertFalse(t.aborted)
        ch.dataReceived(b"GET /_pi")
        self.clock.advance(11)
        self.assertTrue(t.aborted)

    def test_hijacked_connection_keeps_no_timer(self) -> None:
        """Once a request takes its connection over (attach, exec), no timer of the HTTP
        channel is left: the header deadline would otherwise keep the channel, its transport
        and its last request alive for the whole timeout after the stream ended."""
        from tests.helpers.hijack_server import EchoRouter

        site = ApiSite(ApiRoot([EchoRouter(self.clock)]), header_timeout=10.0, reactor=self.clock)
        ch = site.buildProtocol(None)
        t = _Transport("10.0.0.1")
        ch.makeConnection(t)
        self.assertTrue([c for c in self.clock.getDelayedCalls() if c.active()])
        ch.dataReceived(
            b"POST /v1.41/echo/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n{}"
        )
        self.assertIn(b"101 UPGRADED", t.value())
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()], [])


class _MarkedTransport(StringTransport):
    """A transport class with an interface of its own (as a TLS transport has ISSLTransport)."""


class GuardDeclarationTests(SynchronousTestCase):
    """The guard wrapper provides what its transport provides (as Twisted's ProtocolWrapper):
    the declaration is computed once per transport class, but never shared with a transport
    that declares something of its own."""

    def test_wrapper_provides_what_its_transport_provides(self) -> None:
        from twisted.internet.interfaces import ISSLTransport, ITCPTransport
        from zope.interface import alsoProvides, classImplements, providedBy

        classImplements(_MarkedTransport, ITCPTransport)
        state = GuardState(0, 0, 5.0, task.Clock().callLater)
        guard = ConnectionGuard(Factory.forProtocol(_Echo), state)
        wrappers = []
        for _ in range(3):
            p = guard.buildProtocol(None)
            p.makeConnection(_MarkedTransport())
            wrappers.append(p)
        for p in wrappers:
            self.assertTrue(ITCPTransport.providedBy(p))
            self.assertFalse(ISSLTransport.providedBy(p))
            self.assertTrue(IHalfCloseableProtocol.providedBy(p))  # its own class's, kept
        self.assertIs(providedBy(wrappers[1]), providedBy(wrappers[2]))  # computed once
        # a transport with a declaration of its own: the wrapper follows it, and the next
        # plain one of the class does not inherit it
        odd = _MarkedTransport()
        alsoProvides(odd, ISSLTransport)
        p = guard.buildProtocol(None)
        p.makeConnection(odd)
        self.assertTrue(ISSLTransport.providedBy(p))
        q = guard.buildProtocol(None)
        q.makeConnection(_MarkedTransport())
        self.assertFalse(ISSLTransport.providedBy(q))
        self.assertTrue(ITCPTransport.providedBy(q))


class UnixPortAddressTests(SynchronousTestCase):
    """The Unix port makes the address of an unbound peer once; a bound peer's is its own."""

    def test_unnamed_peer_address_shared(self) -> None:
        from twisted.internet.address import UNIXAddress

        from pyd.daemon.eager import UnixPort

        port = UnixPort.__new__(UnixPort)
        a, b = port._buildAddr(""), port._buildAddr("")
        self.assertIs(a, b)
        self.assertEqual(a, UNIXAddress(""))
        self.assertEqual(port._buildAddr(b""), UNIXAddress(b""))
        named = port._buildAddr("/run/client.sock")
        self.assertEqual(named, UNIXAddress("/run/client.sock"))
        self.assertIsNot(named, port._buildAddr("/run/client.sock"))
