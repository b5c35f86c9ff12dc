"""IPv6-only networks in memory (API 1.48's C{EnableIPv4: false}, C{docker network create
--ipv4=false --ipv6}): the real router, NetworkService and IPAM, fake kernel drivers. What moby
28 does: no IPv4 subnet or address, IPv6 addresses only, the embedded resolver answering AAAA
only, published ports on IPv6 alone, and its 400s.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from tests.component import test_networks_ipv6 as dual
from tests.helpers.netsvc import net_request
from tests.helpers.sync import run_sync


class Ipv6OnlyTests(SynchronousTestCase):
    """Create, inspect, endpoints, names and ports of IPv6-only networks."""

    # The in-memory service of the dual-stack tests (not a subclass: theirs would run twice).
    pools: tuple[tuple[str, int], ...] = ()
    ipv6_default_bridge = False
    setUp = dual.Ipv6NetworkTests.setUp
    call = dual.Ipv6NetworkTests.call
    add_container = dual.Ipv6NetworkTests.add_container
    start = dual.Ipv6NetworkTests.start

    create = dual.Ipv6NetworkTests.create

    def create6(self, name: str, *config: dict[str, str], **more: Any) -> dict[str, Any]:
        return self.create(name, *config, **{"EnableIPv4": False, **more})

    def test_create_and_inspect(self) -> None:
        """Only the IPv6 subnet (asked for, or a /64 of the derived ULA /48); EnableIPv4 false
        in inspect; the bridge has no IPv4 address; an IPv4 subnet asked for is not taken."""
        n = self.create6("v6only", {"Subnet": "fd00:db8:20::/64"}, {"Subnet": "10.88.0.0/24"})
        self.assertEqual((n["EnableIPv4"], n["EnableIPv6"]), (False, True))
        self.assertEqual(
            n["IPAM"]["Config"], [{"Subnet": "fd00:db8:20::/64", "Gateway": "fd00:db8:20::1"}]
        )
        bridge = "br-" + n["Id"][:12]
        self.assertEqual(self.netlink.bridges[bridge], (None, 0))
        self.assertEqual(self.netlink.bridges6[bridge], ("fd00:db8:20::1", 64))
        assert self.firewall.rules is not None
        rules = {b.bridge: b for b in self.firewall.rules.bridges}
        self.assertEqual((rules[bridge].subnet, rules[bridge].subnet6), ("", "fd00:db8:20::/64"))
        auto = self.create6("auto6")
        self.assertEqual(
            auto["IPAM"]["Config"],
            [{"Subnet": "fd62:fb69:18af::/64", "Gateway": "fd62:fb69:18af::1"}],
        )
        # The driver option says the same when the field is absent (dockerd's network.go).
        opt = self.create6(
            "byopt", EnableIPv4=None, Options={"com.docker.network.enable_ipv4": "0"}
        )
        self.assertFalse(opt["EnableIPv4"])
        # The IPv4 subnet was not allocated: a dual-stack network may have it.
        code, out = self.call(
            "POST",
            "/networks/create",
            {"Name": "v4", "IPAM": {"Config": [{"Subnet": "10.88.0.0/24"}]}},
        )
        self.assertEqual(code, 201, out)

    def test_refused(self) -> None:
        """Neither family, a bad option value, an IPv4 address asked for: moby 28's 400s."""
        for body, text in (
            ({"Name": "x", "EnableIPv4": False}, "IPv4 or IPv6 must be enabled"),
            (
                {"Name": "x", "Options": {"com.docker.network.enable_ipv4": "nah"}},
                'driver-opt "com.docker.network.enable_ipv4" is not a valid bool',
            ),
        ):
            self.assertEqual(self.call("POST", "/networks/create", body), (400, {"message": text}))
        self.assertEqual(self.call("GET", "/networks/x")[0], 404)
        self.create6("v6only", {"Subnet": "fd00:db8:21::/64"})
        cid = self.add_container("c")
        req = net_request(None, {"v6only": {"IPAMConfig": {"IPv4Address": "10.0.0.5"}}})
        f = self.failureResultOf(Deferred.fromCoroutine(self.service.validate(cid, "v6only", req)))
        self.assertEqual(
            str(f.value),
            "user specified IP address is supported only when connecting to networks with user "
            "configured subnets",
        )

    def test_api_before_1_48_ignores_the_field(self) -> None:
        """moby's network_routes.go drops EnableIPv4 below API 1.48: a dual-stack network."""
        resp = self.successResultOf(
            self.http.request(
                "POST",
                "http://pyd/v1.47/networks/create",
                data=b'{"Name": "old", "EnableIPv4": false, "EnableIPv6": true}',
                headers={"Content-Type": "application/json"},
            )
        )
        self.assertEqual(resp.code, 201)
        _, n = self.call("GET", "/networks/old")
        self.assertTrue(n["EnableIPv4"])
        self.assertEqual(len(n["IPAM"]["Config"]), 2)

    def test_endpoints_names_and_ports(self) -> None:
        """A container gets an IPv6 address, gateway and default route and no IPv4 one; it is
        shown running in network inspect; the resolver answers AAAA only; -p publishes on ::
        alone (an IPv4 host address is left out); the address goes back at teardown."""
        self.create6("v6only", {"Subnet": "fd00:db8:22::/64"})
        s1 = self.start("c1", "v6only")
        cid2 = self.add_container("c2")
        req = net_request(
            {
                "PortBindings": {
                    "80/tcp": [{"HostPort": "18090"}, {"HostIp": "127.0.0.1", "HostPort": "18091"}]
                }
            },
            {},
        )
        s2 = run_sync(self.service.setup(cid2, "c2", "c2", "v6only", req, []))
        e1 = s1.endpoints[0]
        self.assertEqual(
            (e1.ipv4, e1.prefixlen, e1.gateway, e1.ipv6, e1.ipv6_prefixlen, e1.ipv6_gateway),
            ("", 0, "", "fd00:db8:22::2", 64, "fd00:db8:22::1"),
        )
        self.assertTrue(e1.endpoint_id and e1.mac)
        iface = self.netlink.netns[s1.netns_path]["eth0"]
        self.assertEqual((iface.address, iface.gateway), ("", None))
        self.assertEqual((iface.address6, iface.gateway6), ("fd00:db8:22::2", "fd00:db8:22::1"))
        self.assertIn(("fd00:db8:22::2", "c1"), s1.hosts_entries)
        _, n = self.call("GET", "/networks/v6only")
        shown = sorted((c["IPv4Address"], c["IPv6Address"]) for c in n["Containers"].values())
        self.assertEqual(shown, [("", "fd00:db8:22::2/64"), ("", "fd00:db8:22::3/64")])
        cid1 = s1.netns_path.rsplit("/", 1)[1]
        self.assertEqual(self.service.lookup_name(cid1, "c2"), ["fd00:db8:22::3"])
        self.assertEqual(self.service.reverse_name(cid1, "fd00:db8:22::3"), "c2.v6only")
        self.assertEqual([(p.host_ip, p.host_port) for p in s2.ports], [("::", 18090)])
        assert self.firewall.rules is not None
        self.assertEqual(
            [(p.host_ip, p.container_ip, p.container_ip6) for p in self.firewall.rules.ports],
            [("::", "", "fd00:db8:22::3")],
        )
        self.assertEqual(self.proxy.wanted, {("::1", 18090): ("fd00:db8:22::3", 80)})
        run_sync(self.service.teardown(cid1))
        _, n = self.call("GET", "/networks/v6only")
        self.assertEqual(len(n["Containers"]), 1)
        again = self.start("c3", "v6only")
        self.assertEqual(again.endpoints[0].ipv6, "fd00:db8:22::2")

    def test_config_only_without_ipv4(self) -> None:
        """A configuration may be IPv6-only and gives that to the networks made from it; a
        network made from one may not say --ipv4=false itself (moby 28's 403)."""
        code, out = self.call(
            "POST",
            "/networks/create",
            {
                "Name": "cfg6",
                "ConfigOnly": True,
                "EnableIPv4": False,
                "EnableIPv6": True,
                "IPAM": {"Config": [{"Subnet": "fd00:db8:23::/64"}]},
            },
        )
        self.assertEqual(code, 201, out)
        code, out = self.call(
            "POST",
            "/networks/create",
            {"Name": "x", "ConfigFrom": {"Network": "cfg6"}, "EnableIPv4": False},
        )
        self.assertEqual(code, 403)
        self.assertIn("user specified configurations are not supported", out["message"])
        code, out = self.call(
            "POST", "/networks/create", {"Name": "from6", "ConfigFrom": {"Network": "cfg6"}}
        )
        self.assertEqual(code, 201, out)
        _, n = self.call("GET", "/networks/from6")
        self.assertEqual((n["EnableIPv4"], n["EnableIPv6"]), (False, True))
        self.assertEqual(n["IPAM"]["Config"][0]["Subnet"], "fd00:db8:23::/64")
        self.assertEqual(self.start("c", "from6").endpoints[0].ipv6, "fd00:db8:23::2")
