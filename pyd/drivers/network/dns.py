"""The embedded DNS resolver for containers, on twisted.names (layer: drivers).

As dockerd's: each container served gets its own UDP and TCP listener on C{127.0.0.11}
inside its network namespace, on ports the kernel picks (the engine creates the sockets in the
namespace and the container's C{pyd_dns} nft table redirects port 53 to them); the sockets are
adopted into the reactor here. A listener knows which container it serves, so names are
answered (A with IPv4 addresses, AAAA with the IPv6 ones of networks with IPv6, PTR for both) as
that container sees them: container names, aliases and short ids on its networks
(from the engine's L{NameTable}). Every other question is forwarded, from the host's namespace,
to the upstream servers the engine names for that container (its C{--dns}, the daemon's
C{--dns}, or the host's resolv.conf).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Protocol, cast

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.interfaces import IAddress
from twisted.logger import Logger
from twisted.names import client, dns, server

from pyd.core.seams import IDnsReactor

log = Logger()

TTL = 600


class NoUpstream(Exception):
    """A question that is not ours, and nowhere to forward it."""


class NameTable(Protocol):
    """What the resolver asks the engine (all in memory, called on the reactor thread).

    C{key} identifies the listener that got the question: the container it serves.
    """

    def lookup(self, key: str, name: str) -> list[str] | None:
        """IPv4 addresses for C{name} as C{key} sees it; None when the name is not ours."""
        ...

    def reverse(self, key: str, address: str) -> str | None:
        """The name for a container address C{key} can see, or None."""
        ...

    def upstreams(self, key: str) -> list[str]:
        """Where to forward other questions from C{key}."""
        ...


class _Factory(server.DNSServerFactory):  # type: ignore[misc]  # untyped Twisted base
    noisy = False

    def __init__(
        self,
        table: NameTable,
        key: str,
        reactor: IDnsReactor,
        clients: dict[Any, Any] | None = None,
    ) -> None:
        super().__init__(verbose=0)
        self._table = table
        self._key = key
        self._reactor = reactor
        # Forwarding clients by upstream list, shared by every listener of one server.
        self._clients: dict[tuple[str, ...], client.Resolver] = {} if clients is None else clients

    def handleQuery(self, message: dns.Message, protocol: Any, address: Any) -> None:
        """Answer from the name table or forward; reply with Twisted's usual response code."""
        if not message.queries:
            self.sendReply(
                protocol, self._responseFromMessage(message=message, rCode=dns.EFORMAT), address
            )
            return
        query = message.queries[0]
        d = self._answer(query)
        d.addCallback(self.gotResolverResponse, protocol, message, address)
        d.addErrback(self.gotResolverError, protocol, message, address)

    def gotResolverError(
        self, failure: Any, protocol: Any, message: dns.Message, address: Any
    ) -> None:
        """NXDOMAIN for unknown names; SERVFAIL (logged at debug only) when upstreams fail."""
        if failure.check(dns.DomainError, dns.AuthoritativeDomainError):
            rcode = dns.ENAME
        else:
            rcode = dns.ESERVER
            log.debug("DNS forwarding failed: {err}", err=failure.getErrorMessage())
        self.sendReply(protocol, self._responseFromMessage(message=message, rCode=rcode), address)

    def _answer(self, query: dns.Query) -> Deferred[Any]:
        name = query.name.name.decode("ascii", "replace").rstrip(".").lower()
        if query.cls == dns.IN and query.type in (dns.A, dns.AAAA, dns.ALL_RECORDS):
            found = self._table.lookup(self._key, name)
            if found is not None:
                answers = []
                if query.type in (dns.A, dns.ALL_RECORDS):
                    answers += [
                        dns.RRHeader(
                            name=query.name.name,
                            type=dns.A,
                            cls=dns.IN,
                            ttl=TTL,
                            payload=dns.Record_A(ip, TTL),
                            auth=True,
                        )
                        for ip in found
                        if ":" not in ip
                    ]
                if query.type in (dns.AAAA, dns.ALL_RECORDS):
                    answers += [
                        dns.RRHeader(
                            name=query.name.name,
                            type=dns.AAAA,
                            cls=dns.IN,
                            ttl=TTL,
                            payload=dns.Record_AAAA(ip, TTL),
                            auth=True,
                        )
                        for ip in found
                        if ":" in ip
                    ]
                return succeed((answers, [], []))
        ptr = _ptr_address(name) if query.cls == dns.IN and query.type == dns.PTR else None
        if ptr is not None:
            target = self._table.reverse(self._key, ptr)
            if target is not None:
                rr = dns.RRHeader(
                    name=query.name.name,
                    type=dns.PTR,
                    cls=dns.IN,
                    ttl=TTL,
                    payload=dns.Record_PTR(target, TTL),
                    auth=True,
                )
                return succeed(([rr], [], []))
        upstreams = tuple(self._table.upstreams(self._key))
        if not upstreams:
            return fail(NoUpstream("no upstream DNS server for this container"))
        resolver = self._clients.get(upstreams)
        if resolver is None:
            resolver = client.Resolver(servers=[(s, 53) for s in upstreams], reactor=self._reactor)
            self._clients[upstreams] = resolver
        return resolver.query(query)  # type: ignore[no-any-return]  # twisted.names' Resolver.query is untyped


def _ptr_address(name: str) -> str | None:
    """The address a C{PTR} question names (C{4.3.2.1.in-addr.arpa}, or the 32 nibbles of
    C{….ip6.arpa}) in its canonical text, or None."""
    try:
        if name.endswith(".in-addr.arpa"):
            parts = name[: -len(".in-addr.arpa")].split(".")
            if len(parts) == 4:
                return str(ipaddress.IPv4Address(".".join(reversed(parts))))
        elif name.endswith(".ip6.arpa"):
            nibbles = name[: -len(".ip6.arpa")].split(".")
            if len(nibbles) == 32 and all(len(n) == 1 for n in nibbles):
                return str(ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16)))
    except ValueError:
        return None
    return None


def _port(address: IAddress) -> int:
    """The port of an adopted INET socket's address (IAddress itself names no port)."""
    return cast(IPv4Address, address).port


class DnsServer:
    """Listeners per served container; adopt them as containers start, stop them as they go."""

    def __init__(self, table: NameTable, reactor: IDnsReactor) -> None:
        self._table = table
        self._reactor = reactor
        self._ports: dict[str, tuple[Any, Any]] = {}
        self._clients: dict[Any, Any] = {}

    def serve(self, key: str, udp: socket.socket, tcp: socket.socket) -> tuple[int, int]:
        """Answer on the bound UDP socket and listening TCP socket given (the reactor works on
        duplicates; the caller's sockets are closed here). @return: their ports."""
        try:
            if key in self._ports:
                return self.ports(key) or (0, 0)
            factory = _Factory(self._table, key, self._reactor, self._clients)
            uport = self._reactor.adoptDatagramPort(
                udp.fileno(), socket.AF_INET, dns.DNSDatagramProtocol(factory), maxPacketSize=8192
            )  # 8192: the reactor's default, which IReactorSocket does not declare
            try:
                tport = self._reactor.adoptStreamPort(tcp.fileno(), socket.AF_INET, factory)
            except Exception:
                uport.stopListening()
                raise
            self._ports[key] = (uport, tport)
            return _port(uport.getHost()), _port(tport.getHost())
        finally:
            udp.close()
            tcp.close()

    def ports(self, key: str) -> tuple[int, int] | None:
        """The UDP and TCP ports served for C{key}, if any."""
        if key not in self._ports:
            return None
        udp, tcp = self._ports[key]
        return udp.getHost().port, tcp.getHost().port

    def stop(self, key: str) -> Deferred[Any]:
        """Stop serving C{key}."""
        pair = self._ports.pop(key, None)
        if pair is None:
            return succeed(None)
        return gatherResults([Deferred.fromCoroutine(_stop(p)) for p in pair], consumeErrors=True)

    def stop_all(self) -> Deferred[Any]:
        """Stop every listener (daemon shutdown)."""
        return gatherResults([self.stop(k) for k in list(self._ports)], consumeErrors=True)


async def _stop(port: Any) -> None:
    r = port.stopListening()
    if isinstance(r, Deferred):
        await r
