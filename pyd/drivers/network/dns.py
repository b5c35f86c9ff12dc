"""The daemon's DNS resolver for containers, on twisted.names (layer: drivers).

One UDP and one TCP listener per user-defined network, bound to the network's gateway address on
an ephemeral port; the firewall table sends the containers' port-53 traffic there. Names the
engine knows (container names, aliases, short ids of the networks the asking container shares)
are answered here; every other question is forwarded to the upstream servers the engine names for
that container (its C{--dns}, the daemon's C{--dns}, or the host's resolv.conf).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.names import client, dns, server

log = Logger()

TTL = 600


class NoUpstream(Exception):
    """A question that is not ours, and nowhere to forward it."""


class NameTable(Protocol):
    """What the resolver asks the engine (all in memory, called on the reactor thread)."""

    def lookup(self, client_ip: str, server_ip: str, name: str) -> list[str] | None:
        """IPv4 addresses for C{name} as seen by C{client_ip}; None when the name is not ours."""
        ...

    def reverse(self, client_ip: str, server_ip: str, address: str) -> str | None:
        """The name for a container address the client can see, or None."""
        ...

    def upstreams(self, client_ip: str) -> list[str]:
        """Where to forward other questions from C{client_ip}."""
        ...


class _Factory(server.DNSServerFactory):  # type: ignore[misc]  # untyped Twisted base
    noisy = False

    def __init__(self, table: NameTable, server_ip: str, reactor: Any) -> None:
        super().__init__(verbose=0)
        self._table = table
        self._server_ip = server_ip
        self._reactor = reactor
        self._clients: dict[tuple[str, ...], client.Resolver] = {}

    def handleQuery(self, message: dns.Message, protocol: Any, address: Any) -> None:
        """Answer from the name table or forward; reply with Twisted's usual response code."""
        client_ip = address[0] if address is not None else protocol.transport.getPeer().host
        query = message.queries[0]
        d = self._answer(query, client_ip)
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

    def _answer(self, query: dns.Query, client_ip: str) -> Deferred[Any]:
        name = query.name.name.decode("ascii", "replace").rstrip(".").lower()
        if query.cls == dns.IN and query.type in (dns.A, dns.AAAA, dns.ALL_RECORDS):
            found = self._table.lookup(client_ip, self._server_ip, name)
            if found is not None:
                answers = []
                if query.type in (dns.A, dns.ALL_RECORDS):
                    answers = [
                        dns.RRHeader(
                            name=query.name.name,
                            type=dns.A,
                            cls=dns.IN,
                            ttl=TTL,
                            payload=dns.Record_A(ip, TTL),
                            auth=True,
                        )
                        for ip in found
                    ]
                return succeed((answers, [], []))
        if query.cls == dns.IN and query.type == dns.PTR and name.endswith(".in-addr.arpa"):
            parts = name[: -len(".in-addr.arpa")].split(".")
            if len(parts) == 4:
                ip = ".".join(reversed(parts))
                target = self._table.reverse(client_ip, self._server_ip, ip)
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
        upstreams = tuple(self._table.upstreams(client_ip))
        if not upstreams:
            return fail(NoUpstream("no upstream DNS server for this container"))
        resolver = self._clients.get(upstreams)
        if resolver is None:
            resolver = client.Resolver(servers=[(s, 53) for s in upstreams], reactor=self._reactor)
            self._clients[upstreams] = resolver
        return resolver.query(query)  # type: ignore[no-any-return]


class DnsServer:
    """Listeners per address; start and stop them as networks come and go."""

    def __init__(self, table: NameTable, reactor: Any) -> None:
        self._table = table
        self._reactor = reactor
        self._ports: dict[str, tuple[Any, Any]] = {}

    def listen(self, address: str) -> tuple[int, int]:
        """Serve on C{address} (ephemeral ports); @return: the UDP and TCP ports."""
        if address in self._ports:
            udp, tcp = self._ports[address]
            return udp.getHost().port, tcp.getHost().port
        ipaddress.IPv4Address(address)
        factory = _Factory(self._table, address, self._reactor)
        udp = self._reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface=address)
        try:
            tcp = self._reactor.listenTCP(0, factory, interface=address)
        except Exception:
            udp.stopListening()
            raise
        self._ports[address] = (udp, tcp)
        return udp.getHost().port, tcp.getHost().port

    def ports(self, address: str) -> tuple[int, int] | None:
        """The ports served on C{address}, if any."""
        if address not in self._ports:
            return None
        udp, tcp = self._ports[address]
        return udp.getHost().port, tcp.getHost().port

    def stop(self, address: str) -> Deferred[Any]:
        """Stop serving on C{address}."""
        pair = self._ports.pop(address, None)
        if pair is None:
            return succeed(None)
        from twisted.internet.defer import gatherResults

        return gatherResults([Deferred.fromCoroutine(_stop(p)) for p in pair], consumeErrors=True)

    def stop_all(self) -> Deferred[Any]:
        """Stop every listener (daemon shutdown)."""
        from twisted.internet.defer import gatherResults

        return gatherResults([self.stop(a) for a in list(self._ports)], consumeErrors=True)


async def _stop(port: Any) -> None:
    r = port.stopListening()
    if isinstance(r, Deferred):
        await r
