"""The daemon's userland proxy (pyd.drivers.network.proxy), on a memory reactor over real
IPv6 loopback sockets (bound, never connected to)."""

from __future__ import annotations

import os
import socket

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from pyd.drivers.network.proxy import LoopbackProxy


def _free_port() -> int:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


class LoopbackProxyTests(SynchronousTestCase):
    def test_sync_listens_replaces_and_stops(self) -> None:
        """sync() listens once per wanted address, keeps a listener whose target is unchanged,
        replaces one whose target changed and stops the ones no longer wanted."""
        reactor = MemoryReactorClock()
        proxy = LoopbackProxy(reactor)
        p1, p2 = _free_port(), _free_port()
        wanted = {("::1", p1): ("10.1.0.2", 80), ("::1", p2): ("fd00::2", 81)}
        self.assertEqual(proxy.sync(wanted), [])
        self.assertEqual(len(reactor.adoptedPorts), 2)
        factory = reactor.adoptedPorts[0][2]
        self.assertEqual((factory.host, factory.port), ("10.1.0.2", 80))
        proxy.sync({("::1", p1): ("10.1.0.2", 80), ("::1", p2): ("fd00::3", 81)})
        self.assertEqual(len(reactor.adoptedPorts), 3)  # p2 again, to the new address
        self.assertEqual(proxy.listening()[("::1", p2)], ("fd00::3", 81))
        proxy.sync({})
        self.assertEqual(proxy.listening(), {})

    def test_ipv6_only_and_taken(self) -> None:
        """A listener takes the IPv6 side of its port only (the IPv4 side stays free for the
        NAT's port checks); a port another program holds is reported, not raised."""
        kept: list[socket.socket] = []

        class Keeping(MemoryReactorClock):
            def adoptStreamPort(self, fileno, addressFamily, factory):  # type: ignore[no-untyped-def]
                kept.append(socket.socket(fileno=os.dup(fileno)))
                return super().adoptStreamPort(fileno, addressFamily, factory)

        proxy = LoopbackProxy(Keeping())
        port = _free_port()
        self.assertEqual(proxy.sync({("::", port): ("10.1.0.2", 80)}), [])
        self.addCleanup(kept[0].close)
        self.assertEqual(kept[0].getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY), 1)
        with socket.socket(socket.AF_INET) as v4:
            v4.bind(("0.0.0.0", port))  # the IPv4 side is free
        # Another listener on that address now: reported.
        other = LoopbackProxy(MemoryReactorClock())
        self.assertEqual(other.sync({("::", port): ("10.1.0.3", 80)}), [("::", port)])
