"""Fakes of the network drivers: they keep in memory what the kernel would hold."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed

from pyd.drivers.network.netlink import Interface, LinkInfo, NetworkDriverError
from pyd.drivers.network.nft import Ruleset
from pyd.engine.networks.base import FirewallOps, NetlinkOps, ProxyOps, ResolverOps


class FakeNetlink:
    """L{pyd.engine.networks.NetlinkOps} over dicts."""

    def __init__(self, routes: list[str] | None = None) -> None:
        self.bridges: dict[str, tuple[str | None, int]] = {}
        self.netns: dict[str, dict[str, Interface]] = {}
        self.in_use: set[str] = set()
        self.host_veths: set[str] = set()
        self.dns_asked: list[tuple[str, str, int, int]] = []
        self._routes = [ipaddress.ip_network(r) for r in (routes or ["192.0.2.0/24"])]
        self.ip_forward = False
        self.ipv6_forward = False
        self.bridges6: dict[str, tuple[str, int]] = {}

    def links(self) -> list[LinkInfo]:
        names = list(self.bridges) + sorted(self.host_veths)
        return [
            LinkInfo(i + 2, n, "bridge" if n in self.bridges else "veth", 0)
            for i, n in enumerate(names)
        ]

    def enable_ip_forwarding(self) -> bool:
        was_off = not self.ip_forward
        self.ip_forward = True
        return was_off

    def enable_ipv6_forwarding(self) -> bool:
        was_off = not self.ipv6_forward
        self.ipv6_forward = True
        return was_off

    def link_exists(self, name: str) -> bool:
        return name in self.bridges or name in self.host_veths

    def ensure_bridge(
        self,
        name: str,
        gateway: str | None,
        prefixlen: int,
        mtu: int,
        gateway6: str | None = None,
        prefixlen6: int = 0,
    ) -> bool:
        created = name not in self.bridges
        self.bridges[name] = (gateway, prefixlen)
        if gateway6:
            self.bridges6[name] = (gateway6, prefixlen6)
        return created

    def delete_link(self, name: str) -> bool:
        if name in self.bridges:
            del self.bridges[name]
            self.bridges6.pop(name, None)
            return True
        if name in self.host_veths:
            self.host_veths.discard(name)
            return True
        return False

    def routes(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = list(self._routes)
        for gw, prefix in self.bridges.values():
            if gw:
                out.append(ipaddress.IPv4Network(f"{gw}/{prefix}", strict=False))
        for gw6, prefix6 in self.bridges6.values():
            out.append(ipaddress.IPv6Network(f"{gw6}/{prefix6}", strict=False))
        return out

    def create_netns(self, path: str) -> None:
        if path in self.netns:
            raise NetworkDriverError(f"{path} exists")
        self.netns[path] = {}

    def remove_netns(self, path: str) -> bool:
        ifaces = self.netns.pop(path, None)
        if ifaces is None:
            return False
        for i in ifaces.values():
            self.host_veths.discard(i.host_ifname)
        self.in_use.discard(path)
        return True

    def release_netns(self, path: str, host_ifnames: Sequence[str]) -> None:
        # the kernel takes the veth pairs with the namespace
        for name in host_ifnames:
            self.host_veths.discard(name)
        self.remove_netns(path)

    def netns_in_use(self, path: str) -> bool:
        return path in self.in_use

    def netns_links(self, path: str) -> list[str]:
        return ["lo", *self.netns[path]]

    def attach(self, netns_path: str, iface: Interface) -> None:
        if iface.bridge not in self.bridges:
            raise NetworkDriverError(f"bridge {iface.bridge} does not exist")
        self.netns[netns_path][iface.ifname] = iface
        self.host_veths.add(iface.host_ifname)

    def detach(self, netns_path: str, ifname: str, host_ifname: str) -> None:
        self.netns.get(netns_path, {}).pop(ifname, None)
        self.host_veths.discard(host_ifname)

    def dns_sockets(
        self, netns_path: str, address: str, udp_port: int = 0, tcp_port: int = 0
    ) -> tuple[socket.socket, socket.socket]:
        """Sockets on the host's 127.0.0.1 (not in a namespace) on the asked ports, or others
        when those are taken, as the driver does; remembers what was asked."""
        if netns_path not in self.netns:
            raise NetworkDriverError(f"no namespace {netns_path}")
        self.dns_asked.append((netns_path, address, udp_port, tcp_port))
        out = []
        for kind, port in ((socket.SOCK_DGRAM, udp_port), (socket.SOCK_STREAM, tcp_port)):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.bind(("127.0.0.1", 0))
            out.append(s)
        return out[0], out[1]


class FakeFirewall:
    """L{pyd.engine.networks.FirewallOps}: remembers the last ruleset."""

    table = "pyd_fake"

    def __init__(self) -> None:
        self.rules: Ruleset | None = None
        self.applied = 0
        self.dns_tables: dict[str, tuple[str, int, int]] = {}
        self.host: dict[str, tuple[str, ...]] = {}  # family -> bridges opened in FORWARD
        self.host_chains: set[str] = set()  # families whose filter FORWARD the "host" has

    async def apply(self, rules: Ruleset) -> None:
        self.rules = rules
        self.applied += 1

    async def apply_dns(self, netns_path: str, address: str, udp_port: int, tcp_port: int) -> None:
        self.dns_tables[netns_path] = (address, udp_port, tcp_port)

    async def remove(self) -> None:
        self.rules = None

    async def host_forward(self, family: str, bridges: Sequence[str]) -> bool:
        """Records the bridges when the host has a filter FORWARD of C{family}
        (L{host_chains})."""
        if family not in self.host_chains:
            return False
        if bridges:
            self.host[family] = tuple(bridges)
        else:
            self.host.pop(family, None)
        return True


class FakeProxy:
    """L{pyd.engine.networks.ProxyOps}: remembers what it should serve."""

    def __init__(self) -> None:
        self.wanted: dict[tuple[str, int], tuple[str, int]] = {}
        self.available = True

    def sync(self, wanted: Mapping[tuple[str, int], tuple[str, int]]) -> list[tuple[str, int]]:
        self.wanted = dict(wanted)
        return []


class FakeResolver:
    """L{pyd.engine.networks.ResolverOps}: remembers whom it serves, on the sockets' ports."""

    def __init__(self) -> None:
        self.served: dict[str, tuple[int, int]] = {}

    def serve(self, key: str, udp: socket.socket, tcp: socket.socket) -> tuple[int, int]:
        ports = (udp.getsockname()[1], tcp.getsockname()[1])
        udp.close()
        tcp.close()
        return self.served.setdefault(key, ports)

    def ports(self, key: str) -> tuple[int, int] | None:
        return self.served.get(key)

    def stop(self, key: str) -> Deferred[Any]:
        self.served.pop(key, None)
        return succeed(None)

    def stop_all(self) -> Deferred[Any]:
        self.served.clear()
        return succeed(None)


# mypy checks the fakes against the seams they stand in for
_IS_NETLINK: type[NetlinkOps] = FakeNetlink
_IS_FIREWALL: type[FirewallOps] = FakeFirewall
_IS_RESOLVER: type[ResolverOps] = FakeResolver
_IS_PROXY: type[ProxyOps] = FakeProxy
