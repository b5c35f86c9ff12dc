"""The daemon's userland proxy for published ports on IPv6 loopback (layer: drivers).

A published port is carried by NAT in pyd's nft tables, from every address but one: a
connection to C{[::1]:port} cannot be DNAT-ed to a container, since the kernel never routes a
packet with an IPv6 loopback source out of the host's loopback (IPv4 has C{route_localnet} for
127.0.0.1; IPv6 has nothing like it). dockerd's C{docker-proxy} answers there; pyd answers
from the daemon itself: one listening socket on C{[::1]:port} per published TCP port, each
connection relayed to the container's address (its IPv6 one when it has one) with Twisted's
port forwarder, which applies back-pressure both ways. UDP is not relayed.

The listeners live in the daemon: while it is down C{[::1]:port} is refused (NAT-ed addresses
keep working).
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorTCP
from twisted.logger import Logger
from twisted.protocols.portforward import ProxyFactory

log = Logger()


class LoopbackProxy:
    """Listeners on C{[address]:port} that relay TCP connections to a container's port."""

    def __init__(self, reactor: IReactorTCP, address: str = "::1") -> None:
        self._reactor = reactor
        self.address = address
        self._listening: dict[int, tuple[tuple[str, int], IListeningPort]] = {}

    def listening(self) -> dict[int, tuple[str, int]]:
        """Host port -> (container address, container port) served now."""
        return {port: target for port, (target, _) in self._listening.items()}

    def sync(self, wanted: Mapping[int, tuple[str, int]]) -> list[int]:
        """Serve exactly C{wanted} (host port -> target); stop the other listeners.

        @return: the ports that could not be listened on (taken by another program).
        """
        for port, (target, listener) in list(self._listening.items()):
            if wanted.get(port) != target:
                del self._listening[port]
                listener.stopListening()
        failed = []
        for port, (host, cport) in wanted.items():
            if port in self._listening:
                continue
            try:
                listener = self._reactor.listenTCP(
                    port,
                    ProxyFactory(host, cport),  # type: ignore[arg-type]  # portforward is untyped: its factory's protocol is not a declared ServerFactory parameter
                    interface=self.address,
                )
            except CannotListenError as e:
                log.warn(
                    "userland proxy: cannot listen on [{address}]:{port}: {e}",
                    address=self.address,
                    port=port,
                    e=e.socketError,
                )
                failed.append(port)
                continue
            self._listening[port] = ((host, cport), listener)
        return failed
