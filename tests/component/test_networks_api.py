"""/networks in memory: real router and NetworkService, fake kernel drivers (issue 5)."""

from __future__ import annotations

import json
import os
from typing import Any

import attrs
from sqlalchemy import insert
from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.networks import NetworksRouter
from pyd.api.root import ApiRoot
from pyd.core.seams import InlineBlocking
from pyd.engine.networks import (
    CreateRequest,
    NetworkConfig,
    NetworkService,
    default_bridge_name,
)
from pyd.engine.spec import NetworkRequest, network_request
from pyd.state.models import ContainerRow
from pyd.state.networks import NetworkRepository
from tests.fakes.events import FakeEvents
from tests.fakes.network import FakeFirewall, FakeNetlink, FakeResolver
from tests.helpers.memdb import memory_db
from tests.helpers.netsvc import Containers, endpoints, net_request
from tests.helpers.sync import run_sync


class NetworksApiTests(SynchronousTestCase):
    """Wire shapes, status codes and dockerd's messages."""

    def setUp(self) -> None:
        self.db = memory_db(alembic=True)
        self.netlink = FakeNetlink()
        self.firewall = FakeFirewall()
        self.resolver = FakeResolver()
        self.events = FakeEvents()
        self.containers = Containers()
        resolv = _tmpfile(self)
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.53\n")
        self.exec_root = os.path.join(os.path.dirname(resolv), "exec")
        self.service = NetworkService(
            NetworkRepository(self.db),
            self.netlink,
            self.firewall,
            self.resolver,
            InlineBlocking(),
            self.events,
            NetworkConfig(exec_root=self.exec_root, resolv_conf=resolv),
            lookup=self.containers,
            can_bind=lambda ip, port, proto: True,
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

    def add_container(self, name: str) -> str:
        from tests.helpers.netsvc import ContainerRef

        cid = (name.encode().hex() + "0" * 64)[:64]
        with self.db.engine.begin() as conn:
            conn.execute(
                insert(ContainerRow).values(
                    id=cid,
                    name="/" + name,
                    image_id="i",
                    image_ref="i",
                    created=0,
                    status="running",
                    config={},
                    host_config={},
                    state={},
                    network_settings={},
                    mounts=[],
                    restart_count=0,
                    extra={},
                )
            )
        self.containers.refs[cid] = ContainerRef(cid, name, True, "default")
        return cid

    def test_predefined(self) -> None:
        """bridge, host and none exist; the default bridge avoids the host's routes."""
        code, body = self.call("GET", "/networks")
        self.assertEqual(code, 200)
        self.assertEqual({n["Name"] for n in body}, {"bridge", "host", "none"})
        bridge = next(n for n in body if n["Name"] == "bridge")
        self.assertEqual(
            bridge["IPAM"]["Config"], [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]
        )
        self.assertIn(default_bridge_name(self.exec_root), self.netlink.bridges)
        code, body = self.call("DELETE", "/networks/bridge")
        self.assertEqual(
            (code, body["message"]), (403, "bridge is a pre-defined network and cannot be removed")
        )

    def test_create_and_inspect(self) -> None:
        """create returns 201 {Id, Warning}; inspect has the IPAM, Options and Labels shape."""
        code, body = self.call(
            "POST",
            "/networks/create",
            {
                "Name": "appnet",
                "Driver": "bridge",
                "Labels": {"a": "b"},
                "Options": {"x": "y"},
                "IPAM": {"Driver": "default", "Config": [], "Options": {}},
            },
        )
        self.assertEqual(code, 201)
        self.assertEqual(set(body), {"Id", "Warning"})
        nid = body["Id"]
        code, n = self.call("GET", "/networks/" + nid[:5])
        self.assertEqual(code, 200)
        self.assertEqual(n["Name"], "appnet")
        self.assertEqual(
            n["IPAM"]["Config"], [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]
        )
        self.assertEqual((n["Labels"], n["Options"], n["Containers"]), ({"a": "b"}, {"x": "y"}, {}))
        for key in (
            "Created",
            "Scope",
            "EnableIPv6",
            "Internal",
            "Attachable",
            "Ingress",
            "ConfigFrom",
            "ConfigOnly",
        ):
            self.assertIn(key, n)
        self.assertIn("br-" + nid[:12], self.netlink.bridges)
        self.assertEqual(self.events.rows()[-1][:2], ("network", "create"))
        code, err = self.call("POST", "/networks/create", {"Name": "appnet"})
        self.assertEqual((code, err["message"]), (409, "network with name appnet already exists"))
        code, err = self.call("GET", "/networks/nope")
        self.assertEqual((code, err["message"]), (404, "network nope not found"))

    def test_ipam_options_as_sent(self) -> None:
        """IPAM.Options is null unless the request gave it (docker-py sends null, the CLI {}),
        on the default bridge too, as dockerd shows it."""
        for name, ipam in (
            ("noipam", None),
            ("nullopts", {"Options": None}),
            ("empty", {"Options": {}}),
        ):
            body = {"Name": name} if ipam is None else {"Name": name, "IPAM": ipam}
            self.assertEqual(self.call("POST", "/networks/create", body)[0], 201)
        for name, want in (("noipam", None), ("nullopts", None), ("empty", {}), ("bridge", None)):
            code, n = self.call("GET", "/networks/" + name)
            self.assertEqual((code, name, n["IPAM"]["Options"]), (200, name, want))

    def test_bad_requests(self) -> None:
        """Unknown drivers, bad subnets and overlaps fail without creating anything."""
        code, err = self.call("POST", "/networks/create", {"Name": "x", "Driver": "overlay"})
        self.assertEqual((code, err["message"]), (404, 'plugin "overlay" not found'))
        code, err = self.call(
            "POST",
            "/networks/create",
            {"Name": "x", "IPAM": {"Config": [{"Subnet": "10.9.0.1/16"}]}},
        )
        self.assertEqual(code, 400)
        code, err = self.call(
            "POST",
            "/networks/create",
            {"Name": "x", "IPAM": {"Config": [{"Subnet": "172.17.5.0/24"}]}},
        )
        self.assertEqual(
            (code, err["message"]), (403, "Pool overlaps with other one on this address space")
        )
        code, err = self.call("POST", "/networks/create", {"Name": "host"})
        self.assertEqual(code, 409)
        # Neither family (API 1.48's EnableIPv4: false without IPv6): moby 28's 400; an
        # explicit true is the default.
        code, err = self.call("POST", "/networks/create", {"Name": "x6", "EnableIPv4": False})
        self.assertEqual((code, err["message"]), (400, "IPv4 or IPv6 must be enabled"))
        code, _ = self.call("POST", "/networks/create", {"Name": "x4", "EnableIPv4": True})
        self.assertEqual(code, 201)
        self.call("DELETE", "/networks/x4")
        code, _ = self.call("GET", "/networks?filters=" + json.dumps({"nope": {"x": True}}))
        self.assertEqual(code, 400)
        self.assertEqual(len(self.call("GET", "/networks")[1]), 3)

    def test_names_written_into_files_are_refused(self) -> None:
        """A network name with a newline, a bridge name that would break the nft script or the
        interface rules, an alias with a newline: 400 with a plain message, nothing created."""
        before = (len(self.call("GET", "/networks")[1]), set(self.netlink.bridges))
        code, err = self.call("POST", "/networks/create", {"Name": "a\nb"})
        self.assertEqual(
            (code, err["message"]),
            (400, 'invalid network name "a\\nb": it must not contain control characters'),
        )
        for device in ("x\nflush rules", "a b", "a/b", "a:b", ".."):
            code, err = self.call(
                "POST",
                "/networks/create",
                {"Name": "n1", "Options": {"com.docker.network.bridge.name": device}},
            )
            self.assertEqual(code, 400, device)
            self.assertTrue(err["message"].startswith("invalid bridge name "), err)
        self.assertEqual((len(self.call("GET", "/networks")[1]), set(self.netlink.bridges)), before)
        self.call("POST", "/networks/create", {"Name": "appnet"})
        self.add_container("c")
        code, err = self.call(
            "POST",
            "/networks/appnet/connect",
            {"Container": "c", "EndpointConfig": {"Aliases": ["ok", "x\n10.0.0.1 evil"]}},
        )
        self.assertEqual(
            (code, err["message"]),
            (
                400,
                'invalid alias "x\\n10.0.0.1 evil": it must not contain whitespace or '
                "control characters",
            ),
        )
        self.assertEqual(self.call("GET", "/networks/appnet")[1]["Containers"], {})

    def test_connect_inspect_rm_refused(self) -> None:
        """A running container shows in Containers; rm is refused until it leaves."""
        self.call("POST", "/networks/create", {"Name": "appnet"})
        cid = self.add_container("web")
        setup = run_sync(
            self.service.setup(
                cid,
                "/web",
                "webhost",
                "appnet",
                net_request(
                    {
                        "PortBindings": {"80/tcp": [{"HostPort": "8080"}]},
                        "ExtraHosts": ["h:1.2.3.4"],
                    },
                    {"appnet": {"Aliases": ["www"]}},
                ),
                ["80/tcp"],
            )
        )
        ep = setup.endpoints[0]
        self.assertEqual((ep.ipv4, ep.gateway, ep.prefixlen), ("172.18.0.2", "172.18.0.1", 16))
        self.assertEqual(ep.dns_names, ("web", "www", cid[:12]))
        self.assertEqual(setup.dns_servers, ("127.0.0.11",))
        self.assertTrue(setup.resolv_conf.startswith("# Generated by Docker Engine."))
        self.assertIn("\nnameserver 127.0.0.11\n", setup.resolv_conf)
        # The resolver serves this container inside its namespace, behind the nft redirect.
        ports = self.resolver.served[cid]
        self.assertEqual(list(self.resolver.served), [cid])
        self.assertEqual(self.firewall.dns_tables, {setup.netns_path: ("127.0.0.11", *ports)})
        self.assertIn(("1.2.3.4", "h"), setup.hosts_entries)
        self.assertIn(("172.18.0.2", "webhost"), setup.hosts_entries)
        self.assertEqual([(p.host_port, p.container_port) for p in setup.ports], [(8080, 80)])
        assert self.firewall.rules is not None
        self.assertEqual(self.firewall.rules.ports[0].container_ip, "172.18.0.2")
        self.assertEqual(self.service.lookup_name(cid, "www"), ["172.18.0.2"])
        self.assertEqual(self.service.lookup_name(cid, "WEB.appnet"), ["172.18.0.2"])
        self.assertEqual(self.service.reverse_name(cid, "172.18.0.2"), "web.appnet")
        self.assertIsNone(self.service.lookup_name("other", "www"))
        _, n = self.call("GET", "/networks/appnet")
        self.assertEqual(
            n["Containers"][cid],
            {
                "Name": "web",
                "EndpointID": ep.endpoint_id,
                "MacAddress": "02:42:ac:12:00:02",
                "IPv4Address": "172.18.0.2/16",
                "IPv6Address": "",
            },
        )
        code, err = self.call("DELETE", "/networks/appnet")
        self.assertEqual(code, 403)
        self.assertEqual(
            err["message"],
            f'error while removing network: network appnet has active endpoints (name:"web" id:"{cid[:12]}")',
        )
        code, _ = self.call("POST", "/networks/appnet/disconnect", {"Container": "web"})
        self.assertEqual(code, 200)
        code, _ = self.call("DELETE", "/networks/appnet")
        self.assertEqual(code, 204)
        self.assertEqual(self.firewall.rules.ports, ())

    def test_connect_errors(self) -> None:
        """Unknown containers are 404; host networks cannot be connected."""
        code, err = self.call("POST", "/networks/bridge/connect", {"Container": "ghost"})
        self.assertEqual((code, err["message"]), (404, "No such container: ghost"))
        self.add_container("c")
        code, err = self.call("POST", "/networks/host/connect", {"Container": "c"})
        self.assertEqual(code, 403)
        # mistyped bodies are Go's typed-decoding 400s (dockerd's text), never a 500
        for body, msg in (
            (
                {"Container": "c", "EndpointConfig": {"Aliases": "a"}},
                "invalid JSON: json: cannot unmarshal string into Go struct field "
                "EndpointSettings.EndpointConfig.Aliases of type []string",
            ),
            (
                {"Container": "c", "EndpointConfig": {"IPAMConfig": []}},
                "invalid JSON: json: cannot unmarshal array into Go struct field "
                "EndpointSettings.EndpointConfig.IPAMConfig of type network.EndpointIPAMConfig",
            ),
            (
                {"Container": 5},
                "invalid JSON: json: cannot unmarshal number into Go struct field "
                "ConnectOptions.Container of type string",
            ),
        ):
            self.assertEqual(
                self.call("POST", "/networks/bridge/connect", body), (400, {"message": msg})
            )

    def test_created_container_disconnect_then_connect(self) -> None:
        """compose v1 disconnects a created (never started) container from its create-time
        network and connects it again with aliases: both succeed, and the first start plugs
        the network once, with the new aliases."""
        from tests.helpers.netsvc import ContainerRef

        self.call("POST", "/networks/create", {"Name": "appnet"})
        cid = self.add_container("web")
        self.containers.refs[cid] = ContainerRef(
            cid, "web", False, "appnet", endpoints(appnet={"Aliases": ["old"]})
        )
        code, _ = self.call("POST", "/networks/appnet/disconnect", {"Container": "web"})
        self.assertEqual(code, 200)
        code, err = self.call("POST", "/networks/appnet/disconnect", {"Container": "web"})
        self.assertEqual(code, 403, err)
        code, _ = self.call(
            "POST",
            "/networks/appnet/connect",
            {"Container": "web", "EndpointConfig": {"Aliases": ["web-alias"]}},
        )
        self.assertEqual(code, 200)
        setup = run_sync(
            self.service.setup(
                cid,
                "/web",
                "web",
                "appnet",
                net_request(endpoints={"appnet": {"Aliases": ["old"]}}),
                [],
            )
        )
        self.assertEqual([e.network_name for e in setup.endpoints], ["appnet"])
        self.assertIn("web-alias", setup.endpoints[0].dns_names)
        self.assertNotIn("old", setup.endpoints[0].dns_names)

    def test_release_of_stopped_and_running(self) -> None:
        """Removing a container that is not running (never started) leaves the firewall and
        the other containers' endpoints as they are; removing a running one takes its endpoint
        off the network."""
        from tests.helpers.netsvc import ContainerRef

        self.call("POST", "/networks/create", {"Name": "relnet"})
        run = self.add_container("run")
        self.containers.refs[run] = ContainerRef(run, "run", True, "relnet")
        run_sync(self.service.setup(run, "/run", "run", "relnet", NetworkRequest(), []))
        idle = self.add_container("idle")
        code, _ = self.call("POST", "/networks/relnet/connect", {"Container": "idle"})
        self.assertEqual(code, 200)
        _, net = self.call("GET", "/networks/relnet")
        self.assertEqual(list(net["Containers"]), [run])
        applied = self.firewall.applied
        run_sync(self.service.release(idle))
        self.assertEqual(self.firewall.applied, applied)
        _, net = self.call("GET", "/networks/relnet")
        self.assertEqual(list(net["Containers"]), [run])
        run_sync(self.service.release(run))
        _, net = self.call("GET", "/networks/relnet")
        self.assertEqual(net["Containers"], {})

    def test_canonical_mode_by_id(self) -> None:
        """--network <host or none network id/prefix> means host/none mode; other networks and
        unknown names are left as given."""
        _, nets = self.call("GET", "/networks")
        ids = {n["Name"]: n["Id"] for n in nets}
        self.assertEqual(self.service.canonical_mode(ids["host"]), "host")
        self.assertEqual(self.service.canonical_mode(ids["none"][:12]), "none")
        self.assertEqual(self.service.canonical_mode(ids["bridge"]), ids["bridge"])
        self.assertEqual(self.service.canonical_mode("nosuchnet"), "nosuchnet")
        self.assertEqual(self.service.canonical_mode("container:abc"), "container:abc")

    def test_prune(self) -> None:
        """prune deletes unused user networks and names them."""
        self.call("POST", "/networks/create", {"Name": "p1"})
        code, body = self.call("POST", "/networks/prune")
        self.assertEqual((code, body), (200, {"NetworksDeleted": ["p1"]}))

    def test_bad_record_listed_with_its_id(self) -> None:
        """An endpoint whose stored address is not one (planted through the repository):
        docker network ls lists the network by its id, inspect shows a stub, the daemon's log
        has the traceback."""
        from pyd.core.records import Attachment

        code, net = self.call("POST", "/networks/create", {"Name": "badnet"})
        self.assertEqual(code, 201, net)
        cid = self.add_container("c1")
        repo = NetworkRepository(self.db)
        self.successResultOf(
            repo.add_endpoint(Attachment("e" * 64, net["Id"], cid, "10.1.2.x", None, (), {}))
        )
        self.service._active = self.successResultOf(repo.endpoints())
        code, rows = self.call("GET", "/networks")
        self.assertEqual(code, 200, rows)
        self.assertEqual(sorted(r["Name"] for r in rows), ["badnet", "bridge", "host", "none"])
        code, info = self.call("GET", "/networks/badnet")
        self.assertEqual(code, 200, info)
        self.assertEqual((info["Id"], info["Containers"]), (net["Id"], {}))
        self.assertTrue(self.flushLoggedErrors(ValueError))

    def test_allow_links(self) -> None:
        """allow_links() puts one rule per exposed port of each child into the ruleset (on the
        default bridge), a repeated call replaces them, and the container's teardown takes
        them out."""
        web, client = self.add_container("web"), self.add_container("client")
        web_ip = run_sync(self.service.setup(web, "web", "web", "bridge", NetworkRequest(), []))
        run_sync(self.service.setup(client, "client", "client", "bridge", NetworkRequest(), []))
        child = web_ip.endpoints[0].ipv4
        run_sync(self.service.allow_links(client, [(child, ["80/tcp", "53/udp", "bad"])]))
        assert self.firewall.rules is not None
        got = {(lk.child_ip, lk.protocol, lk.port) for lk in self.firewall.rules.links}
        self.assertEqual(got, {(child, "tcp", 80), (child, "udp", 53)})
        run_sync(self.service.allow_links(client, [(child, ["81"])]))
        got = {(lk.child_ip, lk.protocol, lk.port) for lk in self.firewall.rules.links}
        self.assertEqual(got, {(child, "tcp", 81)})
        run_sync(self.service.teardown(client))
        self.assertEqual(self.firewall.rules.links, ())


class EmbeddedResolverTests(SynchronousTestCase):
    """127.0.0.11 per container namespace: connect, teardown, restart, internal networks."""

    setUp = NetworksApiTests.setUp
    call = NetworksApiTests.call
    add_container = NetworksApiTests.add_container

    def _setup(self, name: str, mode: str, **hc: Any) -> Any:
        cid = self.add_container(name)
        setup = run_sync(self.service.setup(cid, name, name, mode, network_request(hc), []))
        assert setup.netns_path is not None
        self.netlink.in_use.add(setup.netns_path)
        os.makedirs(os.path.dirname(setup.netns_path), exist_ok=True)
        open(setup.netns_path, "w").close()  # the live connect path checks it exists
        return cid, setup

    def test_default_bridge_has_no_resolver_until_connect(self) -> None:
        """A default-bridge container gets a legacy file; its first user network switches it to
        127.0.0.11 after the resolver serves it; a second network changes nothing."""
        changes: list[tuple[str, str | None]] = []

        async def listener(cid: str, eps: Any, text: str | None) -> None:
            changes.append((cid, text))

        self.service.on_endpoints_changed.append(listener)
        cid, setup = self._setup("lone", "default", Dns=["10.9.9.9"])
        self.assertIn("(legacy)", setup.resolv_conf)
        self.assertIn("\nnameserver 10.9.9.9\n", setup.resolv_conf)
        self.assertEqual(self.resolver.served, {})
        self.call("POST", "/networks/create", {"Name": "one"})
        self.call("POST", "/networks/create", {"Name": "two"})
        code, _ = self.call("POST", "/networks/one/connect", {"Container": "lone"})
        self.assertEqual(code, 200)
        self.assertEqual(list(self.resolver.served), [cid])
        self.assertIn(setup.netns_path, self.firewall.dns_tables)
        [(who, text)] = changes
        assert text is not None
        self.assertEqual(who, cid)
        self.assertIn("\nnameserver 127.0.0.11\noptions ndots:0\n", text)
        self.assertIn("# ExtServers: [10.9.9.9]\n", text)  # its --dns, kept as upstream
        self.assertEqual(self.service.upstream_servers(cid), ["10.9.9.9"])
        self.call("POST", "/networks/two/connect", {"Container": "lone"})
        self.assertEqual(changes[-1], (cid, None))
        self.call("POST", "/networks/one/disconnect", {"Container": "lone"})
        self.assertEqual(list(self.resolver.served), [cid])  # kept, as dockerd

    def test_teardown_and_restart(self) -> None:
        """Teardown stops the listener and forgets its ports; a restarted service serves live
        namespaces again on the recorded ports without touching their rules."""
        self.call("POST", "/networks/create", {"Name": "appnet"})
        gone, _ = self._setup("gone", "appnet")
        live, live_setup = self._setup("live", "appnet")
        markers = os.path.join(self.exec_root, "dns")
        self.assertEqual(sorted(os.listdir(markers)), sorted([gone, live]))
        run_sync(self.service.teardown(gone))
        self.assertNotIn(gone, self.resolver.served)
        self.assertEqual(os.listdir(markers), [live])
        ports = self.resolver.served[live]
        run_sync(self.service.stop())
        applied = dict(self.firewall.dns_tables)
        self.firewall.dns_tables.clear()
        restarted = NetworkService(
            NetworkRepository(self.db),
            self.netlink,
            self.firewall,
            self.resolver,
            InlineBlocking(),
            self.events,
            self.service.config,
            lookup=self.containers,
            can_bind=lambda ip, port, proto: True,
        )
        run_sync(restarted.start())
        self.assertEqual(self.resolver.served, {live: ports})
        self.assertEqual(self.netlink.dns_asked[-1][2:], ports)  # asked for the same ports
        self.assertEqual(self.firewall.dns_tables, {})  # the rules in the netns stayed valid
        self.assertIn(live_setup.netns_path, applied)
        self.assertEqual(restarted.lookup_name(live, "live"), [live_setup.endpoints[0].ipv4])

    def test_remove_cut_between_bridge_and_row(self) -> None:
        """A `network rm` the daemon dies in at either of its two writes (the bridge's deletion,
        the row's): the restarted daemon knows every bridge left, and the removal then
        succeeds."""
        for step in ("delete_link", "remove"):
            code, _ = self.call("POST", "/networks/create", {"Name": "cut"})
            self.assertEqual(code, 201)
            target = self.netlink if step == "delete_link" else self.service._repo

            def crash(*a: Any) -> Any:
                raise SystemExit("killed")

            setattr(target, step, crash)
            self.assertRaises(SystemExit, run_sync, self.service.remove("cut"))
            delattr(target, step)
            self.service = NetworkService(
                NetworkRepository(self.db),
                self.netlink,
                self.firewall,
                self.resolver,
                InlineBlocking(),
                self.events,
                self.service.config,
                lookup=self.containers,
                can_bind=lambda ip, port, proto: True,
            )
            run_sync(self.service.start())
            self.http = StubTreq(ApiRoot([NetworksRouter(self.service)]))
            known = {n.bridge for n in self.service._networks.values()}
            self.assertLessEqual(set(self.netlink.bridges), known, step)
            run_sync(self.service.remove("cut"))
            self.assertNotIn("cut", {n.name for n in self.service._networks.values()})

    def test_internal_only_does_not_forward(self) -> None:
        """A container only on --internal networks gets its names but no forwarding."""
        self.call("POST", "/networks/create", {"Name": "inner", "Internal": True})
        cid, setup = self._setup("in1", "inner")
        self.assertIn("\nnameserver 127.0.0.11\n", setup.resolv_conf)
        self.assertEqual(self.service.lookup_name(cid, "in1"), [setup.endpoints[0].ipv4])
        self.assertEqual(self.service.upstream_servers(cid), [])


def _tmpfile(case: SynchronousTestCase) -> str:
    """A temporary file path outside the source tree (trial's mktemp is relative to the cwd)."""
    import os
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="pyd-t-")
    case.addCleanup(shutil.rmtree, d, True)
    return os.path.join(d, "f")


class ForwardingDefaultsTests(SynchronousTestCase):
    """dockerd's ip-forward, ip-masq and iptables, as the daemon's configuration gives them."""

    def start(
        self,
        chains: tuple[str, ...] = (),
        leftover: dict[str, tuple[str, ...]] | None = None,
        **cfg: Any,
    ) -> tuple[FakeNetlink, FakeFirewall]:
        """Start a service on the daemon options C{cfg}; the fake host has a filter FORWARD
        of each family in C{chains}, holding the rules C{leftover} of an earlier run."""
        from pyd import config as cfgmod

        db = memory_db(alembic=True)
        netlink, firewall = FakeNetlink(), FakeFirewall()
        firewall.host_chains.update(chains)
        firewall.host.update(leftover or {})
        resolv = _tmpfile(self)
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.53\n")
        daemon = cfgmod.build(cfg, "/nonexistent/daemon.json")
        nc = attrs.evolve(NetworkConfig.from_daemon(daemon), resolv_conf=resolv)
        service = NetworkService(
            NetworkRepository(db),
            netlink,
            firewall,
            FakeResolver(),
            InlineBlocking(),
            FakeEvents(),
            nc,
            lookup=Containers(),
            can_bind=lambda ip, port, proto: True,
        )
        run_sync(service.start())
        self.service = service
        return netlink, firewall

    def test_defaults(self) -> None:
        """On the daemon's defaults forwarding is turned on and the default bridge masqueraded."""
        netlink, firewall = self.start()
        self.assertTrue(netlink.ip_forward)
        assert firewall.rules is not None
        (bridge,) = firewall.rules.bridges
        self.assertTrue(bridge.masquerade)

    def test_off(self) -> None:
        """--ip-forward=false --ip-masq=false: forwarding left alone, nothing masqueraded."""
        netlink, firewall = self.start(**{"ip-forward": "false", "ip-masq": "false"})
        self.assertFalse(netlink.ip_forward)
        assert firewall.rules is not None
        self.assertFalse(firewall.rules.bridges[0].masquerade)

    def test_iptables_false(self) -> None:
        """--iptables=false: no rules at all (the table is removed, never applied)."""
        _, firewall = self.start(**{"iptables": "false"})
        self.assertEqual((firewall.rules, firewall.applied), (None, 0))

    def test_host_forward(self) -> None:
        """With iptables (the default) the host's filter FORWARD accepts the bridges' traffic
        (IPv6 only for dual-stack bridges); a network created later is added; the daemon's stop
        with nothing running removes the rules."""
        _, firewall = self.start(chains=("ip", "ip6"))
        assert firewall.rules is not None
        bridge = firewall.rules.bridges[0].bridge
        self.assertEqual(firewall.host, {"ip": (bridge,)})
        net, _ = run_sync(self.service.create(CreateRequest(name="later", enable_ipv6=True)))
        self.assertEqual(firewall.host, {"ip": (bridge, net.bridge), "ip6": (net.bridge,)})
        run_sync(self.service.stop())
        self.assertEqual(firewall.host, {})

    def test_host_forward_kept_while_containers_run(self) -> None:
        """The daemon's stop keeps the host's rules while a container runs on a bridge (its
        published ports keep working while the daemon is down, as the table does)."""
        _, firewall = self.start(chains=("ip",))
        self.service._active = [object()]  # type: ignore[list-item]  # one running endpoint
        run_sync(self.service.stop())
        self.assertEqual(len(firewall.host["ip"]), 1)

    def test_iptables_false_host_forward(self) -> None:
        """--iptables=false adds nothing to the host's FORWARD and removes what an earlier run
        with iptables left there."""
        leftover = {"ip": ("pyd0",)}
        _, firewall = self.start(chains=("ip",), leftover=leftover, **{"iptables": "false"})
        self.assertEqual(firewall.host, {})
