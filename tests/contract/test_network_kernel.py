"""Contract of the network kernel seam (L{pyd.engine.networks.NetlinkOps}): what networking
relies on from bridges, namespaces and veths, run against the fake (always) and, under the
integration marker, the real netlink driver (root, real kernel objects with unique names,
removed afterwards). A behaviour the fake shows and the driver does not (or the reverse) fails
here, not in a test that trusted the fake.

Nothing here sends traffic; the real run creates a bridge with an address in a 10.2xx.y.0/24
that no host route covers, namespaces under a temporary directory, and veths on that bridge.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from pyd.drivers.network.netlink import Interface, NetlinkDriver
from pyd.engine.networks import NetlinkOps
from tests.fakes.network import FakeNetlink
from tests.helpers.daemon import _free_bip


class Kernel:
    """One driver under test, with the names it may create and what to remove afterwards."""

    def __init__(self, ops: NetlinkOps, root: str) -> None:
        self.ops = ops
        self.root = root
        tag = secrets.token_hex(3)
        self.bridge = "pydc" + tag
        self.veth_prefix = "vc" + tag
        gateway, _, prefix = _free_bip().partition("/")
        self.gateway = gateway
        self.prefixlen = int(prefix)
        self.namespaces: list[str] = []

    def netns(self, name: str) -> str:
        path = os.path.join(self.root, "netns", name)
        self.namespaces.append(path)
        return path

    def iface(self, n: int) -> Interface:
        net = ipaddress.ip_network(f"{self.gateway}/{self.prefixlen}", strict=False)
        return Interface(
            bridge=self.bridge,
            host_ifname=f"{self.veth_prefix}h{n}",
            ifname="eth0",
            address=str(net.network_address + 10 + n),
            prefixlen=self.prefixlen,
            mac=f"02:42:0a:00:00:{n:02x}",
            gateway=self.gateway,
        )

    def cleanup(self) -> None:
        for path in self.namespaces:
            self.ops.remove_netns(path)
        for n in range(4):
            self.ops.delete_link(f"{self.veth_prefix}h{n}")
        self.ops.delete_link(self.bridge)


def _fake() -> Iterator[Kernel]:
    root = tempfile.mkdtemp(prefix="pyd-contract-net-")
    k = Kernel(FakeNetlink(), root)
    try:
        yield k
    finally:
        k.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def _real() -> Iterator[Kernel]:
    if os.geteuid() != 0:
        pytest.skip("the real netlink driver needs root")
    root = tempfile.mkdtemp(prefix="pyd-contract-net-")
    k = Kernel(NetlinkDriver(), root)
    try:
        yield k
    finally:
        k.cleanup()
        netns_dir = os.path.join(root, "netns")
        if os.path.isdir(netns_dir):
            subprocess.run(["umount", "-l", netns_dir], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.integration)])
def kernel(request: pytest.FixtureRequest) -> Iterator[Kernel]:
    yield from (_fake() if request.param == "fake" else _real())


def test_bridge_created_once_and_deleted_once(kernel: Kernel) -> None:
    """ensure_bridge says whether it created the bridge; delete_link whether it existed."""
    ops = kernel.ops
    assert not ops.link_exists(kernel.bridge)
    assert ops.ensure_bridge(kernel.bridge, kernel.gateway, kernel.prefixlen, 1500) is True
    assert ops.ensure_bridge(kernel.bridge, kernel.gateway, kernel.prefixlen, 1500) is False
    assert ops.link_exists(kernel.bridge)
    assert kernel.bridge in {link.name for link in ops.links()}
    assert ops.delete_link(kernel.bridge) is True
    assert ops.delete_link(kernel.bridge) is False
    assert not ops.link_exists(kernel.bridge)


def test_bridge_subnet_is_routed(kernel: Kernel) -> None:
    """The bridge's subnet shows in routes() once it has its gateway (IPAM avoids it)."""
    ops = kernel.ops
    subnet = ipaddress.ip_network(f"{kernel.gateway}/{kernel.prefixlen}", strict=False)
    assert subnet not in ops.routes()
    ops.ensure_bridge(kernel.bridge, kernel.gateway, kernel.prefixlen, 1500)
    assert subnet in ops.routes()


def test_namespace_lifecycle(kernel: Kernel) -> None:
    """A new namespace has only lo; it is not in use without a process; removal is idempotent."""
    ops = kernel.ops
    path = kernel.netns("c1")
    ops.create_netns(path)
    assert ops.netns_links(path) == ["lo"]
    assert ops.netns_in_use(path) is False
    assert ops.remove_netns(path) is True
    assert ops.remove_netns(path) is False


def test_veth_attach_and_detach(kernel: Kernel) -> None:
    """attach puts ifname in the namespace and the host end on the host; detach removes both."""
    ops = kernel.ops
    ops.ensure_bridge(kernel.bridge, kernel.gateway, kernel.prefixlen, 1500)
    path = kernel.netns("c2")
    ops.create_netns(path)
    iface = kernel.iface(1)
    ops.attach(path, iface)
    assert sorted(ops.netns_links(path)) == ["eth0", "lo"]
    assert ops.link_exists(iface.host_ifname)
    ops.detach(path, iface.ifname, iface.host_ifname)
    assert ops.netns_links(path) == ["lo"]
    assert not ops.link_exists(iface.host_ifname)


def test_namespace_then_host_veth_removed(kernel: Kernel) -> None:
    """What reconciliation does for a container that died while the daemon was down: remove
    its namespace, then its host veth; nothing is left. (The kernel destroys a namespace's
    interfaces asynchronously, so the host end may or may not still exist in between: callers
    delete it themselves, and delete_link answers whether it was still there.)"""
    ops = kernel.ops
    ops.ensure_bridge(kernel.bridge, kernel.gateway, kernel.prefixlen, 1500)
    path = kernel.netns("c3")
    ops.create_netns(path)
    iface = kernel.iface(2)
    ops.attach(path, iface)
    assert ops.remove_netns(path) is True
    ops.delete_link(iface.host_ifname)
    assert not ops.link_exists(iface.host_ifname)


def test_dual_stack_bridge_and_attach(kernel: Kernel) -> None:
    """A bridge given an IPv6 gateway too: its IPv6 subnet shows in routes() (IPAM avoids it);
    a dual-stack interface attaches and detaches as an IPv4 one does."""
    ops = kernel.ops
    net6 = ipaddress.IPv6Network(f"fd{secrets.token_hex(1)}:{secrets.token_hex(2)}:7::/64")
    gw6 = str(net6.network_address + 1)
    assert net6 not in ops.routes()
    ops.ensure_bridge(kernel.bridge, kernel.gateway, kernel.prefixlen, 1500, gw6, 64)
    assert (
        ops.ensure_bridge(kernel.bridge, kernel.gateway, kernel.prefixlen, 1500, gw6, 64) is False
    )
    assert net6 in ops.routes()
    path = kernel.netns("c4")
    ops.create_netns(path)
    iface = attrs.evolve(
        kernel.iface(3), address6=str(net6.network_address + 2), prefixlen6=64, gateway6=gw6
    )
    ops.attach(path, iface)
    assert sorted(ops.netns_links(path)) == ["eth0", "lo"]
    ops.detach(path, iface.ifname, iface.host_ifname)
    assert ops.netns_links(path) == ["lo"]


@pytest.fixture
def real_kernel() -> Iterator[Kernel]:
    yield from _real()


def _ip_json(*args: str, netns: str | None = None) -> Any:
    cmd = ["ip", "-j", "-d", *args]
    if netns is not None:
        cmd = ["nsenter", f"--net={netns}", *cmd]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


@pytest.mark.integration
def test_attached_interface_as_ip_sees_it(real_kernel: Kernel) -> None:
    """What the driver's own rtnetlink requests (pyd.drivers.network.rtnl) leave, as ip shows
    it: the named, addressed interface up in the namespace with its MAC and MTU, IPv4 addresses
    without a broadcast address, the IPv6 one without duplicate detection, static default
    routes for both families, and the host end up on the bridge, forwarding, hairpin off (as
    pyroute2 configured it before, and as dockerd with its userland proxy does)."""
    k = real_kernel
    ops = k.ops
    net6 = ipaddress.IPv6Network(f"fd{secrets.token_hex(1)}:{secrets.token_hex(2)}:9::/64")
    gw6 = str(net6.network_address + 1)
    ops.ensure_bridge(k.bridge, k.gateway, k.prefixlen, 1500, gw6, 64)
    path = k.netns("c5")
    ops.create_netns(path)
    extra = str(ipaddress.ip_address(k.gateway) + 50)
    iface = attrs.evolve(
        k.iface(3),
        address6=str(net6.network_address + 2),
        prefixlen6=64,
        gateway6=gw6,
        mtu=1400,
        extra=((extra, k.prefixlen),),
    )
    ops.attach(path, iface)
    (lo,) = [x for x in _ip_json("link", netns=path) if x["ifname"] == "lo"]
    assert "UP" in lo["flags"]
    (eth0,) = [x for x in _ip_json("addr", netns=path) if x["ifname"] == "eth0"]
    assert eth0["address"] == iface.mac and eth0["mtu"] == 1400
    assert eth0["operstate"] == "UP"
    v4 = [(a["local"], a["prefixlen"], a.get("broadcast")) for a in eth0["addr_info"]
          if a["family"] == "inet"]  # fmt: skip
    assert v4 == [(iface.address, k.prefixlen, None), (extra, k.prefixlen, None)]
    (v6,) = [a for a in eth0["addr_info"] if a["family"] == "inet6" and a["scope"] == "global"]
    assert (v6["local"], v6["prefixlen"], v6.get("nodad")) == (iface.address6, 64, True)
    for family, gateway in (("-4", k.gateway), ("-6", gw6)):
        (default,) = [r for r in _ip_json(family, "route", netns=path) if r["dst"] == "default"]
        assert (default["gateway"], default["dev"]) == (gateway, "eth0")
        assert default["protocol"] == "static" and default["type"] == "unicast"
    (host,) = _ip_json("link", "show", iface.host_ifname)
    assert host["master"] == k.bridge and host["operstate"] == "UP" and host["mtu"] == 1400
    port = host["linkinfo"]["info_slave_data"]
    assert port["state"] == "forwarding" and port["hairpin"] is False
    ops.detach(path, iface.ifname, iface.host_ifname)
    assert not ops.link_exists(iface.host_ifname)


@pytest.mark.integration
def test_attach_refusals_are_driver_errors(real_kernel: Kernel) -> None:
    """A missing bridge, and an address the namespace already has, fail as
    NetworkDriverError naming the interface, and leave no host end behind."""
    from pyd.drivers.network.netlink import NetworkDriverError

    k = real_kernel
    ops = k.ops
    path = k.netns("c6")
    ops.create_netns(path)
    iface = k.iface(2)
    with pytest.raises(NetworkDriverError, match=f"bridge {k.bridge} does not exist"):
        ops.attach(path, iface)
    ops.ensure_bridge(k.bridge, k.gateway, k.prefixlen, 1500)
    bad = attrs.evolve(iface, extra=((iface.address, k.prefixlen),))  # the same address twice
    with pytest.raises(NetworkDriverError, match="configuring eth0"):
        ops.attach(path, bad)
    assert not ops.link_exists(iface.host_ifname)
