"""The daemon's userland proxy for [::1] (pyd.drivers.network.proxy), on a memory reactor."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from pyd.drivers.network.proxy import LoopbackProxy


class LoopbackProxyTests(SynchronousTestCase):
    def test_sync_listens_replaces_and_stops(self) -> None:
        """sync() listens on [::1]:port per wanted port, keeps a listener whose target is
        unchanged, replaces one whose target changed and stops the ones no longer wanted."""
        reactor = MemoryReactorClock()
        proxy = LoopbackProxy(reactor)
        self.assertEqual(proxy.sync({8080: ("10.1.0.2", 80), 8081: ("fd00::2", 81)}), [])
        listened = [(port, iface) for port, _, _, iface in reactor.tcpServers]
        self.assertEqual(sorted(listened), [(8080, "::1"), (8081, "::1")])
        factory = reactor.tcpServers[0][1]
        self.assertEqual((factory.host, factory.port), ("10.1.0.2", 80))
        proxy.sync({8080: ("10.1.0.2", 80), 8081: ("fd00::3", 81)})
        self.assertEqual(len(reactor.tcpServers), 3)  # 8081 again, to the new address
        self.assertEqual(proxy.listening(), {8080: ("10.1.0.2", 80), 8081: ("fd00::3", 81)})
        proxy.sync({})
        self.assertEqual(proxy.listening(), {})
