"""The /containers API in memory: real router and engine, fake runtime and providers, SQLite."""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from typing import Any

import attrs
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.container_views import human_duration
from pyd.api.containers import ContainersRouter
from pyd.api.root import ApiRoot
from pyd.core.seams import InlineBlocking
from pyd.drivers.runtime.spec import MASKED_PATHS, READONLY_PATHS
from pyd.engine.containers import ContainerService, ContainerSettings
from pyd.state.containers import ContainerRepository
from tests.fakes.container_providers import (
    FakeContainerImages,
    FakeNetworkProvider,
    FakeVolumeProvider,
)
from tests.fakes.events import FakeEvents
from tests.fakes.runtime import FakeRuntime
from tests.helpers.memdb import memory_db
from tests.helpers.sync import run_sync


class ContainersApiTests(SynchronousTestCase):
    """Status codes and JSON of /containers/* as dockerd answers them."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-ctr-api-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.db = memory_db(alembic=True)
        self.runtime = FakeRuntime(self.clock)
        self.svc = ContainerService(
            ContainerRepository(self.db),
            self.runtime,
            FakeContainerImages(self.tmp + "/layers"),
            FakeNetworkProvider(),
            FakeVolumeProvider(),
            FakeEvents(),
            InlineBlocking(),
            self.clock,
            ContainerSettings(containers_dir=self.tmp + "/containers"),
        )
        run_sync(self.svc.startup())
        self.http_router = ContainersRouter(self.svc, self.clock)
        self.http = StubTreq(ApiRoot([self.http_router]))

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        kw: dict[str, Any] = {}
        if body is not None:
            kw["data"] = json.dumps(body).encode()
            kw["headers"] = {"Content-Type": "application/json"}
        resp = self.successResultOf(self.http.request(method, "http://pyd" + path, **kw))
        raw = self.successResultOf(resp.content())
        try:
            return resp.code, (json.loads(raw) if raw else None)
        except ValueError:
            return resp.code, raw

    def create(self, name: str, **config: Any) -> str:
        config.setdefault("Image", "busybox")
        self.clock.advance(1)
        code, body = self.call("POST", f"/v1.50/containers/create?name={name}", config)
        self.assertEqual(code, 201, body)
        return str(body["Id"])

    def test_create_start_inspect_list(self) -> None:
        """create is 201 {Id, Warnings}; inspect has Config/State/NetworkSettings; ps lists it."""
        cid = self.create("web", Cmd=["sleep", "9"], Labels={"a": "b"})
        self.assertEqual(self.call("POST", f"/containers/{cid}/start")[0], 204)
        self.assertEqual(self.call("POST", f"/containers/{cid}/start")[0], 304)
        code, info = self.call("GET", "/containers/web/json")
        self.assertEqual(code, 200)
        self.assertEqual(info["Id"], cid)
        self.assertEqual(info["Name"], "/web")
        self.assertEqual((info["Path"], info["Args"]), ("sleep", ["9"]))
        self.assertEqual(info["State"]["Status"], "running")
        self.assertTrue(info["State"]["Running"])
        self.assertEqual(info["Config"]["Labels"], {"a": "b"})
        self.assertEqual(info["HostConfig"]["NetworkMode"], "bridge")
        self.assertEqual(info["NetworkSettings"]["Networks"]["bridge"]["IPAddress"], "10.250.0.2")
        code, items = self.call("GET", "/containers/json")
        self.assertEqual([i["Id"] for i in items], [cid])
        self.assertEqual(items[0]["Names"], ["/web"])
        self.assertEqual(items[0]["Status"], "Up Less than a second")
        self.assertEqual(items[0]["Command"], "sleep 9")

    def _rendered(self, q: str = "?all=1") -> bytes:
        """The listing as each container's entry rendered afresh (the uncached path)."""
        from pyd.api.container_views import list_json
        from pyd.api.wire import encode_json

        now = int(self.clock.seconds() * 1_000_000_000)
        links = self.svc.link_names_by_child()
        items = []
        for c in self.svc.list_all():
            if q == "" and not c.state.running:
                continue
            item = list_json(c, now)
            item["Names"] = sorted([c.name, *links.get(c.id, ())])
            items.append(item)
        return encode_json(items) + b"\n"

    def raw(self, path: str) -> bytes:
        resp = self.successResultOf(self.http.request("GET", "http://pyd" + path))
        return bytes(self.successResultOf(resp.content()))

    def test_listing_entries_follow_each_change(self) -> None:
        """Each container's entry is encoded once per record: the listing is byte for byte the
        fresh rendering after every change (start, a link's name, time passing for the status,
        rename, stop, remove), and a removed container's entry is dropped."""
        web = self.create("web", Cmd=["sleep", "9"], Labels={"a": "b"}, ExposedPorts={"80/tcp": {}})
        db = self.create("db", Cmd=["sh", "-c", "sleep 9"])
        steps = [
            lambda: None,
            lambda: self.call("POST", f"/containers/{web}/start"),
            lambda: self.clock.advance(125),  # "Up 2 minutes"
            lambda: self.call("POST", f"/containers/{db}/start"),
            lambda: self.call("POST", "/containers/db/rename?name=db2"),
            lambda: self.runtime.exit(web, 2),
            lambda: self.clock.advance(3600),
            lambda: self.call("DELETE", f"/containers/{web}?force=1"),
        ]
        for step in steps:
            step()
            self.assertEqual(self.raw("/containers/json?all=1"), self._rendered())
            self.assertEqual(self.raw("/containers/json"), self._rendered(""))
        router = self.http_router
        self.assertEqual(set(router._entries._by_id), {db})
        # an unchanged record's entry is not encoded again (its status is, at each listing)
        kept = router._entries._by_id[db]
        self.clock.advance(60)
        self.assertEqual(self.raw("/containers/json?all=1"), self._rendered())
        self.assertIs(router._entries._by_id[db], kept)

    def test_listing_survives_a_bad_record(self) -> None:
        """One record that cannot be rendered (issue 18: a mistyped Cmd stored by an older pyd):
        ps lists every container, the bad one with its id; inspect still works;
        rm -f removes it."""
        import attrs

        good = self.create("good", Cmd=["true"])
        bad = self.create("bad", Cmd=["true"])
        c = self.svc._cache[bad]
        self.svc._cache[bad] = attrs.evolve(
            c, config={**c.config, "Cmd": [["sh"]], "Entrypoint": [["x"], 1]}
        )
        code, items = self.call("GET", "/containers/json?all=1")
        self.assertEqual(code, 200, items)
        self.assertEqual(sorted(i["Id"] for i in items), sorted([good, bad]))
        row = next(i for i in items if i["Id"] == bad)
        self.assertEqual(row["Names"], ["/bad"])
        # inspect renders it as stored (the mistyped values pass through)
        self.assertEqual(self.call("GET", f"/containers/{bad}/json")[0], 200)
        self.assertEqual(self.call("DELETE", f"/containers/{bad}?force=1")[0], 204)
        self.assertTrue(self.flushLoggedErrors(TypeError))

    def test_errors(self) -> None:
        """404 for unknown containers, 409 name conflict, 400 invalid config and filters."""
        self.assertEqual(
            self.call("GET", "/containers/nope/json"), (404, {"message": "No such container: nope"})
        )
        self.create("dup")
        code, body = self.call("POST", "/containers/create?name=dup", {"Image": "busybox"})
        self.assertEqual(code, 409)
        self.assertIn('The container name "/dup" is already in use', body["message"])
        code, _ = self.call(
            "POST", "/containers/create", {"Image": "busybox", "HostConfig": {"Memory": 1}}
        )
        self.assertEqual(code, 400)
        # moby daemon/list.go foldFilter's texts
        for q, msg in (
            (
                '{"status":["bogus"]}',
                "invalid filter 'status=bogus': invalid value for state (bogus): must be one of "
                "created, running, paused, restarting, removing, exited, dead",
            ),
            (
                '{"exited":["x"]}',
                "invalid filter 'exited=x': strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                '{"health":["ok"]}',
                "invalid filter 'health=ok': invalid value for health (ok): must be one of "
                "none, starting, healthy, unhealthy",
            ),
        ):
            code, body = self.call("GET", "/containers/json?filters=" + q)
            self.assertEqual((code, body["message"]), (400, msg))
        code, body = self.call("GET", '/containers/json?filters={"nope":["x"]}')
        self.assertEqual(code, 400)
        self.assertEqual(self.call("POST", "/containers/create", {"Image": "missing"})[0], 404)

    def test_list_filters(self) -> None:
        """-a, status, exited, label, name and id filters."""
        a = self.create("a1", Labels={"k": "v"})
        b = self.create("b1")
        self.call("POST", f"/containers/{b}/start")
        self.runtime.exit(b, 2)
        c = self.create("c1")
        self.call("POST", f"/containers/{c}/start")

        def ids(q: str) -> set[str]:
            code, items = self.call("GET", "/containers/json" + q)
            self.assertEqual(code, 200, items)
            return {i["Id"] for i in items}

        self.assertEqual(ids(""), {c})
        self.assertEqual(ids("?all=1"), {a, b, c})
        self.assertEqual(ids('?filters={"status":{"exited":true}}'), {b})
        self.assertEqual(ids('?all=1&filters={"exited":["2"]}'), {b})
        # exited does not imply all=1 (status does); a never-started container has no exit code
        self.assertEqual(ids('?filters={"exited":["2"]}'), set())
        self.assertEqual(ids('?all=1&filters={"exited":["0"]}'), set())
        self.assertEqual(ids('?filters={"status":["created"]}'), {a})
        self.assertEqual(ids('?filters={"status":["running","exited"]}'), {b, c})
        self.assertEqual(ids('?all=1&filters={"health":["none"]}'), {a, b, c})
        self.assertEqual(ids('?all=1&filters={"health":["healthy"]}'), set())
        self.assertEqual(ids('?all=1&filters={"label":["k=v"]}'), {a})
        self.assertEqual(ids('?all=1&filters={"name":["b1"]}'), {b})
        self.assertEqual(ids(f'?all=1&filters={{"id":["{a[:10]}"]}}'), {a})
        self.assertEqual(ids("?limit=1"), {c})
        self.assertEqual(ids('?all=1&filters={"ancestor":["busybox"]}'), {a, b, c})
        _, items = self.call("GET", "/containers/json?all=1")
        exited = next(i for i in items if i["Id"] == b)
        self.assertEqual(exited["Status"], "Exited (2) 1 second ago")

    def test_wait_headers_first(self) -> None:
        """wait answers 200 at once and writes the status code at the exit."""
        cid = self.create("ww")
        self.call("POST", f"/containers/{cid}/start")
        d = self.http.request("POST", f"http://pyd/containers/{cid}/wait?condition=next-exit")
        self.http.flush()
        resp = self.successResultOf(d)
        self.assertEqual(resp.code, 200)
        body = resp.content()
        self.assertNoResult(body)
        self.runtime.exit(cid, 3)
        self.http.flush()
        self.assertEqual(json.loads(self.successResultOf(body)), {"Error": None, "StatusCode": 3})

    def test_stop_kill_rm(self) -> None:
        """stop 204/304, kill 409 when stopped, rm 409 running / 204 with force."""
        cid = self.create("ss", Cmd=["sleep", "9"])
        self.call("POST", f"/containers/{cid}/start")
        code, _ = self.call("DELETE", f"/containers/{cid}")
        self.assertEqual(code, 409)
        d = self.http.request("POST", f"http://pyd/containers/{cid}/stop?t=1")
        self.clock.advance(1)
        self.http.flush()
        self.assertEqual(self.successResultOf(d).code, 204)
        self.assertEqual(self.call("POST", f"/containers/{cid}/stop")[0], 304)
        self.assertEqual(self.call("POST", f"/containers/{cid}/kill")[0], 409)
        self.assertEqual(self.call("DELETE", f"/containers/{cid}?force=1")[0], 204)
        self.assertEqual(self.call("GET", f"/containers/{cid}/json")[0], 404)

    def test_logs_multiplexed(self) -> None:
        """logs without a TTY are stdcopy frames; with timestamps each payload is prefixed."""
        cid = self.create("ll")
        path = self.svc.resolve(cid).extra["log_path"]
        with open(path, "w") as f:
            f.write(
                "2026-11-28T12:30:03.100000000+00:00 stdout F out\n"
                "2026-11-28T12:30:04.000000000+00:00 stderr F err\n"
            )
        code, raw = self.call("GET", f"/v1.50/containers/{cid}/logs?stdout=1&stderr=1")
        self.assertEqual(code, 200)
        self.assertEqual(
            raw, struct.pack(">BxxxL", 1, 4) + b"out\n" + struct.pack(">BxxxL", 2, 4) + b"err\n"
        )
        code, raw = self.call("GET", f"/containers/{cid}/logs?stdout=1&timestamps=1&tail=2")
        self.assertEqual(raw[8:], b"2026-11-28T12:30:03.1Z out\n")
        # as dockerd (conformance containers_api): the tail counts both streams' lines
        code, raw = self.call("GET", f"/containers/{cid}/logs?stdout=1&tail=1")
        self.assertEqual((code, raw or b""), (200, b""))
        self.assertEqual(self.call("GET", f"/containers/{cid}/logs")[0], 400)

    def test_human_duration(self) -> None:
        """Go's HumanDuration wording."""
        self.assertEqual(human_duration(0.5), "Less than a second")
        self.assertEqual(human_duration(1), "1 second")
        self.assertEqual(human_duration(59), "59 seconds")
        self.assertEqual(human_duration(61), "About a minute")
        self.assertEqual(human_duration(3600 * 3), "3 hours")

    # What clients that compare desired with actual state (Ansible's docker_container) read
    # back from a container that was created but not started yet.

    def test_created_container_shows_requested_endpoint_settings(self) -> None:
        """Before the first start, Networks holds the requested IPAMConfig, aliases and MAC."""
        ep = {
            "IPAMConfig": {"IPv4Address": "10.250.0.77"},
            "Aliases": ["web", "frontdoor"],
            "MacAddress": "02:42:0a:fa:00:99",
        }
        self.create("ep", NetworkingConfig={"EndpointsConfig": {"bridge": ep}})
        code, info = self.call("GET", "/containers/ep/json")
        self.assertEqual(code, 200)
        net = info["NetworkSettings"]["Networks"]["bridge"]
        self.assertEqual(net["IPAMConfig"], {"IPv4Address": "10.250.0.77"})
        self.assertEqual(net["Aliases"], ["web", "frontdoor"])
        self.assertEqual(net["MacAddress"], "02:42:0a:fa:00:99")
        self.assertEqual(net["IPAddress"], "")
        self.assertEqual(info["Config"]["MacAddress"], "02:42:0a:fa:00:99")

    def test_container_wide_mac_moves_to_the_main_network(self) -> None:
        """Config.MacAddress (deprecated) lands on the main network's endpoint with dockerd's
        warning, and inspect shows it in both places."""
        code, body = self.call(
            "POST",
            "/v1.50/containers/create?name=mac",
            {"Image": "busybox", "MacAddress": "02:42:0a:fa:00:98"},
        )
        self.assertEqual(code, 201, body)
        self.assertIn("The container-wide MacAddress field is now deprecated", body["Warnings"][0])
        info = self.call("GET", "/containers/mac/json")[1]
        self.assertEqual(info["Config"]["MacAddress"], "02:42:0a:fa:00:98")
        self.assertEqual(
            info["NetworkSettings"]["Networks"]["bridge"]["MacAddress"], "02:42:0a:fa:00:98"
        )

    def test_container_wide_mac_must_match_the_endpoint(self) -> None:
        """A different MAC on the main network's endpoint is a 400 with dockerd's text."""
        code, body = self.call(
            "POST",
            "/v1.50/containers/create?name=mac2",
            {
                "Image": "busybox",
                "MacAddress": "02:42:0a:fa:00:98",
                "NetworkingConfig": {
                    "EndpointsConfig": {"bridge": {"MacAddress": "02:42:0a:fa:00:97"}}
                },
            },
        )
        self.assertEqual(code, 400)
        self.assertEqual(
            body["message"],
            "the container-wide MAC address must match the endpoint-specific MAC address "
            "for the main network, or be left empty",
        )
        self.assertEqual(self.call("GET", "/containers/mac2/json")[0], 404)

    def test_mistyped_body_refused_and_nothing_stored(self) -> None:
        """C{{"Cmd": [["sh"]]}} and other mistyped bodies are 400s with dockerd's text; nothing is
        stored, so listing keeps working."""
        for body, msg in (
            (
                {"Image": "busybox", "Cmd": [["sh"]]},
                "invalid JSON: json: cannot unmarshal array into Go struct field "
                "CreateRequest.Cmd of type string",
            ),
            (
                {"Image": "busybox", "Entrypoint": [["x"], 1]},
                "invalid JSON: json: cannot unmarshal array into Go struct field "
                "CreateRequest.Entrypoint of type string",
            ),
            (
                {"Image": "busybox", "HostConfig": {"Memory": "1g"}},
                "invalid JSON: json: cannot unmarshal string into Go struct field "
                "HostConfig.HostConfig.Memory of type int64",
            ),
            (
                {"Image": "busybox", "HostConfig": ["x"]},
                "invalid JSON: json: cannot unmarshal array into Go struct field "
                "CreateRequest.HostConfig of type container.HostConfig",
            ),
        ):
            self.assertEqual(self.call("POST", "/containers/create", body), (400, {"message": msg}))
        self.assertEqual(self.call("GET", "/containers/json?all=1"), (200, []))

    def test_duplicate_and_case_variant_keys_read_as_go_reads_them(self) -> None:
        """A key sent twice, or in another case, means what dockerd makes of it: inspect shows
        the value the engine acted on."""
        raw = (
            b'{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"ShmSize": 1048576},'
            b' "hostconfig": {"readonlyrootfs": true}, "labels": {"a": "1"}, "Labels": {"b": "2"}}'
        )
        resp = self.successResultOf(
            self.http.request(
                "POST",
                "http://pyd/containers/create?name=dups",
                data=raw,
                headers={"Content-Type": "application/json"},
            )
        )
        self.assertEqual(resp.code, 201)
        code, info = self.call("GET", "/containers/dups/json")
        self.assertEqual(code, 200)
        self.assertTrue(info["HostConfig"]["ReadonlyRootfs"])
        self.assertEqual(info["HostConfig"]["ShmSize"], 1048576)
        self.assertEqual(info["Config"]["Labels"], {"a": "1", "b": "2"})

    def test_unset_list_fields_are_null_and_windows_fields_kept(self) -> None:
        """Inspect shows a list field the create body left out as null (Go's nil slice, as moby
        28 keeps HostConfig as decoded); NetworkDisabled with NetworkMode none and the
        Windows-only CpuCount are accepted and shown as sent (as dockerd on Linux), while
        NetworkDisabled with a network is refused."""
        self.create("plain", HostConfig={"NetworkMode": "none"})
        _, info = self.call("GET", "/containers/plain/json")
        for key in (
            "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
            "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "Devices", "Ulimits",
        ):  # fmt: skip
            self.assertIsNone(info["HostConfig"][key], key)
        # what dockerd stores for an unset field (adaptContainerSettings, create_unix.go) and
        # what Go leaves out of the JSON (omitempty)
        hc = info["HostConfig"]
        self.assertEqual((hc["Dns"], hc["PortBindings"], hc["OomKillDisable"]), (None, None, False))
        self.assertEqual(hc["MaskedPaths"], list(MASKED_PATHS))
        self.assertEqual(hc["ReadonlyPaths"], list(READONLY_PATHS))
        self.assertEqual((hc["IpcMode"], hc["CgroupnsMode"]), ("private", "host"))
        # on cgroup v2 the container gets a cgroup namespace of its own, and inspect says so
        self.svc.settings = attrs.evolve(self.svc.settings, cgroup_v2=True)
        _, info = self.call("GET", "/containers/plain/json")
        self.assertEqual(info["HostConfig"]["CgroupnsMode"], "private")
        self.svc.settings = attrs.evolve(self.svc.settings, cgroup_v2=False)
        for key in ("Init", "Mounts", "Tmpfs", "Sysctls", "Annotations", "KernelMemory"):
            self.assertNotIn(key, hc)
        self.create(
            "priv", HostConfig={"NetworkMode": "none", "Privileged": True, "Memory": 1 << 26}
        )
        _, info = self.call("GET", "/containers/priv/json")
        hc = info["HostConfig"]
        self.assertEqual((hc["MemorySwap"], hc["SecurityOpt"]), (2 << 26, ["label=disable"]))
        self.assertIsNone(hc["MaskedPaths"])
        self.create("nd", NetworkDisabled=True, HostConfig={"NetworkMode": "none", "CpuCount": 1})
        _, info = self.call("GET", "/containers/nd/json")
        self.assertIs(info["Config"]["NetworkDisabled"], True)
        self.assertEqual(info["HostConfig"]["CpuCount"], 1)
        code, body = self.call(
            "POST", "/containers/create?name=nd2", {"Image": "busybox", "NetworkDisabled": True}
        )
        self.assertEqual(code, 400)
        self.assertIn("NetworkDisabled is not supported by pyd with a network", body["message"])
