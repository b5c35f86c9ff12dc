"""The daemon's userland proxy for published ports NAT cannot carry (layer: drivers).

A published port is carried by NAT in pyd's nft tables, except where NAT cannot reach, which
is where dockerd's C{docker-proxy} answers and pyd's daemon answers itself:

  - C{[::1]:port}: the kernel never routes a packet with an IPv6 loopback source out of the
    host's loopback (IPv4 has C{route_localnet} for 127.0.0.1; IPv6 has nothing like it);
  - C{[::]:port} of a container without an IPv6 address: NAT cannot turn IPv6 into IPv4.

Each listener is one IPv6-only socket (C{IPV6_V6ONLY}: the port's IPv4 side stays the NAT's)
relaying each connection to the container's address with Twisted's port forwarder, which
applies back-pressure both ways. UDP is not relayed. The listeners live in the daemon: while it
is down these addresses are refused (the NAT-ed ones keep working).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

from twisted.internet.interfaces import IListeningPort, IReactorSocket
from twisted.logger import Logger
from twisted.protocols.portforward import ProxyFactory

log = Logger()

Listen = tuple[str, int]  # (IPv6 address to listen on, port)
Target = tuple[str, int]  # (container address, container port)


class LoopbackProxy:
    """Listeners on C{[address]:port} that relay TCP connections to a container's port."""

    def __init__(self, reactor: IReactorSocket) -> None:
        self._reactor = reactor
        self._listening: dict[Listen, tuple[Target, IListeningPort]] = {}
        self._warned: set[tuple[Listen, Target]] = set()
        # A host without IPv6 (ipv6.disable=1) has nothing for the proxy to serve.
        self.available = _ipv6_sockets()

    def listening(self) -> dict[Listen, Target]:
        """What is served now."""
        return {at: target for at, (target, _) in self._listening.items()}

    def sync(self, wanted: Mapping[Listen, Target]) -> list[Listen]:
        """Serve exactly C{wanted}; stop the other listeners.

        @return: the addresses that could not be listened on (taken by another program).
        """
        for at, (target, listener) in list(self._listening.items()):
            if wanted.get(at) != target:
                del self._listening[at]
                listener.stopListening()
        failed = []
        for at, (host, cport) in wanted.items():
            if at in self._listening or not self.available:
                continue
            try:
                listener = self._listen(at, ProxyFactory(host, cport))
            except OSError as e:
                if (at, (host, cport)) not in self._warned:  # tried again at each change
                    self._warned.add((at, (host, cport)))
                    log.warn(
                        "userland proxy: cannot listen on [{address}]:{port}: {e}",
                        address=at[0],
                        port=at[1],
                        e=e,
                    )
                failed.append(at)
                continue
            self._listening[at] = ((host, cport), listener)
        return failed

    def _listen(self, at: Listen, factory: ProxyFactory) -> IListeningPort:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(at)
            s.listen(50)
            s.setblocking(False)
            # the reactor takes its own copy of the descriptor
            return self._reactor.adoptStreamPort(
                s.fileno(),
                socket.AF_INET6,
                factory,  # type: ignore[arg-type]  # portforward is untyped: its factory's protocol is not a declared ServerFactory parameter
            )
        finally:
            s.close()


def _ipv6_sockets() -> bool:
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True
