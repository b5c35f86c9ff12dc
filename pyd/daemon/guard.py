"""Connection limits in front of the API (layer: daemon): a cap on open connections per peer,
a cap on TCP connections still in the TLS handshake, a handshake deadline, and the raised
file-descriptor limit.

One client must not be able to exhaust what every client shares: descriptors (each connection is
one), memory (a connection that never finishes its handshake still holds an OpenSSL object) and
the reactor's time. A connection over a cap is aborted at once, before a byte is read: the peer
sees a reset, the daemon keeps nothing.
"""

from __future__ import annotations

import _socket
import resource
import socket
import struct
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

log = Logger()


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft C{RLIMIT_NOFILE} to the hard limit, as dockerd's unit does with
    C{LimitNOFILE=1048576} (the unit in deploy/ sets the hard limit). Returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            log.warn("could not raise the open-file limit from {soft}", soft=soft)
            return soft, soft
        log.info("open-file limit raised from {soft} to {target}", soft=soft, target=target)
        return soft, target
    return soft, soft


_PEERCRED = struct.Struct("3i")


# The C socket's own family field: socket.socket's C{family} property wraps it in an enum
# member at every read, and every connection asked several times.
_FAMILY = _socket.socket.__dict__["family"]


def _is_unix(sock: Any) -> bool:
    """Whether C{sock} is a Unix socket."""
    if isinstance(sock, _socket.socket):
        return bool(_FAMILY.__get__(sock) == socket.AF_UNIX)
    return bool(getattr(sock, "family", None) == socket.AF_UNIX)


def peer_cred(transport: Any) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of a Unix socket's peer at connect time (SO_PEERCRED); None for TCP or
    when the kernel does not say."""
    sock = getattr(transport, "socket", None)
    if sock is None or not _is_unix(sock):
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return None
    pid, uid, gid = _PEERCRED.unpack(raw)
    return pid, uid, gid


def peer_key(transport: Any, cred: tuple[int, int, int] | None = None) -> str:
    """Who is at the other end: C{uid:N} for a Unix socket (SO_PEERCRED, or C{cred} read
    already), the address for TCP."""
    sock = getattr(transport, "socket", None)
    if sock is not None and (cred is not None or _is_unix(sock)):
        cred = cred or peer_cred(transport)
        return "unix" if cred is None else f"uid:{cred[1]}"
    peer = transport.getPeer()
    return f"ip:{getattr(peer, 'host', peer)}"


class GuardState:
    """Counters shared by every listener of the daemon."""

    def __init__(
        self,
        per_peer: int,
        max_handshaking: int,
        handshake_timeout: float,
        call_later: Callable[..., Any],
    ) -> None:
        self.per_peer = per_peer
        self.max_handshaking = max_handshaking
        self.handshake_timeout = handshake_timeout
        self.call_later = call_later
        self.by_peer: dict[str, int] = {}
        self.handshaking = 0
        self.refused = 0


# The guard's interface declaration per transport class (L{_GuardProtocol.makeConnection}).
_PROVIDES: dict[tuple[type, type], Any] = {}


@implementer(IHalfCloseableProtocol)
class _GuardProtocol(ProtocolWrapper):
    """Counts the connection while it is open; half-closes reach a protocol that wants them
    (a hijacked attach stream), any other protocol sees a read EOF as the end, as without
    the guard."""

    factory: ConnectionGuard

    def makeConnection(self, transport: Any) -> None:
        state = self.factory.state
        # Read once for the connection: the API's identity takes it from here (the channel's
        # transport is this wrapper) instead of asking the kernel again on the first request.
        self.pyd_peercred = peer_cred(transport)
        self._key = peer_key(transport, self.pyd_peercred)
        self._counted = False
        self._in_handshake = False
        self._deadline: Any = None
        reason = ""
        if not self.factory.room_for(self._key):
            reason = "too many connections from this peer"
        elif (
            self.factory.tls
            and state.max_handshaking
            and state.handshaking >= state.max_handshaking
        ):
            reason = "too many connections in the TLS handshake"
        if reason:
            state.refused += 1
            log.debug("refused a connection from {peer}: {reason}", peer=self._key, reason=reason)
            transport.abortConnection()
            return
        self.factory.count(self._key)
        self._counted = True
        if self.factory.tls:
            state.handshaking += 1
            self._in_handshake = True
            if state.handshake_timeout:
                self._deadline = state.call_later(state.handshake_timeout, self._too_slow)
        # ProtocolWrapper.makeConnection, with the wrapper's interface declaration (the
        # transport's, as ProtocolWrapper declares) computed once per transport class when
        # the transport declares nothing of its own (~1.5 % of a small request each time)
        kind = (type(self), type(transport))
        provides = _PROVIDES.get(kind) if "__provides__" not in vars(transport) else None
        if provides is None:
            directlyProvides(self, providedBy(transport))
            if "__provides__" not in vars(transport):
                _PROVIDES[kind] = vars(self)["__provides__"]
        else:
            vars(self)["__provides__"] = provides
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self.wrappedProtocol.makeConnection(self)  # type: ignore[arg-type]  # the wrapper is the transport, as in ProtocolWrapper

    def _too_slow(self) -> None:
        self._deadline = None
        if self._in_handshake:
            log.debug("TLS handshake of {peer} timed out", peer=self._key)
            transport: Any = self.transport
            transport.abortConnection()

    def handshake_done(self) -> None:
        """The TLS layer under this connection finished its handshake (the HTTP channel above
        it calls this through the wrappers' attribute forwarding)."""
        if self._in_handshake:
            self._in_handshake = False
            self.factory.state.handshaking -= 1
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def readConnectionLost(self) -> None:
        """The peer half-closed: forward it, or end the connection."""
        inner = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if inner is not None:
            inner.readConnectionLost()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """Our side was half-closed: forward it."""
        inner = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if inner is not None:
            inner.writeConnectionLost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._counted:
            self._counted = False
            self.handshake_done()
            self.factory._uncount(self._key)
            super().connectionLost(reason)


class ConnectionGuard(WrappingFactory):
    """Wraps a listener's factory (the site, or the TLS factory around it)."""

    protocol = _GuardProtocol

    def __init__(self, wrapped: Any, state: GuardState, tls: bool = False) -> None:
        super().__init__(wrapped)
        self.state = state
        self.tls = tls

    def direct(self, conn: Any, data: bytes) -> bool:
        """Offer the first read of a connection that has no transport yet (L{pyd.daemon.direct})
        to the wrapped site: True when it took the request, counted against the peer's cap
        until answered. Declined (False) over the cap (the full path then refuses the
        connection), on TLS, or when the site has no direct answer."""
        site_direct = getattr(self.wrappedFactory, "direct", None)
        if self.tls or site_direct is None:
            return False
        key = peer_key(conn, conn.pyd_peercred)
        if not self.room_for(key):
            return False
        self.count(key)
        conn.counted(lambda: self._uncount(key))
        if site_direct(conn, data):
            return True
        conn.release()
        return False

    def room_for(self, key: str) -> bool:
        """Whether peer C{key} may open one more connection (its cap, if any)."""
        state = self.state
        return not state.per_peer or state.by_peer.get(key, 0) < state.per_peer

    def count(self, key: str) -> None:
        """One more open connection of peer C{key}."""
        self.state.by_peer[key] = self.state.by_peer.get(key, 0) + 1

    def _uncount(self, key: str) -> None:
        state = self.state
        left = state.by_peer.get(key, 1) - 1
        if left > 0:
            state.by_peer[key] = left
        else:
            state.by_peer.pop(key, None)

    def logPrefix(self) -> str:
        """Log lines name the wrapped factory."""
        return str(self.wrappedFactory.logPrefix())
