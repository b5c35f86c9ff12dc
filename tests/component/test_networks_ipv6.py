"""IPv6 networks in memory: the real router, NetworkService and IPAM over the schema at head,
fake kernel drivers. What dockerd 28 does: `--ipv6` networks are dual-stack, an IPv6 subnet asked
for or a /64 of the default pools' IPv6 entries (without any: a /48 ULA prefix derived from the
daemon's id), sequential IPv6 addresses, `--ip6`, and the inspect fields.
"""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Any

import attrs
from sqlalchemy import insert
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.networks import NetworksRouter
from pyd.api.root import ApiRoot
from pyd.core.seams import InlineBlocking
from pyd.engine.networks import NetworkConfig, NetworkService, default_bridge_name
from pyd.engine.networks.ipam import ula_base
from pyd.engine.spec.records import EndpointRequest
from pyd.state.models import ContainerRow
from pyd.state.networks import NetworkRepository
from tests.component.test_networks_api import _tmpfile
from tests.fakes.events import FakeEvents
from tests.fakes.network import FakeFirewall, FakeNetlink, FakeProxy, FakeResolver
from tests.helpers.memdb import memory_db
from tests.helpers.netsvc import ContainerRef, Containers, net_request
from tests.helpers.sync import run_sync

HOST_ID = "499d4bc0-b0b3-416f-b1ee-cf6486315593"


class UlaBaseTests(SynchronousTestCase):
    """dockerd 28's per-host ULA base pool (moby daemon_test.go TestDeriveULABaseNetwork)."""

    def test_moby_vectors(self) -> None:
        """The two prefixes moby's own test expects, for an empty id and a UUID."""
        self.assertEqual(ula_base(""), "fd42:98fc:1c14::/48")
        self.assertEqual(ula_base(HOST_ID), "fd62:fb69:18af::/48")

    def test_shape(self) -> None:
        """Always a /48 inside fd00::/8, different for different ids."""
        seen = set()
        for i in range(50):
            net = ipaddress.IPv6Network(ula_base(f"host-{i}"))
            self.assertEqual(net.prefixlen, 48)
            self.assertTrue(net.subnet_of(ipaddress.IPv6Network("fd00::/8")))
            seen.add(net)
        self.assertEqual(len(seen), 50)


class Ipv6NetworkTests(SynchronousTestCase):
    """Create, inspect, endpoints and names of networks with IPv6."""

    pools: tuple[tuple[str, int], ...] = ()
    ipv6_default_bridge = False

    def setUp(self) -> None:
        self.db = memory_db(alembic=True)
        self.netlink = FakeNetlink()
        self.firewall = FakeFirewall()
        self.proxy = FakeProxy()
        self.containers = Containers()
        resolv = _tmpfile(self)
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.53\n")
        self.exec_root = os.path.join(os.path.dirname(resolv), "exec")
        self.service = NetworkService(
            NetworkRepository(self.db),
            self.netlink,
            self.firewall,
            FakeResolver(),
            InlineBlocking(),
            FakeEvents(),
            NetworkConfig(
                exec_root=self.exec_root,
                resolv_conf=resolv,
                default_address_pools=self.pools,
                ipv6=self.ipv6_default_bridge,
                ip_forward=True,
                userland_proxy=True,
            ),
            lookup=self.containers,
            can_bind=lambda ip, port, proto: True,
            host_id=lambda: HOST_ID,
            proxy=self.proxy,
        )
        run_sync(self.service.start())
        self.http = StubTreq(ApiRoot([NetworksRouter(self.service)]))

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        kw: dict[str, Any] = {}
        if body is not None:
            kw["data"] = json.dumps(body).encode()
            kw["headers"] = {"Content-Type": "application/json"}
        resp = self.successResultOf(self.http.request(method, "http://pyd/v1.50" + path, **kw))
        raw = self.successResultOf(resp.content())
        return resp.code, (json.loads(raw) if raw.strip() else None)

    def create(
        self, name: str, *config: dict[str, str], ipv6: bool = True, **more: Any
    ) -> dict[str, Any]:
        """POST /networks/create (C{more}: further body fields), then its inspect."""
        body: dict[str, Any] = {"Name": name, "EnableIPv6": ipv6, **more}
        if config:
            body["IPAM"] = {"Config": list(config)}
        code, out = self.call("POST", "/networks/create", body)
        self.assertEqual(code, 201, out)
        code, n = self.call("GET", "/networks/" + name)
        self.assertEqual(code, 200)
        return n  # type: ignore[no-any-return]

    def add_container(self, name: str) -> str:
        cid = (name.encode().hex() + "0" * 64)[:64]
        with self.db.engine.begin() as conn:
            conn.execute(
                insert(ContainerRow).values(
                    id=cid, name="/" + name, image_id="i", image_ref="i", created=0,
                    status="running", config={}, host_config={}, state={},
                    network_settings={}, mounts=[], restart_count=0, extra={},
                )
            )  # fmt: skip
        self.containers.refs[cid] = ContainerRef(cid, name, True, "default")
        return cid

    def start(self, name: str, network: str, ipam: dict[str, str] | None = None) -> Any:
        cid = self.add_container(name)
        eps = {network: {"IPAMConfig": ipam}} if ipam else {}
        return run_sync(self.service.setup(cid, name, name, network, net_request(None, eps), []))

    # -- create ------------------------------------------------------------------------------

    def test_subnet_asked_for(self) -> None:
        """--ipv6 --subnet: the IPv6 subnet with its first address as gateway (on the bridge,
        with the IPv4 one), then (moby's buildIPAMResources: asked for first) IPv4 from the
        default pools; EnableIPv6 true; IPv6 forwarding turned on (ip-forward)."""
        n = self.create("v6", {"Subnet": "fd00:db8:1::/64"})
        self.assertTrue(n["EnableIPv6"])
        config = n["IPAM"]["Config"]
        self.assertEqual(len(config), 2)
        self.assertEqual(config[0], {"Subnet": "fd00:db8:1::/64", "Gateway": "fd00:db8:1::1"})
        self.assertNotIn(":", config[1]["Subnet"])
        self.assertEqual(self.netlink.bridges6["br-" + n["Id"][:12]], ("fd00:db8:1::1", 64))
        self.assertTrue(self.netlink.ipv6_forward)

    def test_gateway_and_both_families_asked_for(self) -> None:
        """Both subnets given, an IPv6 gateway of the caller's choosing."""
        n = self.create(
            "v6",
            {"Subnet": "10.77.0.0/24"},
            {"Subnet": "fd00:db8:2::/64", "Gateway": "fd00:db8:2::fe"},
        )
        self.assertEqual(
            n["IPAM"]["Config"],
            [
                {"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.1"},
                {"Subnet": "fd00:db8:2::/64", "Gateway": "fd00:db8:2::fe"},
            ],
        )

    def test_derived_ula_pool(self) -> None:
        """--ipv6 without a subnet: consecutive /64s of the host's derived /48."""
        a = self.create("a")["IPAM"]["Config"][1]
        b = self.create("b")["IPAM"]["Config"][1]
        self.assertEqual(a, {"Subnet": "fd62:fb69:18af::/64", "Gateway": "fd62:fb69:18af::1"})
        self.assertEqual(b["Subnet"], "fd62:fb69:18af:1::/64")

    def test_ipv6_subnet_without_ipv6_is_ignored(self) -> None:
        """dockerd's validateIpamConfig skips IPv6 entries of a network without IPv6."""
        n = self.create("v4", {"Subnet": "fd00:db8:3::/64"}, ipv6=False)
        self.assertFalse(n["EnableIPv6"])
        self.assertEqual([":" in c["Subnet"] for c in n["IPAM"]["Config"]], [False])
        self.assertNotIn("br-" + n["Id"][:12], self.netlink.bridges6)

    def test_bad_requests(self) -> None:
        """Overlap, host bits, a gateway or auxiliary address outside: 4xx, nothing made."""
        self.create("one", {"Subnet": "fd00:db8:4::/64"})
        cases = [
            ({"Subnet": "fd00:db8:4::/80"}, 403, "Pool overlaps with other one"),
            ({"Subnet": "fd00:db8:5::1/64"}, 400, "has host bits set"),
            ({"Subnet": "fd00:db8:6::/64", "Gateway": "fd00:db8:7::1"}, 400, "invalid gateway"),
            ({"Subnet": "fd00:db8:6::/64", "Gateway": "10.0.0.1"}, 400, "invalid gateway"),
            (
                {"Subnet": "fd00:db8:6::/64", "AuxiliaryAddresses": {"x": "fd00:db8:9::5"}},
                400,
                "invalid auxiliary address x",
            ),
        ]
        for cfg, status, text in cases:
            code, out = self.call(
                "POST",
                "/networks/create",
                {"Name": "bad", "EnableIPv6": True, "IPAM": {"Config": [cfg]}},
            )
            self.assertEqual((code, text in out["message"]), (status, True), (cfg, out))
        code, _ = self.call("GET", "/networks/bad")
        self.assertEqual(code, 404)

    def test_enable_ipv6_driver_option(self) -> None:
        """Without EnableIPv6, the com.docker.network.enable_ipv6 option says it (network.go)."""
        code, out = self.call(
            "POST",
            "/networks/create",
            {"Name": "opt", "Options": {"com.docker.network.enable_ipv6": "true"}},
        )
        self.assertEqual(code, 201, out)
        self.assertTrue(self.call("GET", "/networks/opt")[1]["EnableIPv6"])
        code, out = self.call(
            "POST",
            "/networks/create",
            {"Name": "opt2", "Options": {"com.docker.network.enable_ipv6": "maybe"}},
        )
        self.assertEqual(code, 400)
        self.assertIn("com.docker.network.enable_ipv6", out["message"])

    # -- endpoints ---------------------------------------------------------------------------

    def test_dual_stack_endpoints(self) -> None:
        """Sequential IPv6 addresses after the gateway, --ip6 honoured, the interface and the
        inspect fields carry both families; the firewall gets the IPv6 subnet."""
        self.create("v6", {"Subnet": "fd00:db8:10::/64"})
        s1 = self.start("c1", "v6")
        s2 = self.start("c2", "v6", {"IPv6Address": "fd00:db8:10::99"})
        e1, e2 = s1.endpoints[0], s2.endpoints[0]
        self.assertEqual(
            (e1.ipv6, e1.ipv6_prefixlen, e1.ipv6_gateway), ("fd00:db8:10::2", 64, "fd00:db8:10::1")
        )
        self.assertEqual(e2.ipv6, "fd00:db8:10::99")
        self.assertTrue(e1.ipv4)
        iface = self.netlink.netns[s1.netns_path]["eth0"]
        self.assertEqual(
            (iface.address6, iface.prefixlen6, iface.gateway6),
            ("fd00:db8:10::2", 64, "fd00:db8:10::1"),
        )
        code, n = self.call("GET", "/networks/v6")
        self.assertEqual(code, 200)
        self.assertEqual(
            sorted(c["IPv6Address"] for c in n["Containers"].values()),
            ["fd00:db8:10::2/64", "fd00:db8:10::99/64"],
        )
        assert self.firewall.rules is not None
        self.assertIn("fd00:db8:10::/64", {b.subnet6 for b in self.firewall.rules.bridges})
        # Names: A first, then AAAA; reverse for the IPv6 address.
        cid1 = s1.netns_path.rsplit("/", 1)[1]
        found = self.service.lookup_name(cid1, "c2")
        self.assertEqual(found, [e2.ipv4, "fd00:db8:10::99"])
        self.assertEqual(self.service.reverse_name(cid1, "fd00:db8:10::99"), "c2.v6")

    def test_requested_ipv6_checked(self) -> None:
        """--ip6 outside the subnet, not IPv6, or on a network without IPv6: dockerd's 400s; an
        address in use: 409; the address is free again once its container is gone."""
        self.create("v6", {"Subnet": "fd00:db8:11::/64"})
        self.create("plain", ipv6=False)
        s = self.start("c1", "v6", {"IPv6Address": "fd00:db8:11::5"})
        cases = [
            ("v6", "fd00:db8:12::5", "no configured subnet contains IP address fd00:db8:12::5"),
            ("v6", "10.0.0.5", "invalid IPv6 address: 10.0.0.5"),
            ("plain", "fd00:db8:11::6", "no configured subnet contains IP address"),
            ("bridge", "fd00:db8:11::6", "user specified IP address is supported on user defined"),
        ]
        for net, addr, text in cases:
            cid = self.add_container(f"x{len(self.containers.refs)}")
            f = self.failureResultOf(
                Deferred.fromCoroutine(
                    self.service.validate(
                        cid, net, net_request(None, {net: {"IPAMConfig": {"IPv6Address": addr}}})
                    )
                )
            )
            self.assertIn(text, str(f.value), (net, addr))
        cid = self.add_container("dup")
        f = self.failureResultOf(
            Deferred.fromCoroutine(
                self.service.setup(
                    cid, "dup", "dup", "v6",
                    net_request(None, {"v6": {"IPAMConfig": {"IPv6Address": "fd00:db8:11::5"}}}),
                    [],
                )
            )
        )  # fmt: skip
        self.assertIn("Address already in use: fd00:db8:11::5", str(f.value))
        first = s.netns_path.rsplit("/", 1)[1]
        run_sync(self.service.release(first))
        again = self.start("c3", "v6", {"IPv6Address": "fd00:db8:11::5"})
        self.assertEqual(again.endpoints[0].ipv6, "fd00:db8:11::5")

    def test_published_port_shown_per_family(self) -> None:
        """C{-p 8080:80} is shown as dockerd 28 shows it with its userland proxy: 0.0.0.0 and
        ::, served by the ip6 rules for a container with an IPv6 address and by the proxy for an
        IPv4-only one; an address given is shown alone. The proxy serves [::1] (NAT cannot)
        and, for the IPv4-only container, [::] as a whole; without the proxy (or with
        userland-proxy false, or on a host without IPv6) an IPv4-only container has no ::
        binding."""
        self.create("v6", {"Subnet": "fd00:db8:13::/64"})
        self.create("plain", ipv6=False)

        def shown(name: str, network: str, bindings: list[dict[str, str]]) -> list[tuple[str, int]]:
            cid = self.add_container(name)
            req = net_request({"PortBindings": {"80/tcp": bindings}}, {})
            setup = run_sync(self.service.setup(cid, name, name, network, req, []))
            return [(p.host_ip, p.host_port) for p in setup.ports]

        self.assertEqual(
            shown("d1", "v6", [{"HostPort": "18080"}]), [("0.0.0.0", 18080), ("::", 18080)]
        )
        self.assertEqual(
            shown("p1", "plain", [{"HostPort": "18081"}]), [("0.0.0.0", 18081), ("::", 18081)]
        )
        self.assertEqual(
            shown("d2", "v6", [{"HostIp": "127.0.0.1", "HostPort": "18082"}]),
            [("127.0.0.1", 18082)],
        )
        d1, p1 = (
            next(a for a in self.service._active if a.container_id.startswith(name.encode().hex()))
            for name in ("d1", "p1")
        )
        self.assertEqual(
            self.proxy.wanted,
            {("::1", 18080): (d1.ipv6, 80), ("::", 18081): (str(p1.ipv4), 80)},
        )
        self.service.config = attrs.evolve(self.service.config, userland_proxy=False)
        self.assertEqual(shown("p2", "plain", [{"HostPort": "18083"}]), [("0.0.0.0", 18083)])
        self.service.config = attrs.evolve(self.service.config, userland_proxy=True)
        self.proxy.available = False  # a host without IPv6: nothing to serve on ::
        self.assertEqual(shown("p3", "plain", [{"HostPort": "18084"}]), [("0.0.0.0", 18084)])
        self.proxy.available = True
        run_sync(self.service.stop())
        self.assertEqual(self.proxy.wanted, {})

    def pin(self, netns_path: str) -> None:
        """A file where the fake namespace is "pinned" (a live connect looks for it)."""
        os.makedirs(os.path.dirname(netns_path), exist_ok=True)
        open(netns_path, "w").close()

    def test_ipv6_default_route_from_a_later_network(self) -> None:
        """An IPv4-only first network gives the IPv4 default route and a later dual-stack one
        the IPv6 one (moby >= 26 chooses each family's gateway separately), at start and on a
        live connect."""
        self.create("v6", {"Subnet": "fd00:db8:14::/64"})
        self.create("v6b", {"Subnet": "fd00:db8:15::/64"})
        self.create("plain", ipv6=False)
        cid = self.add_container("c1")
        req = net_request(None, {"plain": {}, "v6": {}})
        s = run_sync(self.service.setup(cid, "c1", "c1", "plain", req, []))
        ifs = self.netlink.netns[s.netns_path]
        self.pin(s.netns_path)
        self.assertEqual((bool(ifs["eth0"].gateway), ifs["eth0"].gateway6), (True, None))
        self.assertEqual((ifs["eth1"].gateway, ifs["eth1"].gateway6), (None, "fd00:db8:14::1"))
        # A second dual-stack network connected live: the IPv6 route is there already.
        run_sync(self.service.connect("v6b", "c1", EndpointRequest()))
        self.assertEqual((ifs["eth2"].gateway, ifs["eth2"].gateway6), (None, None))
        # An IPv4-only container connected to a dual-stack network gets its IPv6 route.
        cid2 = self.add_container("c2")
        s2 = run_sync(self.service.setup(cid2, "c2", "c2", "plain", net_request(None, {}), []))
        self.pin(s2.netns_path)
        run_sync(self.service.connect("v6", "c2", EndpointRequest()))
        ifs2 = self.netlink.netns[s2.netns_path]
        self.assertEqual((ifs2["eth1"].gateway, ifs2["eth1"].gateway6), (None, "fd00:db8:14::1"))

    def test_link_local_ips(self) -> None:
        """IPAMConfig.LinkLocalIPs become more addresses of the interface (IPv4 /16, IPv6 /64);
        one that is not an address or not link-local fails the start with dockerd's texts."""
        self.create("plain", ipv6=False)
        s = self.start("c1", "plain", {"LinkLocalIPs": ["169.254.9.9", "fe80::9"]})  # type: ignore[dict-item]  # a list, as the wire has it
        iface = self.netlink.netns[s.netns_path]["eth0"]
        self.assertEqual(iface.extra, (("169.254.9.9", 16), ("fe80::9", 64)))
        for ips, text in (
            (["nope", "169.254.1.1"], "Invalid link-local IP address: [nope 169.254.1.1]"),
            (["10.0.0.1"], "invalid link local IP address: 10.0.0.1"),
        ):
            cid = self.add_container(f"x{len(self.containers.refs)}")
            req = net_request(None, {"plain": {"IPAMConfig": {"LinkLocalIPs": ips}}})
            f = self.failureResultOf(
                Deferred.fromCoroutine(self.service.setup(cid, "x", "x", "plain", req, []))
            )
            self.assertEqual(str(f.value), text)

    def test_ipv4_only_network_has_no_ipv6(self) -> None:
        """An IPv4-only network's endpoint: empty IPv6 fields, no AAAA data."""
        self.create("plain", ipv6=False)
        e = self.start("c1", "plain").endpoints[0]
        self.assertEqual((e.ipv6, e.ipv6_prefixlen, e.ipv6_gateway), ("", 0, ""))


class ConfiguredPoolsTests(Ipv6NetworkTests):
    """default-address-pools with an IPv6 entry: IPv6 subnets come from it, IPv4 ones from the
    IPv4 entries; the default bridge (ipv6: true) takes the first IPv6 /64 too."""

    pools = (("10.60.0.0/16", 24), ("fd00:aaaa::/56", 64))
    ipv6_default_bridge = True

    def test_derived_ula_pool(self) -> None:  # replaces the base class's: pools are configured
        """Consecutive /64s of the configured pool; the default bridge has the first."""
        code, bridge = self.call("GET", "/networks/bridge")
        self.assertEqual(code, 200)
        self.assertTrue(bridge["EnableIPv6"])
        self.assertEqual(
            bridge["IPAM"]["Config"][1], {"Subnet": "fd00:aaaa::/64", "Gateway": "fd00:aaaa::1"}
        )
        self.assertIn(default_bridge_name(self.exec_root), self.netlink.bridges6)
        a = self.create("a")["IPAM"]["Config"]
        self.assertEqual(a[0]["Subnet"], "10.60.0.0/24")
        self.assertEqual(a[1], {"Subnet": "fd00:aaaa:0:1::/64", "Gateway": "fd00:aaaa:0:1::1"})
