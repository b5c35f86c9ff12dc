"""The volume API in memory: real router and engine, local driver on a temp dir, SQLite."""

from __future__ import annotations

import json
import shutil
import tempfile
from typing import Any
from urllib.parse import quote

from sqlalchemy import event
from sqlalchemy.engine import Engine
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.root import ApiRoot
from pyd.api.system import SystemRouter
from pyd.api.volumes import VolumesDiskUsage, VolumesRouter
from pyd.config import DaemonConfig
from pyd.engine.events import EventService
from pyd.engine.spec import mount_request
from pyd.engine.system import HostFacts, SystemService
from pyd.engine.volumes import VolumeService
from pyd.state.events import EventRepository
from pyd.state.volumes import VolumeRepository
from tests.helpers.memdb import memory_db
from tests.helpers.statements import count_statements
from tests.helpers.sync import run_sync
from tests.unit.test_volumes_engine import FakeMountDriver, add_container


class VolumesApiTests(SynchronousTestCase):
    """Status codes and JSON of /volumes/* as dockerd answers them."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-vol-api-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        clock = Clock()
        clock.advance(1_800_000_000)
        self.db = memory_db(alembic=True)
        events = self.events = EventService(EventRepository(self.db), clock)
        self.svc = VolumeService(VolumeRepository(self.db), FakeMountDriver(self.tmp), events)
        host = HostFacts("6.1", "Debian", "x86_64", 2, 1 << 30, "1", "h")
        system = SystemService("ID1", host, DaemonConfig(data_root=self.tmp))
        system.add_contributor(VolumesDiskUsage(self.svc))
        root = ApiRoot([SystemRouter(system, events, clock), VolumesRouter(self.svc)])
        self.http = StubTreq(root)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        kw: dict[str, Any] = {}
        if body is not None:
            kw["data"] = json.dumps(body).encode()
            kw["headers"] = {"Content-Type": "application/json"}
        resp = self.successResultOf(self.http.request(method, "http://pyd" + path, **kw))
        raw = self.successResultOf(resp.content())
        return resp.code, (json.loads(raw) if raw else None)

    def test_create_inspect_list(self) -> None:
        """create answers 201 with the Volume; inspect and ls show it."""
        code, v = self.call(
            "POST",
            "/v1.50/volumes/create",
            {
                "Name": "web",
                "Driver": "local",
                "Labels": {"a": "b"},
                "DriverOpts": {"type": "tmpfs", "device": "tmpfs"},
            },
        )
        self.assertEqual(code, 201)
        self.assertEqual(
            set(v), {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
        )
        self.assertEqual((v["Name"], v["Driver"], v["Scope"]), ("web", "local", "local"))
        self.assertEqual(v["Labels"], {"a": "b"})
        self.assertEqual(v["Options"], {"type": "tmpfs", "device": "tmpfs"})
        self.assertRegex(v["CreatedAt"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(self.call("GET", "/volumes/web"), (200, v))
        code, body = self.call("GET", "/volumes")
        self.assertEqual((code, body), (200, {"Volumes": [v], "Warnings": []}))
        code, plain = self.call("POST", "/volumes/create", {"Name": "plain"})
        self.assertEqual((plain["Labels"], plain["Options"]), (None, None))
        f = quote(json.dumps({"label": {"a=b": True}}))
        code, body = self.call("GET", f"/volumes?filters={f}")
        self.assertEqual([x["Name"] for x in body["Volumes"]], ["web"])

    def test_errors(self) -> None:
        """404 for unknown volume or driver, 400 for a bad name or filter, 409 in use."""
        self.assertEqual(
            self.call("GET", "/volumes/nope"), (404, {"message": "get nope: no such volume"})
        )
        self.assertEqual(
            self.call("DELETE", "/volumes/nope"), (404, {"message": "get nope: no such volume"})
        )
        self.assertEqual(self.call("DELETE", "/volumes/nope?force=1"), (204, None))
        code, body = self.call("POST", "/volumes/create", {"Name": "x", "Driver": "local"})
        self.assertEqual(code, 400)
        code, body = self.call("POST", "/volumes/create", {"Name": "xx", "Driver": "rexray"})
        self.assertEqual(
            (code, body["message"]),
            (404, 'create xx: error looking up volume plugin rexray: plugin "rexray" not found'),
        )
        f = quote(json.dumps({"bogus": {"1": True}}))
        self.assertEqual(
            self.call("GET", f"/volumes?filters={f}"), (400, {"message": "invalid filter 'bogus'"})
        )
        cid = "9" * 64
        add_container(self.db, cid)
        run_sync(self.svc.resolve_mounts(cid, mount_request({"Binds": ["busy:/b"]}), []))
        self.assertEqual(
            self.call("DELETE", "/volumes/busy?force=1"),
            (409, {"message": f"remove busy: volume is in use - [{cid}]"}),
        )
        self.assertEqual(self.call("GET", "/volumes/busy")[0], 200)

    def test_remove(self) -> None:
        """DELETE answers 204 and the volume is gone."""
        self.call("POST", "/volumes/create", {"Name": "tmp1"})
        self.assertEqual(self.call("DELETE", "/volumes/tmp1"), (204, None))
        self.assertEqual(self.call("GET", "/volumes/tmp1")[0], 404)

    def test_prune_versions(self) -> None:
        """API >= 1.42 prunes anonymous volumes only (all=true for all); older APIs prune all."""
        self.call("POST", "/volumes/create", {"Name": "named"})
        _, anon = self.call("POST", "/volumes/create", {})
        self.assertEqual(anon["Labels"], {"com.docker.volume.anonymous": ""})
        self.assertEqual(
            self.call("POST", "/v1.50/volumes/prune"),
            (200, {"VolumesDeleted": [anon["Name"]], "SpaceReclaimed": 0}),
        )
        self.assertEqual(
            self.call("POST", "/v1.41/volumes/prune"),
            (200, {"VolumesDeleted": ["named"], "SpaceReclaimed": 0}),
        )
        self.call("POST", "/volumes/create", {"Name": "named"})
        f = quote(json.dumps({"all": {"true": True}}))
        self.assertEqual(
            self.call("POST", f"/volumes/prune?filters={f}")[1]["VolumesDeleted"], ["named"]
        )
        self.assertEqual(
            self.call("POST", "/volumes/prune"), (200, {"VolumesDeleted": [], "SpaceReclaimed": 0})
        )

    def test_cluster_volume_endpoints(self) -> None:
        """Without swarm: PUT /volumes/NAME and ClusterVolumeSpec creates answer 503."""
        code, body = self.call("PUT", "/volumes/x?version=1", {})
        self.assertEqual(
            (code, body["message"]),
            (503, "volume update only valid for cluster volumes, but swarm is unavailable"),
        )
        code, _ = self.call("POST", "/volumes/create", {"Name": "cv", "ClusterVolumeSpec": {}})
        self.assertEqual(code, 503)
        # decoded first (moby 28 ReadJSON): a mistyped spec is the decoder's 400
        code, body = self.call("POST", "/volumes/create", {"Name": "cv", "ClusterVolumeSpec": "x"})
        self.assertEqual(
            (code, body["message"]),
            (
                400,
                "invalid JSON: json: cannot unmarshal string into Go struct field "
                "CreateOptions.ClusterVolumeSpec of type volume.ClusterVolumeSpec",
            ),
        )

    def test_system_df(self) -> None:
        """/system/df lists volumes with UsageData (Size, RefCount)."""
        self.call("POST", "/volumes/create", {"Name": "dfv"})
        code, body = self.call("GET", "/system/df")
        self.assertEqual(code, 200)
        (row,) = body["Volumes"]
        self.assertEqual(row["Name"], "dfv")
        self.assertEqual(row["UsageData"], {"Size": 0, "RefCount": 0})
        # type= (API 1.42): the areas asked for, the others null; an unknown one is a 400
        code, body = self.call("GET", "/system/df?type=volume")
        self.assertEqual((code, body["Images"], body["Containers"]), (200, None, None))
        self.assertEqual([v["Name"] for v in body["Volumes"]], ["dfv"])
        code, body = self.call("GET", "/system/df?type=nope")
        self.assertEqual((code, body), (400, {"message": "unknown object type: nope"}))
        code, body = self.call("GET", "/v1.41/system/df?type=nope")
        self.assertEqual(code, 200)


class VolumesApiStatementTests(SynchronousTestCase):
    """What each volume request costs the database (issue 21: the volume API trailed dockerd),
    counted so it cannot creep back (the same wiring as L{VolumesApiTests}, not its tests)."""

    call = VolumesApiTests.call

    def setUp(self) -> None:
        VolumesApiTests.setUp(self)  # type: ignore[arg-type]  # the same attributes, set on this case
        self.statements: list[str] = []
        count_statements(self, self.statements)

    def counted(self, method: str, path: str, body: Any = None) -> tuple[int, list[str]]:
        self.statements.clear()
        code, _ = self.call(method, path, body)
        return code, list(self.statements)

    def test_statements_per_request(self) -> None:
        """The repository mirrors the volumes table (read once, here by the first create; the
        daemon's start reads it): create is its insert and the event; inspect and list read
        nothing; rm of a plain volume is its delete (the uses' foreign key refuses a volume in
        use) and the event."""
        code, stmts = self.counted("POST", "/volumes/create", {"Name": "s1"})
        self.assertEqual((code, stmts), (201, ["SELECT", "INSERT", "INSERT"]))
        code, stmts = self.counted("POST", "/volumes/create", {"Name": "s2"})
        self.assertEqual((code, stmts), (201, ["INSERT", "INSERT"]))
        self.assertEqual(self.counted("POST", "/volumes/create", {"Name": "s2"}), (201, []))
        self.assertEqual(self.counted("GET", "/volumes/s1"), (200, []))
        self.assertEqual(self.counted("GET", "/volumes"), (200, []))
        self.assertEqual(self.counted("GET", "/volumes/nope")[0], 404)
        self.assertEqual(self.statements, [])
        self.assertEqual(self.counted("DELETE", "/volumes/s1"), (204, ["DELETE", "INSERT"]))
        self.assertEqual(self.counted("GET", "/volumes/s1")[0], 404)

    def test_create_and_its_event_are_one_transaction(self) -> None:
        """The create event is written by the insert's transaction: one round trip to the DB
        thread, and nothing left on it after the answer."""
        begins: list[object] = []

        def began(conn: Any) -> None:
            begins.append(conn)

        event.listen(Engine, "begin", began)
        self.addCleanup(event.remove, Engine, "begin", began)
        self.call("POST", "/volumes/create", {"Name": "warm"})  # the mirror is read once
        begins.clear()
        live: list[Any] = []
        self.addCleanup(self.events.subscribe(live.append))
        code, stmts = self.counted("POST", "/volumes/create", {"Name": "t1"})
        self.assertEqual((code, stmts, len(begins)), (201, ["INSERT", "INSERT"], 1))
        (published,) = live  # fanned out once committed, as stored
        stored = self.successResultOf(self.events.history(0, None))
        self.assertEqual(stored[-1], published)
        self.assertEqual((published.action, published.actor_id), ("create", "t1"))
