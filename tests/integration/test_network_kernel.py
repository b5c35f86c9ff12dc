"""NetworkService on the real kernel: bridges, veths, namespaces, nft port mapping (issue 5).

Traffic goes only to 127.0.0.1 and to addresses on the bridges and namespaces each test made.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from pyd.core.errors import Conflict, Forbidden, SystemError_
from pyd.core.records import IpamPool
from pyd.core.seams import InlineBlocking
from pyd.drivers.network.netlink import NetworkDriverError
from pyd.engine.networks import CreateRequest
from pyd.engine.networks.base import _veth_name
from pyd.engine.spec import EndpointRequest, network_request, parse_endpoint
from tests.helpers.netsvc import (
    NetHarness,
    free_port,
    http_get,
    net_request,
    wait_http,
)
from tests.helpers.sync import run_sync as result

pytestmark = pytest.mark.integration


@pytest.fixture
def net() -> Iterator[NetHarness]:
    h = NetHarness()
    try:
        result(h.service.start())
        yield h
    finally:
        h.close()


def _links() -> str:
    return subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout


def _setup(h: NetHarness, cid: str, name: str, mode: str = "default", **hc: object):
    s = result(
        h.service.setup(cid, name, name, mode, net_request(hc, hc.pop("eps", None)), ["80/tcp"])
    )
    result(h.service.plugged(cid))
    h.set_running(cid, True)
    return s


class _HeldAttaches:
    """The io seam, with each interface attach held until L{go} (the attach runs then, on the
    real kernel): a set-up whose plugging is still under way, as on the daemon's io threads."""

    def __init__(self, attach: Any) -> None:
        self.attach = attach
        self.held: list[tuple[Deferred[Any], tuple[Any, ...]]] = []

    def run(self, fn: Any, *args: Any) -> Deferred[Any]:
        if fn == self.attach:
            d: Deferred[Any] = Deferred()
            self.held.append((d, args))
            return d
        return InlineBlocking().run(fn, *args)

    def go(self, fail: Exception | None = None) -> None:
        while self.held:
            d, args = self.held.pop(0)
            if fail is not None:
                d.errback(fail)
                continue
            try:
                d.callback(self.attach(*args))
            except Exception as e:
                d.errback(e)


class PublishedPortTests:
    """-p maps host ports to a container through nft DNAT, and stop releases them."""

    def test_loopback_and_bridge_address(self, net: NetHarness) -> None:
        """-p 127.0.0.1:P:80 and -p Q:80 answer; after teardown nothing is left."""
        cid = net.add_container("web")
        p1, p2 = free_port(), free_port()
        s = _setup(
            net,
            cid,
            "web",
            PortBindings={"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(p1)}]},
        )
        assert s.netns_path and os.path.exists(s.netns_path)
        ep = s.endpoints[0]
        assert ep.network_name == "bridge" and ep.gateway and ep.ipv4
        assert [(p.host_ip, p.host_port) for p in s.ports] == [("127.0.0.1", p1)]
        net.httpd(s.netns_path, "hello from web")
        assert wait_http("127.0.0.1", p1) == "hello from web"
        # The container is reachable directly on the bridge too.
        assert http_get(ep.ipv4, 80) == "hello from web"
        # A second container with a port published on every local address.
        cid2 = net.add_container("web2")
        s2 = _setup(net, cid2, "web2", PortBindings={"80/tcp": [{"HostPort": str(p2)}]})
        net.httpd(s2.netns_path, "second")
        assert wait_http(ep.gateway, p2) == "second"
        assert wait_http("127.0.0.1", p2) == "second"
        host_if = "veth" in _links()
        assert host_if
        result(net.service.teardown(cid))
        result(net.service.teardown(cid2))
        assert not os.path.exists(s.netns_path)
        with pytest.raises(OSError):
            http_get("127.0.0.1", p1, timeout=1)
        table = subprocess.run(
            ["nft", "list", "table", "ip", net.firewall.table], capture_output=True, text=True
        ).stdout
        assert str(p1) not in table and str(p2) not in table

    def test_udp(self, net: NetHarness) -> None:
        """-p P:53/udp forwards datagrams from 127.0.0.1 and replies come back."""
        import socket
        import sys
        import time

        cid = net.add_container("udp")
        port = free_port()
        s = _setup(net, cid, "udp", PortBindings={"53/udp": [{"HostPort": str(port)}]})
        echo = (
            "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind(('0.0.0.0', 53))\nwhile True:\n d,a=s.recvfrom(512); s.sendto(b'echo:'+d,a)"
        )
        net.spawn(s.netns_path, sys.executable, "-c", echo)
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(0.5)
        got = b""
        try:
            for _ in range(20):
                c.sendto(b"ping", ("127.0.0.1", port))
                try:
                    got = c.recv(64)
                    break
                except OSError:
                    time.sleep(0.1)
        finally:
            c.close()
        assert got == b"echo:ping"

    def test_ephemeral_and_conflict(self, net: NetHarness) -> None:
        """-p 80 gets a port from the ephemeral range; a port in use is refused by name."""
        a, b = net.add_container("a"), net.add_container("b")
        s = _setup(net, a, "a", PortBindings={"80/tcp": [{"HostPort": ""}]})
        port = s.ports[0].host_port
        assert 32768 <= port <= 60999
        with pytest.raises(Conflict, match="port is already allocated"):
            _setup(net, b, "b", PortBindings={"80/tcp": [{"HostPort": str(port)}]})
        # The failed setup left nothing: b has no namespace and no address.
        assert not os.path.exists(net.service.netns_path(b))
        s_all = result(
            net.service.setup(
                b, "b", "b", "default", network_request({"PublishAllPorts": True}), ["81/udp"]
            )
        )
        assert s_all.ports[0].protocol == "udp" and s_all.ports[0].host_port != port


class UserNetworkTests:
    """User-defined bridges: reachability, isolation, internal, connect and disconnect."""

    def test_two_containers_and_isolation(self, net: NetHarness) -> None:
        """Containers on one user network reach each other; the default bridge cannot."""
        n, _ = result(net.service.create(CreateRequest(name="appnet")))
        assert n.bridge and n.bridge in _links()
        a, b, c = net.add_container("a"), net.add_container("b"), net.add_container("c")
        sa = _setup(net, a, "a", "appnet")
        sb = _setup(net, b, "b", "appnet")
        sc = _setup(net, c, "c")
        ip_b = sb.endpoints[0].ipv4
        assert sa.endpoints[0].ipv4 != ip_b
        # The embedded resolver is reached at 127.0.0.11 through the namespace's own table.
        assert sa.dns_servers == ("127.0.0.11",)
        table = net.in_ns(sa.netns_path, "nft", "list", "table", "ip", "pyd_dns").stdout
        port = net.resolver.served[a][0]
        assert f"ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:{port}" in table
        assert net.in_ns(sc.netns_path, "nft", "list", "tables").stdout == ""
        assert "b" in sb.endpoints[0].dns_names
        r = net.in_ns(sa.netns_path, "busybox", "ping", "-c1", "-W2", ip_b)
        assert r.returncode == 0, r.stdout + r.stderr
        r = net.in_ns(sc.netns_path, "busybox", "ping", "-c1", "-W1", ip_b)
        assert r.returncode != 0, "the default bridge must not reach another network"
        with pytest.raises(Forbidden, match="has active endpoints"):
            result(net.service.remove("appnet"))
        result(net.service.teardown(a))
        result(net.service.teardown(b))
        result(net.service.remove("appnet"))
        assert n.bridge not in _links()

    def test_internal_has_no_route_out(self, net: NetHarness) -> None:
        """An --internal network gives no default route."""
        sub = f"{net.pool_base.rsplit('.', 2)[0]}.77.0/24"
        result(
            net.service.create(
                CreateRequest(
                    name="inner", internal=True, pools=(IpamPool(subnet=sub, gateway=""),)
                )
            )
        )
        a = net.add_container("a")
        s = _setup(net, a, "a", "inner")
        routes = net.in_ns(s.netns_path, "ip", "route").stdout
        assert "default" not in routes
        assert s.endpoints[0].ipv4.startswith(sub.rsplit(".", 1)[0])

    def test_connect_and_disconnect_live(self, net: NetHarness) -> None:
        """connect adds eth1 with an address on the new network; disconnect removes it."""
        result(net.service.create(CreateRequest(name="second")))
        a = net.add_container("a")
        s = _setup(net, a, "a")
        result(net.service.connect("second", "a", parse_endpoint({"Aliases": ["db"]})))
        links = net.in_ns(s.netns_path, "ip", "-br", "addr").stdout
        assert "eth1" in links
        eps = result(net.service.container_endpoints(a))
        assert {e.network_name for e in eps} == {"bridge", "second"}
        assert next(e for e in eps if e.network_name == "second").aliases == ("db",)
        view = result(net.service.inspect("second"))
        assert [x[1] for x in view.endpoints] == ["a"]
        with pytest.raises(Forbidden, match="already exists in network second"):
            result(net.service.connect("second", "a", EndpointRequest()))
        result(net.service.disconnect("second", "a"))
        assert "eth1" not in net.in_ns(s.netns_path, "ip", "-br", "link").stdout
        assert ("network", "disconnect") in {(e.type, e.action) for e in net.events.events}

    def test_connect_before_first_start(self, net: NetHarness) -> None:
        """A network connected before the first start is added to, not instead of, the mode's."""
        result(net.service.create(CreateRequest(name="extra")))
        a = net.add_container("a")
        result(net.service.connect("extra", "a", EndpointRequest()))
        s = _setup(net, a, "a")
        assert [e.network_name for e in s.endpoints] == ["bridge", "extra"]
        result(net.service.teardown(a))
        s = _setup(net, a, "a")  # a restart keeps both, still in order
        assert [e.network_name for e in s.endpoints] == ["bridge", "extra"]

    def test_requested_ip_is_never_given_twice(self, net: NetHarness) -> None:
        """--ip is honoured; asking for an address in use fails and changes nothing."""
        sub = f"{net.pool_base.rsplit('.', 2)[0]}.88.0/24"
        prefix = sub.rsplit(".", 1)[0]
        result(net.service.create(CreateRequest(name="fixed", pools=(IpamPool(sub, ""),))))
        a, b = net.add_container("a"), net.add_container("b")
        eps = {"fixed": {"IPAMConfig": {"IPv4Address": f"{prefix}.9"}}}
        s = _setup(net, a, "a", "fixed", eps=eps)
        assert s.endpoints[0].ipv4 == f"{prefix}.9"
        with pytest.raises(Conflict, match="Address already in use"):
            _setup(net, b, "b", "fixed", eps=eps)


class Ipv6Tests:
    """Dual-stack user networks on the real kernel (ULA addresses on the test's own bridge)."""

    def test_dual_stack_reach_and_publish(self, net: NetHarness) -> None:
        """Two containers on an --ipv6 network reach each other over IPv6; a port published on
        all addresses answers at the bridge's IPv6 gateway through the ip6 table's DNAT, and an
        IPv6-only host binding too; teardown leaves no ip6 rule behind."""
        prefix = ipaddress.IPv6Network(
            ((0xFD << 120) | (int.from_bytes(os.urandom(5), "big") << 80), 64)
        )
        net6 = str(prefix)  # canonical text, as the service returns addresses
        gw6 = str(prefix.network_address + 1)
        n, _ = result(
            net.service.create(
                CreateRequest(name="dual", enable_ipv6=True, pools=(IpamPool(net6, ""),))
            )
        )
        a, b = net.add_container("a"), net.add_container("b")
        port, port6 = free_port(), free_port()
        sa = _setup(
            net,
            a,
            "a",
            "dual",
            PortBindings={
                "80/tcp": [
                    {"HostPort": str(port)},
                    {"HostIp": gw6, "HostPort": str(port6)},
                ]
            },
        )
        sb = _setup(net, b, "b", "dual")
        ea, eb = sa.endpoints[0], sb.endpoints[0]
        assert (ea.ipv6, eb.ipv6) == (
            str(prefix.network_address + 2),
            str(prefix.network_address + 3),
        )
        addrs = net.in_ns(sa.netns_path, "ip", "-6", "addr", "show", "eth0").stdout
        assert f"{ea.ipv6}/64" in addrs
        routes = net.in_ns(sa.netns_path, "ip", "-6", "route").stdout
        assert f"default via {gw6} dev eth0" in routes
        r = net.in_ns(sb.netns_path, "busybox", "ping", "-6", "-c1", "-W2", ea.ipv6)
        assert r.returncode == 0, r.stdout + r.stderr
        net.httpd(sa.netns_path, "hello-v6")
        assert wait_http(ea.ipv6, 80) == "hello-v6"  # straight to the container, host -> bridge
        assert wait_http(gw6, port) == "hello-v6"  # published, through the ip6 DNAT
        assert wait_http(gw6, port6) == "hello-v6"
        table = subprocess.run(
            ["nft", "list", "table", "ip6", net.firewall.table], capture_output=True, text=True
        ).stdout
        assert f"dnat to [{ea.ipv6}]:80" in table
        result(net.service.teardown(a))
        result(net.service.teardown(b))
        table = subprocess.run(
            ["nft", "list", "table", "ip6", net.firewall.table], capture_output=True, text=True
        ).stdout
        assert "dnat to" not in table
        result(net.service.remove("dual"))
        assert n.bridge not in _links()


class ReconcileTests:
    """A restart after kill -9 keeps live containers' networking and drops the rest."""

    def test_restart_cleans_stale(self, net: NetHarness) -> None:
        """Endpoints whose namespace has no process are released; live ones stay."""
        result(net.service.create(CreateRequest(name="rn")))
        live, dead = net.add_container("live"), net.add_container("dead")
        p = free_port()
        sl = _setup(net, live, "live", "rn", PortBindings={"80/tcp": [{"HostPort": str(p)}]})
        sd = _setup(net, dead, "dead", "rn")
        net.httpd(sl.netns_path, "still here")
        assert wait_http("127.0.0.1", p) == "still here"
        # "kill -9": forget the service; wipe the table as if the host had flushed it.
        subprocess.run(["nft", "delete", "table", "ip", net.firewall.table], check=True)
        net.service = net.new_service()
        result(net.service.start())
        assert not os.path.exists(sd.netns_path)
        assert os.path.exists(sl.netns_path)
        assert wait_http("127.0.0.1", p) == "still here"
        active = {a.container_id for a in net.service._active}
        assert active == {live}


class PluggingTests:
    """A starting container's interfaces are plugged in the background: the set-up returns
    with its addresses, L{plugged} waits for them (and raises what plugging failed with), and
    a tear-down waits for a plugging under way before it undoes it."""

    def test_setup_returns_before_the_interfaces(self, net: NetHarness) -> None:
        seam = _HeldAttaches(net.service._nl.attach)
        net.service._io = seam
        cid = net.add_container("early")
        s = result(net.service.setup(cid, "early", "early", "default", net_request({}), []))
        assert os.path.exists(s.netns_path) and s.endpoints[0].ipv4
        assert len(seam.held) == 1  # the veth is not made yet
        waiting = Deferred.fromCoroutine(net.service.plugged(cid))
        assert not waiting.called
        seam.go()
        result(waiting)
        links = net.netlink.netns_links(s.netns_path)
        assert "eth0" in links
        result(net.service.teardown(cid))
        assert not os.path.exists(s.netns_path)

    def test_failure_is_the_starts_and_the_teardown_cleans(self, net: NetHarness) -> None:
        seam = _HeldAttaches(net.service._nl.attach)
        net.service._io = seam
        cid = net.add_container("bad")
        s = result(net.service.setup(cid, "bad", "bad", "default", net_request({}), []))
        waiting = Deferred.fromCoroutine(net.service.plugged(cid))
        seam.go(NetworkDriverError("configuring eth0: no buffer space"))
        with pytest.raises(SystemError_, match="no buffer space"):
            result(waiting)
        result(net.service.teardown(cid))
        assert not os.path.exists(s.netns_path)
        assert cid not in {a.container_id for a in net.service._active}

    def test_teardown_waits_for_the_plugging(self, net: NetHarness) -> None:
        """A start that fails elsewhere while its interfaces are being plugged: the tear-down
        lets the plugging end first, then removes what it made (no veth is left behind)."""
        seam = _HeldAttaches(net.service._nl.attach)
        net.service._io = seam
        cid = net.add_container("cut")
        s = result(net.service.setup(cid, "cut", "cut", "default", net_request({}), []))
        host_if = _veth_name(cid, s.endpoints[0].network_id)
        tearing = Deferred.fromCoroutine(net.service.teardown(cid))
        assert not tearing.called  # waits for the plugging
        seam.go()
        result(tearing)
        assert not os.path.exists(s.netns_path)
        assert host_if not in _links()


class RemoveReleaseTests:
    """On `rm`, a container that holds nothing (stopped, or never started) costs no teardown;
    one that still holds a namespace or endpoints is torn down in full (issue 21)."""

    def test_release_of_a_running_container_tears_it_down(self, net: NetHarness) -> None:
        """A running container's rm -f path: the namespace, its veth and its address go."""
        cid = net.add_container("web")
        s = _setup(net, cid, "web")
        assert os.path.exists(s.netns_path)
        result(net.service.release(cid))
        assert not os.path.exists(s.netns_path)
        assert cid not in {a.container_id for a in net.service._active}

    def test_leftover_namespace_is_removed(self, net: NetHarness) -> None:
        """A pinned namespace with no endpoint (a start cut short, say) is still unpinned."""
        cid = net.add_container("half")
        path = net.service.netns_path(cid)
        net.netlink.create_netns(path)
        try:
            assert os.path.exists(path)
            result(net.service.release(cid))
            assert not os.path.exists(path)
        finally:
            net.netlink.remove_netns(path)

    def test_stopped_container_holds_nothing(self, net: NetHarness) -> None:
        """After the stop's teardown, the release finds nothing to do and changes nothing."""
        cid = net.add_container("stopped")
        s = _setup(net, cid, "stopped")
        result(net.service.teardown(cid))
        net.set_running(cid, False)
        assert not os.path.exists(s.netns_path)
        assert net.service._holds_nothing(cid)
        result(net.service.release(cid))

    def test_released_veth_name_is_usable_at_once(self, net: NetHarness) -> None:
        """A stop releases the namespace without waiting for its veth to be destroyed; the
        same container started again at once gets the same host interface name, which the
        driver frees first (EEXIST) instead of failing. The released host end is down as soon
        as the release returns. (A descriptor keeps the old namespace, and so the old pair,
        alive: the name is certainly still taken at the second attach.)"""
        from pyd.drivers.network.netlink import Interface

        nl = net.netlink
        host_if = "pydtv" + os.urandom(4).hex()
        paths = [os.path.join(net.exec_root, "netns", f"t{i}") for i in range(2)]
        iface = Interface(net.bridge, host_if, "eth0", "", 0, "02:42:0a:00:00:09", None)
        held = -1
        try:
            nl.create_netns(paths[0])
            nl.attach(paths[0], iface)
            held = os.open(paths[0], os.O_RDONLY)
            nl.release_netns(paths[0], [host_if])
            state = subprocess.run(
                ["ip", "-br", "link", "show", host_if], capture_output=True, text=True
            ).stdout
            assert host_if in state and " UP " not in state, state
            nl.create_netns(paths[1])
            nl.attach(paths[1], iface)
            assert "eth0@" in net.in_ns(paths[1], "ip", "-br", "link").stdout
        finally:
            if held >= 0:
                os.close(held)
            for p in paths:
                nl.remove_netns(p)
            nl.delete_link(host_if)
