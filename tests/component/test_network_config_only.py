"""Config-only networks through /networks in memory: real router, NetworkService and database,
fake kernel drivers (dockerd's --config-only and --config-from, issue 15)."""

from __future__ import annotations

from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.engine.spec import NetworkRequest
from pyd.state.networks import NetworkRepository
from tests.component import test_networks_api as plain
from tests.helpers.netsvc import ContainerRef
from tests.helpers.sync import run_sync

_CONFIG = {
    "Name": "cfg",
    "ConfigOnly": True,
    "Driver": "bridge",
    "IPAM": {
        "Driver": "default",
        "Config": [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.1", "IPRange": "10.77.0.128/25"}],
        "Options": {},
    },
    "Options": {"com.docker.network.driver.mtu": "1400"},
    "Labels": {"team": "a"},
}

_OPERATOR = (
    "configuration network can only contain network specific fields. Network operator fields "
    "like [ ingress | internal | attachable | scope ] are not supported."
)
_OWN = (
    "user specified configurations are not supported if the network depends on a "
    "configuration network"
)


class ConfigOnlyTests(SynchronousTestCase):
    """What dockerd stores, shows and refuses for configuration networks."""

    # The same in-memory service and HTTP stub as the plain /networks tests (not a subclass:
    # their tests would run twice).
    setUp = plain.NetworksApiTests.setUp
    call = plain.NetworksApiTests.call
    add_container = plain.NetworksApiTests.add_container

    def config(self) -> str:
        code, body = self.call("POST", "/networks/create", _CONFIG)
        self.assertEqual(code, 201, body)
        return str(body["Id"])

    def test_config_only_stored_not_created(self) -> None:
        """Inspect and list show driver null, scope local, ConfigOnly and the IPAM as asked
        (no gateway filled in); no bridge, no rule, no subnet taken from the pools."""
        bridges = set(self.netlink.bridges)
        nid = self.config()
        code, n = self.call("GET", "/networks/cfg")
        self.assertEqual(code, 200)
        self.assertEqual(
            {k: n[k] for k in ("Id", "Driver", "Scope", "ConfigOnly", "ConfigFrom", "Containers")},
            {
                "Id": nid,
                "Driver": "null",
                "Scope": "local",
                "ConfigOnly": True,
                "ConfigFrom": {"Network": ""},
                "Containers": {},
            },
        )
        self.assertEqual(
            n["IPAM"],
            {
                "Driver": "default",
                "Options": {},
                "Config": [
                    {"Subnet": "10.77.0.0/24", "IPRange": "10.77.0.128/25", "Gateway": "10.77.0.1"}
                ],
            },
        )
        self.assertEqual((n["Options"], n["Labels"]), (_CONFIG["Options"], _CONFIG["Labels"]))
        self.assertEqual(set(self.netlink.bridges), bridges)
        self.assertEqual(self.events.rows()[-1][:3], ("network", "create", nid))
        self.assertEqual(self.events.rows()[-1][3]["type"], "null")
        # It is kept across a restart (the row has its columns).
        again = run_sync(NetworkRepository(self.db).all())
        self.assertTrue(next(x for x in again if x.id == nid).config_only)
        _, rows = self.call("GET", '/networks?filters={"driver":["null"]}')
        self.assertEqual({r["Name"] for r in rows}, {"none", "cfg"})
        # Its subnet is not taken: a plain network may still have it.
        code, body = self.call(
            "POST",
            "/networks/create",
            {"Name": "plain", "IPAM": {"Config": [{"Subnet": "10.77.0.0/24"}]}},
        )
        self.assertEqual(code, 201, body)

    def test_refusals(self) -> None:
        """libnetwork's 403s for what cannot be combined, its 404 for a missing configuration,
        and moby 28's IPAM checks on the configuration itself."""
        self.config()
        self.call("POST", "/networks/create", {"Name": "plain"})
        for body, want in (
            ({"Name": "x", "ConfigOnly": True, "Internal": True}, (403, _OPERATOR)),
            ({"Name": "x", "ConfigOnly": True, "Attachable": True}, (403, _OPERATOR)),
            ({"Name": "x", "ConfigOnly": True, "Ingress": True}, (403, _OPERATOR)),
            ({"Name": "x", "ConfigOnly": True, "Scope": "local"}, (403, _OPERATOR)),
            (
                {"Name": "x", "ConfigOnly": True, "ConfigFrom": {"Network": "cfg"}},
                (403, "a configuration network cannot depend on another configuration network"),
            ),
            (
                {
                    "Name": "x",
                    "ConfigFrom": {"Network": "cfg"},
                    "IPAM": {"Config": [{"Subnet": "10.78.0.0/24"}]},
                },
                (403, _OWN),
            ),
            ({"Name": "x", "ConfigFrom": {"Network": "cfg"}, "Labels": {"a": "b"}}, (403, _OWN)),
            ({"Name": "x", "ConfigFrom": {"Network": "cfg"}, "EnableIPv6": True}, (403, _OWN)),
            (
                {"Name": "x", "ConfigFrom": {"Network": "cfg"}, "IPAM": {"Options": {"a": "b"}}},
                (403, _OWN),
            ),
            (
                {"Name": "x", "ConfigFrom": {"Network": "cfg"}, "IPAM": {"Driver": "other"}},
                (403, _OWN),
            ),
            (
                {"Name": "x", "ConfigFrom": {"Network": "cfg"}, "Options": {"a": "b"}},
                (
                    403,
                    "network driver options are not supported if the network depends on a "
                    "configuration network",
                ),
            ),
            (
                {"Name": "x", "ConfigFrom": {"Network": "nope"}},
                (404, 'configuration network "nope" does not exist'),
            ),
            (
                {"Name": "x", "ConfigFrom": {"Network": "plain"}},
                (404, 'configuration network "plain" does not exist'),
            ),
            (
                {
                    "Name": "x",
                    "ConfigOnly": True,
                    "IPAM": {"Config": [{"Subnet": "10.79.0.0/24", "Gateway": "10.80.0.1"}]},
                },
                (400, "invalid gateway 10.80.0.1: it is not inside the subnet 10.79.0.0/24"),
            ),
        ):
            code, err = self.call("POST", "/networks/create", body)
            self.assertEqual((code, err["message"]), want, body)
        _, rows = self.call("GET", "/networks")
        self.assertNotIn("x", {r["Name"] for r in rows})

    def test_config_from(self) -> None:
        """A network made from the configuration has its IPAM, options and labels, names it in
        ConfigFrom, gets a bridge; its containers take addresses from the configuration's
        range; the configuration cannot go while it is used, and prune leaves it."""
        self.config()
        code, body = self.call(
            "POST",
            "/networks/create",
            {"Name": "from", "Driver": "bridge", "ConfigFrom": {"Network": "cfg"}, "IPAM": {}},
        )
        self.assertEqual(code, 201, body)
        _, n = self.call("GET", "/networks/from")
        self.assertEqual(
            (n["Driver"], n["ConfigOnly"], n["ConfigFrom"], n["Options"], n["Labels"]),
            ("bridge", False, {"Network": "cfg"}, _CONFIG["Options"], _CONFIG["Labels"]),
        )
        self.assertEqual(
            n["IPAM"]["Config"],
            [{"Subnet": "10.77.0.0/24", "IPRange": "10.77.0.128/25", "Gateway": "10.77.0.1"}],
        )
        self.assertIn("br-" + n["Id"][:12], self.netlink.bridges)
        cid = self.add_container("web")
        setup = run_sync(self.service.setup(cid, "/web", "web", "from", NetworkRequest(), []))
        ep = setup.endpoints[0]
        self.assertEqual((ep.ipv4, ep.prefixlen, ep.gateway), ("10.77.0.128", 24, "10.77.0.1"))
        forbidden = 'error while removing network: configuration network "cfg" is in use'
        self.assertEqual(self.call("DELETE", "/networks/cfg"), (403, {"message": forbidden}))
        self.assertEqual(self.call("POST", "/networks/prune"), (200, {"NetworksDeleted": []}))
        run_sync(self.service.release(cid))
        self.assertEqual(self.call("DELETE", "/networks/from")[0], 204)
        destroyed = [e.action for e in self.events.events].count("destroy")
        self.assertEqual(self.call("DELETE", "/networks/cfg")[0], 204)
        # dockerd logs no destroy event for a configuration network
        self.assertEqual([e.action for e in self.events.events].count("destroy"), destroyed)

    def test_nothing_runs_on_it(self) -> None:
        """A running container is not connected (dockerd's 403); a stopped one is, and its
        start then fails with that text; --network cfg is not the none network."""
        nid = self.config()
        self.assertEqual(self.service.canonical_mode(nid), nid)
        cid = self.add_container("web")
        run_sync(self.service.setup(cid, "/web", "web", "bridge", NetworkRequest(), []))
        want = (403, {"message": "cannot create endpoint on configuration-only network"})
        self.assertEqual(self.call("POST", "/networks/cfg/connect", {"Container": "web"}), want)
        idle = self.add_container("idle")
        self.containers.refs[idle] = ContainerRef(idle, "idle", False, "bridge")
        self.assertEqual(self.call("POST", "/networks/cfg/connect", {"Container": "idle"})[0], 200)
        failure = self.failureResultOf(
            ensureDeferred(
                self.service.setup(idle, "/idle", "idle", "bridge", NetworkRequest(), [])
            )
        )
        self.assertEqual(str(failure.value), want[1]["message"])
        other = self.add_container("other")
        failure = self.failureResultOf(
            ensureDeferred(
                self.service.setup(other, "/other", "other", "cfg", NetworkRequest(), [])
            )
        )
        self.assertEqual(str(failure.value), want[1]["message"])
