"""VolumeService rules with the real local driver on a temp dir, in-memory SQLite, fake mounts."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, update
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import Conflict, InvalidParameter, NotFound, PydError
from pyd.core.records import MountSpec
from pyd.core.seams import InlineBlocking
from pyd.drivers.process import ProcessResult
from pyd.drivers.volumes import local as local_driver
from pyd.drivers.volumes.local import LocalVolumeDriver
from pyd.drivers.volumes.stage import open_subpath
from pyd.engine.events import EventService
from pyd.engine.spec import mount_request
from pyd.engine.volumes import ANONYMOUS_LABEL, VolumeService, merge_tmpfs_options
from pyd.state.db import Database
from pyd.state.events import EventRepository
from pyd.state.models import ContainerRow
from pyd.state.volumes import VolumeRepository
from tests.helpers.memdb import memory_db
from tests.helpers.sync import run_sync


class RecordingRunner:
    """A ProcessRunner that records argv and answers rc 0."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], **kw: Any) -> Deferred[ProcessResult]:
        self.calls.append(list(argv))
        return succeed(ProcessResult(tuple(argv), 0, b"", b""))


class FakeMountDriver(LocalVolumeDriver):
    """The local driver with a fake mount table instead of the kernel's."""

    def __init__(self, root: str) -> None:
        self.runner = RecordingRunner()
        super().__init__(root, InlineBlocking(), self.runner)
        self.mounted: set[str] = set()
        self.staged: dict[str, list[str]] = {}
        self.released_staging: list[str] = []

    async def mount(self, name: str, fstype: str, device: str, options: str) -> None:
        await super().mount(name, fstype, device, options)
        self.mounted.add(name)

    async def unmount(self, name: str) -> None:
        self.runner.calls.append(["umount", self.data_path(name)])
        self.mounted.discard(name)

    def is_mounted(self, name: str) -> Deferred[bool]:
        return succeed(name in self.mounted)

    def stage_subpath(
        self, container_id: str, index: int, name: str, subpath: str, recursive: bool
    ) -> Deferred[str]:
        """The real check (the subpath opened beneath the volume), a fake staging point."""
        os.close(open_subpath(self.data_path(name), subpath))
        point = f"/staged/{container_id}/{index}"
        self.staged.setdefault(container_id, []).append(point)
        return succeed(point)

    def release_staged(self, container_id: str) -> Deferred[None]:
        self.staged.pop(container_id, None)
        self.released_staging.append(container_id)
        return succeed(None)


def make_service(root: str) -> tuple[VolumeService, FakeMountDriver, Database, EventService]:
    db = memory_db(alembic=True)
    clock = Clock()
    clock.advance(1_800_000_000)
    events = EventService(EventRepository(db), clock)
    driver = FakeMountDriver(root)
    return VolumeService(VolumeRepository(db), driver, events), driver, db, events


def add_container(db: Database, cid: str, status: str = "created") -> None:
    db.run_sync(
        lambda conn: conn.execute(
            insert(ContainerRow).values(
                id=cid,
                name="/" + cid[:12],
                image_id="sha256:" + "0" * 64,
                image_ref="img",
                created=0,
                status=status,
                config={},
                host_config={},
                state={},
                network_settings={},
                mounts=[],
                restart_count=0,
                extra={},
            )
        )
    )


def set_status(db: Database, cid: str, status: str) -> None:
    db.run_sync(
        lambda conn: conn.execute(
            update(ContainerRow).where(ContainerRow.id == cid).values(status=status)
        )
    )


class Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-vol-unit-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.svc, self.driver, self.db, self.events = make_service(self.tmp)
        self.seen: list[tuple[str, str, str, dict[str, str]]] = []
        self.events.subscribe(
            lambda ev: self.seen.append((ev.type, ev.action, ev.actor_id, ev.attributes))
        )

    def err(self, coro: Any, kind: type[PydError]) -> str:
        with self.assertRaises(kind) as raised:
            run_sync(coro)
        return str(raised.exception)

    def actions(self) -> list[tuple[str, str]]:
        return [(a, n) for _t, a, n, _ in self.seen]


class VolumeApiRuleTests(Base):
    """create / inspect / ls / rm / prune follow dockerd's rules and messages."""

    def test_create_named(self) -> None:
        """A named volume gets its _data directory, a row and one create event; creating it
        again returns the same volume without another event."""
        v = run_sync(self.svc.create("data", "local", None, {"a": "b"}))
        self.assertEqual(v.mountpoint, os.path.join(self.tmp, "volumes", "data", "_data"))
        self.assertTrue(os.path.isdir(v.mountpoint))
        self.assertEqual(v.labels, {"a": "b"})
        self.assertIsNone(v.options)
        again = run_sync(self.svc.create("data", "", None, {"other": "x"}))
        self.assertEqual(again, v)
        self.assertEqual(self.actions(), [("create", "data")])
        self.assertEqual(self.seen[0][3], {"driver": "local"})

    def test_create_anonymous(self) -> None:
        """No name: a 64-hex name and the anonymous label."""
        v = run_sync(self.svc.create())
        self.assertRegex(v.name, r"^[0-9a-f]{64}$")
        self.assertEqual(v.labels, {ANONYMOUS_LABEL: ""})
        self.assertTrue(v.anonymous)

    def test_create_errors(self) -> None:
        """Names, drivers and options are checked with dockerd's messages."""
        self.assertEqual(
            self.err(self.svc.create("a"), InvalidParameter),
            "create a: volume name is too short, names should be at least two alphanumeric "
            "characters",
        )
        self.assertEqual(
            self.err(self.svc.create("-x"), InvalidParameter),
            'create -x: "-x" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
            "use absolute path",
        )
        self.assertEqual(
            self.err(self.svc.create("vv", "nfsplug"), NotFound),
            'create vv: error looking up volume plugin nfsplug: plugin "nfsplug" not found',
        )
        self.assertEqual(
            self.err(self.svc.create("vv", "local", {"foo": "1"}), InvalidParameter),
            'create vv: invalid option: "foo"',
        )
        self.assertEqual(
            self.err(self.svc.create("vv", "local", {"type": "tmpfs"}), InvalidParameter),
            'create vv: missing required option: "device"',
        )
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "volumes", "vv")))

    def test_inspect_missing(self) -> None:
        """An unknown volume is a 404 with dockerd's text."""
        self.assertEqual(self.err(self.svc.inspect("nope"), NotFound), "get nope: no such volume")

    def test_list_filters(self) -> None:
        """dangling, driver, label, name (regexp) filter the list; bad keys/values are 400s."""
        run_sync(self.svc.create("alpha", labels={"tier": "db"}))
        run_sync(self.svc.create("beta", labels={"tier": "web", "x": ""}))
        run_sync(self.svc.create("gamma"))
        add_container(self.db, "c" * 64)
        run_sync(self.svc.resolve_mounts("c" * 64, mount_request({"Binds": ["gamma:/g"]}), []))

        def names(f: dict[str, list[str]]) -> list[str]:
            return [v.name for v in run_sync(self.svc.list_volumes(f))]

        self.assertEqual(names({}), ["alpha", "beta", "gamma"])
        self.assertEqual(names({"dangling": ["true"]}), ["alpha", "beta"])
        self.assertEqual(names({"dangling": ["0"]}), ["gamma"])
        self.assertEqual(names({"label": ["tier"]}), ["alpha", "beta"])
        self.assertEqual(names({"label": ["tier=web"]}), ["beta"])
        self.assertEqual(names({"label": ["tier", "x"]}), ["beta"])
        self.assertEqual(names({"name": ["^b"]}), ["beta"])
        self.assertEqual(names({"name": ["mm"]}), ["gamma"])
        self.assertEqual(names({"driver": ["local"]}), ["alpha", "beta", "gamma"])
        self.assertEqual(names({"driver": ["other"]}), [])
        self.assertEqual(
            self.err(self.svc.list_volumes({"bogus": ["1"]}), InvalidParameter),
            "invalid filter 'bogus'",
        )
        self.assertEqual(
            self.err(self.svc.list_volumes({"dangling": ["maybe"]}), InvalidParameter),
            "invalid filter 'dangling=[maybe]'",
        )

    def test_remove(self) -> None:
        """rm deletes row and data and emits destroy; a missing volume is 404 unless forced."""
        v = run_sync(self.svc.create("gone"))
        with open(os.path.join(v.mountpoint, "f"), "w") as f:
            f.write("x")
        run_sync(self.svc.remove("gone"))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "volumes", "gone")))
        self.assertEqual(self.actions()[-1], ("destroy", "gone"))
        self.assertEqual(self.err(self.svc.remove("gone"), NotFound), "get gone: no such volume")
        run_sync(self.svc.remove("gone", force=True))

    def test_remove_in_use_refused_even_forced(self) -> None:
        """A volume any container refers to (running or not) stays, data included: 409."""
        cid1, cid2 = "a" * 64, "b" * 64
        add_container(self.db, cid1)
        add_container(self.db, cid2, "exited")
        run_sync(self.svc.resolve_mounts(cid1, mount_request({"Binds": ["keep:/k"]}), []))
        run_sync(
            self.svc.resolve_mounts(
                cid2,
                mount_request({"Mounts": [{"Type": "volume", "Source": "keep", "Target": "/x"}]}),
                [],
            )
        )
        for force in (False, True):
            self.assertEqual(
                self.err(self.svc.remove("keep", force), Conflict),
                f"remove keep: volume is in use - [{cid1}, {cid2}]",
            )
        self.assertTrue(os.path.isdir(os.path.join(self.tmp, "volumes", "keep", "_data")))

    def test_repository_restrict_backstop(self) -> None:
        """Even a direct row delete is refused by the repository while a use exists."""
        cid = "d" * 64
        add_container(self.db, cid)
        run_sync(self.svc.resolve_mounts(cid, mount_request({"Binds": ["vv:/k"]}), []))
        repo = VolumeRepository(self.db)
        f = self.failureResultOf(repo.delete("vv"), Conflict)
        self.assertEqual(str(f.value), f"remove vv: volume is in use - [{cid}]")

    def test_prune(self) -> None:
        """Default prune removes unused anonymous volumes only; all=true every unused local
        volume without mount options; label filters apply; the prune event reports bytes."""
        anon = run_sync(self.svc.create())
        with open(os.path.join(anon.mountpoint, "f"), "wb") as f:
            f.write(b"x" * 1000)
        run_sync(self.svc.create("named", labels={"keep": "no"}))
        run_sync(self.svc.create("named2", labels={"keep": "yes"}))
        run_sync(self.svc.create("withopts", options={"type": "tmpfs", "device": "tmpfs"}))
        cid = "e" * 64
        add_container(self.db, cid)
        used = run_sync(self.svc.resolve_mounts(cid, mount_request({}), ["/anon"]))[0].name
        deleted, reclaimed = run_sync(self.svc.prune({}))
        self.assertEqual((deleted, reclaimed), ([anon.name], 1000))
        self.assertEqual(self.seen[-1][1:], ("prune", "", {"reclaimed": "1000"}))
        deleted, _ = run_sync(self.svc.prune({"all": ["true"], "label!": ["keep=yes"]}))
        self.assertEqual(deleted, ["named"])
        deleted, _ = run_sync(self.svc.prune({"all": ["1"], "label": ["keep"]}))
        self.assertEqual(deleted, ["named2"])
        left = [v.name for v in run_sync(self.svc.list_volumes({}))]
        self.assertEqual(sorted(left), sorted([used, "withopts"]))
        self.assertEqual(
            self.err(self.svc.prune({"all": ["maybe"]}), InvalidParameter),
            "invalid filter 'all': strconv.ParseBool: parsing \"maybe\": invalid syntax",
        )
        self.assertEqual(
            self.err(self.svc.prune({"dangling": ["true"]}), InvalidParameter),
            "invalid filter 'dangling'",
        )

    def test_usage(self) -> None:
        """df rows: size and ref count of local volumes without options."""
        v = run_sync(self.svc.create("sized"))
        with open(os.path.join(v.mountpoint, "f"), "wb") as f:
            f.write(b"y" * 123)
        os.link(os.path.join(v.mountpoint, "f"), os.path.join(v.mountpoint, "g"))
        run_sync(self.svc.create("opt", options={"type": "tmpfs", "device": "tmpfs"}))
        cid = "f" * 64
        add_container(self.db, cid)
        run_sync(self.svc.resolve_mounts(cid, mount_request({"Binds": ["sized:/s"]}), []))
        rows = run_sync(self.svc.usage())
        self.assertEqual([(u.volume.name, u.size, u.ref_count) for u in rows], [("sized", 123, 1)])

    def test_start_recovers(self) -> None:
        """After a crash: a volume directory without a row is adopted (data kept), with the
        options of its opts.json; half-removed trash is swept."""
        os.makedirs(os.path.join(self.tmp, "volumes", "orphan", "_data"))
        with open(os.path.join(self.tmp, "volumes", "orphan", "_data", "keep"), "w") as f:
            f.write("data")
        os.makedirs(os.path.join(self.tmp, "volumes", "tmpv", "_data"))
        with open(os.path.join(self.tmp, "volumes", "tmpv", "opts.json"), "w") as f:
            f.write('{"type": "tmpfs", "device": "tmpfs"}')
        os.makedirs(os.path.join(self.tmp, "volumes", ".trash-x-1234", "_data"))
        run_sync(self.svc.start())
        self.assertEqual(run_sync(self.svc.inspect("orphan")).name, "orphan")
        self.assertEqual(
            run_sync(self.svc.inspect("tmpv")).options, {"type": "tmpfs", "device": "tmpfs"}
        )
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "volumes", ".trash-x-1234")))
        self.assertTrue(
            os.path.exists(os.path.join(self.tmp, "volumes", "orphan", "_data", "keep"))
        )

    def test_start_makes_a_lost_directory_again(self) -> None:
        """A plain volume's directory is not fsynced before its row commits: a row whose
        directory a power loss dropped gets it again, empty (with its opts.json when it has
        options), and the volume mounts as before."""
        run_sync(self.svc.create("lost"))
        run_sync(self.svc.create("lostopts", options={"type": "tmpfs", "device": "tmpfs"}))
        for name in ("lost", "lostopts"):
            shutil.rmtree(os.path.join(self.tmp, "volumes", name))
        run_sync(self.svc.start())
        self.assertEqual(os.listdir(os.path.join(self.tmp, "volumes", "lost", "_data")), [])
        with open(os.path.join(self.tmp, "volumes", "lostopts", "opts.json")) as f:
            self.assertEqual(json.load(f), {"type": "tmpfs", "device": "tmpfs"})
        self.assertEqual(run_sync(self.svc.inspect("lost")).name, "lost")

    def test_start_removes_a_creation_killed_before_its_data(self) -> None:
        """A kill between a new volume's directory and its _data (or during its options'
        write) leaves a directory no row and no scan knows: the start removes it. A row's
        directory in that state is made whole again; a directory holding anything else stays."""
        vols = os.path.join(self.tmp, "volumes")
        run_sync(self.svc.create("rowed"))
        shutil.rmtree(os.path.join(vols, "rowed", "_data"))
        os.makedirs(os.path.join(vols, "bare"))
        os.makedirs(os.path.join(vols, "halfopts"))
        with open(os.path.join(vols, "halfopts", "opts.json.tmp"), "w") as f:
            f.write('{"ty')
        os.makedirs(os.path.join(vols, "other"))
        with open(os.path.join(vols, "other", "mine"), "w") as f:
            f.write("x")
        run_sync(self.svc.start())
        self.assertEqual(sorted(os.listdir(vols)), ["other", "rowed"])
        self.assertEqual(os.listdir(os.path.join(vols, "rowed", "_data")), [])
        self.assertEqual([v.name for v in run_sync(self.svc.list_volumes())], ["rowed"])

    def test_removed_name_free_at_once(self) -> None:
        """A volume of the same name made right after rm starts empty; no trash is left."""
        v = run_sync(self.svc.create("again"))
        with open(os.path.join(v.mountpoint, "old"), "w") as f:
            f.write("x")
        run_sync(self.svc.remove("again"))
        v = run_sync(self.svc.create("again"))
        self.assertEqual(os.listdir(v.mountpoint), [])
        self.assertEqual(sorted(os.listdir(os.path.join(self.tmp, "volumes"))), ["again"])
        self.assertEqual(
            self.actions()[-3:], [("create", "again"), ("destroy", "again"), ("create", "again")]
        )

    def test_trash_under_a_mount_is_left(self) -> None:
        """The start's sweep of half-removed volumes never deletes through something mounted
        on the data: the trash stays, and is said."""
        trash = os.path.join(self.tmp, "volumes", ".trash-m-1234")
        os.makedirs(os.path.join(trash, "_data"))
        with open(os.path.join(trash, "_data", "mounted"), "w") as f:
            f.write("x")
        real = local_driver.is_mountpoint
        self.patch(local_driver, "is_mountpoint", lambda p: p.startswith(trash) or real(p))
        said: list[str] = []
        self.patch(local_driver.log, "warn", lambda fmt, **kw: said.append(str(kw["err"])))
        run_sync(self.svc.start())
        self.assertTrue(os.path.exists(os.path.join(trash, "_data", "mounted")))
        self.assertEqual(said, [f"{trash}/_data is mounted: left in place"])


class CopyUpRecoveryTests(Base):
    """A copy-up interrupted by a crash is finished or redone, never left half-done."""

    def test_complete_stage_finished(self) -> None:
        """A stage marked complete is moved into _data at start; an unmarked one is dropped."""
        v1 = run_sync(self.svc.create("done1"))
        v2 = run_sync(self.svc.create("half1"))
        stage1 = v1.mountpoint + ".copyup"
        os.makedirs(os.path.join(stage1, "sub"))
        os.chmod(stage1, 0o750)
        with open(os.path.join(stage1, "a"), "w") as f:
            f.write("a")
        with open(os.path.join(os.path.dirname(v1.mountpoint), "copyup.complete"), "w"):
            pass
        with open(os.path.join(v1.mountpoint, "a"), "w") as f:
            f.write("moved before the crash")
        os.makedirs(v2.mountpoint + ".copyup")
        run_sync(self.svc.start())
        self.assertEqual(sorted(os.listdir(v1.mountpoint)), ["a", "sub"])
        with open(os.path.join(v1.mountpoint, "a")) as f:
            self.assertEqual(f.read(), "moved before the crash")
        self.assertEqual(os.stat(v1.mountpoint).st_mode & 0o777, 0o750)
        self.assertFalse(os.path.exists(stage1))
        self.assertFalse(
            os.path.exists(os.path.join(os.path.dirname(v1.mountpoint), "copyup.complete"))
        )
        self.assertFalse(os.path.exists(v2.mountpoint + ".copyup"))
        self.assertEqual(os.listdir(v2.mountpoint), [])


class ResolveMountsTests(Base):
    """resolve_mounts parses Binds, Mounts, Tmpfs, volumes-from and anonymous volumes."""

    cid = "1" * 64

    def setUp(self) -> None:
        super().setUp()
        add_container(self.db, self.cid)

    def resolve(
        self,
        hc: dict[str, Any],
        image_volumes: Sequence[str] = (),
        volumes_from: Sequence[Sequence[MountSpec]] = (),
    ) -> dict[str, MountSpec]:
        specs = run_sync(
            self.svc.resolve_mounts(self.cid, mount_request(hc), image_volumes, volumes_from)
        )
        return {m.destination: m for m in specs}

    def bad(self, hc: dict[str, Any], image_volumes: Sequence[str] = ()) -> str:
        return self.err(
            self.svc.resolve_mounts(self.cid, mount_request(hc), image_volumes), InvalidParameter
        )

    def test_binds(self) -> None:
        """Named volumes are created (mode z), host paths bound (rprivate), missing host
        directories created, ro/nocopy/propagation honoured."""
        host = os.path.join(self.tmp, "host", "missing")
        m = self.resolve({"Binds": ["data:/data", f"{host}:/h:ro,rshared", "cache:/c:nocopy"]})
        d = m["/data"]
        self.assertEqual(
            (d.type, d.name, d.driver, d.mode, d.rw, d.copy_up, d.propagation),
            ("volume", "data", "local", "z", True, True, ""),
        )
        self.assertEqual(d.source, os.path.join(self.tmp, "volumes", "data", "_data"))
        h = m["/h"]
        self.assertEqual(
            (h.type, h.source, h.rw, h.mode, h.propagation),
            ("bind", host, False, "ro,rshared", "rshared"),
        )
        self.assertTrue(os.path.isdir(host))
        self.assertFalse(m["/c"].copy_up)
        self.assertEqual(m["/c"].mode, "nocopy")
        uses = self.successResultOf(VolumeRepository(self.db).uses_of(self.cid))
        self.assertEqual(uses, [("cache", "/c"), ("data", "/data")])

    def test_bind_errors(self) -> None:
        """Malformed Binds get dockerd's messages."""
        self.assertEqual(self.bad({"Binds": ["/a:rw"]}), "invalid volume specification: '/a:rw'")
        self.assertEqual(self.bad({"Binds": [":/x"]}), "invalid volume specification: ':/x'")
        self.assertEqual(
            self.bad({"Binds": ["a:/x:/y:z:q"]}), "invalid volume specification: 'a:/x:/y:z:q'"
        )
        self.assertEqual(self.bad({"Binds": ["vol:/x:bogus"]}), "invalid mode: bogus")
        self.assertEqual(self.bad({"Binds": ["vol:/x:ro,rw"]}), "invalid mode: ro,rw")
        self.assertEqual(
            self.bad({"Binds": ["vol:rel"]}),
            "invalid volume specification: 'vol:rel': invalid mount config for type \"volume\": "
            "invalid mount path: 'rel' mount path must be absolute",
        )
        self.assertEqual(
            self.bad({"Binds": ["/tmp:/"]}),
            "invalid volume specification: '/tmp:/': invalid mount config for type \"bind\": "
            "invalid specification: destination can't be '/'",
        )
        self.assertEqual(self.bad({"Binds": ["v1:/x", "v2:/x/"]}), "Duplicate mount point: /x")
        self.assertEqual(
            self.bad({"Binds": ["v1:/x"], "Tmpfs": {"/x": ""}}), "Duplicate mount point: /x"
        )
        self.assertIn("includes invalid characters", self.bad({"Binds": ["rel/path:/x"]}))
        self.assertEqual(self.successResultOf(VolumeRepository(self.db).all()), [])

    def test_backslash_and_relative_sources_are_names(self) -> None:
        """Escape 2 of issue 12: C{\\}, C{\\root}, C{./x}, C{~} are volume names (and refused
        as names, with dockerd's texts), never host paths; nothing is created on the host."""
        for source in ("\\", "~"):
            self.assertIn("volume name is too short", self.bad({"Binds": [f"{source}:/host"]}))
        for source in ("\\root", "\\\\etc", "./x", "~/x"):
            self.assertIn(
                "includes invalid characters for a local volume name",
                self.bad({"Binds": [f"{source}:/host"]}),
            )
        err = self.bad({"Mounts": [{"Type": "bind", "Source": "\\root", "Target": "/h"}]})
        self.assertIn("'\\root' mount path must be absolute", err)
        self.assertEqual(self.successResultOf(VolumeRepository(self.db).all()), [])

    def test_mounts(self) -> None:
        """--mount volume (labels, driver opts, nocopy), bind (propagation), tmpfs (size, mode)."""
        src = os.path.join(self.tmp, "src")
        os.mkdir(src)
        m = self.resolve(
            {
                "Mounts": [
                    {
                        "Type": "volume",
                        "Source": "mv",
                        "Target": "/mv",
                        "ReadOnly": True,
                        "VolumeOptions": {
                            "NoCopy": True,
                            "Labels": {"l": "1"},
                            "DriverConfig": {
                                "Name": "local",
                                "Options": {"type": "tmpfs", "device": "tmpfs", "o": "size=2m"},
                            },
                        },
                    },
                    {
                        "Type": "bind",
                        "Source": src,
                        "Target": "/b",
                        "BindOptions": {"Propagation": "rslave"},
                    },
                    {
                        "Type": "tmpfs",
                        "Target": "/t",
                        "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1770},
                    },
                    {"Type": "volume", "Target": "/anon"},
                ]
            }
        )
        mv = m["/mv"]
        self.assertEqual((mv.rw, mv.copy_up, mv.mode), (False, False, "z"))
        vol = run_sync(self.svc.inspect("mv"))
        self.assertEqual(vol.labels, {"l": "1"})
        self.assertEqual(vol.options, {"type": "tmpfs", "device": "tmpfs", "o": "size=2m"})
        self.assertEqual((m["/b"].type, m["/b"].propagation, m["/b"].mode), ("bind", "rslave", ""))
        t = m["/t"]
        self.assertEqual((t.type, t.source, t.rw, t.listed), ("tmpfs", "", True, True))
        self.assertEqual(t.options, ("noexec", "nosuid", "nodev", "mode=1770", "size=1m"))
        anon = run_sync(self.svc.inspect(m["/anon"].name))
        self.assertTrue(anon.anonymous)
        self.assertTrue(m["/anon"].copy_up)

    def test_mount_errors(self) -> None:
        """--mount validation: missing bind source refused, wrong options, duplicates."""
        self.assertEqual(
            self.bad({"Mounts": [{"Type": "bind", "Source": "/no/such/dir", "Target": "/b"}]}),
            'invalid mount config for type "bind": bind source path does not exist: /no/such/dir',
        )
        self.assertFalse(os.path.exists("/no/such/dir"))
        self.assertEqual(
            self.bad({"Mounts": [{"Type": "tmpfs", "Source": "x", "Target": "/t"}]}),
            'invalid mount config for type "tmpfs": field Source must not be specified',
        )
        self.assertEqual(
            self.bad(
                {
                    "Mounts": [
                        {"Type": "volume", "Target": "/t", "BindOptions": {"Propagation": "shared"}}
                    ]
                }
            ),
            'invalid mount config for type "volume": field BindOptions must not be specified',
        )
        self.assertEqual(
            self.bad(
                {
                    "Mounts": [
                        {
                            "Type": "bind",
                            "Source": "/tmp",
                            "Target": "/b",
                            "BindOptions": {"Propagation": "weird"},
                        }
                    ]
                }
            ),
            'invalid mount config for type "bind": invalid propagation mode: weird',
        )
        self.assertEqual(
            self.bad({"Mounts": [{"Type": "volume", "Target": ""}]}),
            'invalid mount config for type "volume": field Target must not be empty',
        )
        self.assertEqual(
            self.bad({"Mounts": [{"Type": "nope", "Target": "/x"}]}),
            'invalid mount config for type "nope": mount type unknown',
        )
        self.assertEqual(
            self.bad({"Binds": ["vv:/x"], "Mounts": [{"Type": "volume", "Target": "/x/"}]}),
            "Duplicate mount point: /x/",
        )
        self.assertEqual(
            self.bad({"Tmpfs": {"rel": ""}}),
            "invalid mount path: 'rel' mount path must be absolute",
        )

    def test_anonymous_and_tmpfs(self) -> None:
        """Image VOLUMEs and -v /path become anonymous volumes unless something else is mounted
        there; --tmpfs mounts merge options and are not listed."""
        m = self.resolve(
            {"Binds": ["named:/data"], "Tmpfs": {"/run": "rw,exec,size=64k"}},
            ["/data", "/var/lib/x/", "/run"],
        )
        self.assertEqual(m["/data"].name, "named")
        anon = m["/var/lib/x"]
        self.assertRegex(anon.name, r"^[0-9a-f]{64}$")
        self.assertTrue(anon.copy_up)
        run = m["/run"]
        self.assertEqual((run.type, run.listed, run.rw), ("tmpfs", False, True))
        self.assertEqual(run.options, ("nosuid", "nodev", "exec", "size=64k"))
        self.assertEqual(len(self.successResultOf(VolumeRepository(self.db).all())), 2)

    def test_volume_driver(self) -> None:
        """--volume-driver only matters when a volume is made: then an unknown one is a 404."""
        self.resolve({"VolumeDriver": "nfsx", "Binds": [f"{self.tmp}:/h"]})
        e = self.assertRaises(
            NotFound,
            run_sync,
            self.svc.resolve_mounts(
                self.cid, mount_request({"VolumeDriver": "nfsx", "Binds": ["vx:/x"]}), []
            ),
        )
        self.assertEqual(
            str(e), 'create vx: error looking up volume plugin nfsx: plugin "nfsx" not found'
        )

    def test_failure_rolls_back_anonymous(self) -> None:
        """If recording the uses fails (no container row), the anonymous volumes made for the
        request are removed again; named ones stay, as with dockerd."""
        d = Deferred.fromCoroutine(
            self.svc.resolve_mounts("0" * 64, mount_request({"Binds": ["named1:/n"]}), ["/anon"])
        )
        self.failureResultOf(d, Conflict)
        names = [v.name for v in self.successResultOf(VolumeRepository(self.db).all())]
        self.assertEqual(names, ["named1"])

    def test_sorted_parents_first(self) -> None:
        """Mounts come back with parents before children."""
        specs = run_sync(
            self.svc.resolve_mounts(
                self.cid,
                mount_request({"Binds": ["a1:/x/y/z", "a2:/x"], "Tmpfs": {"/x/y": ""}}),
                [],
            )
        )
        self.assertEqual([s.destination for s in specs], ["/x", "/x/y", "/x/y/z"])

    def test_volumes_from(self) -> None:
        """--volumes-from copies the other container's mounts (ro when asked), records the use,
        and Binds override them."""
        other = "2" * 64
        add_container(self.db, other)
        theirs = run_sync(
            self.svc.resolve_mounts(
                other,
                mount_request(
                    {"Binds": ["shared:/s", f"{self.tmp}:/h", "over:/o"], "Tmpfs": {"/tt": ""}}
                ),
                [],
            )
        )
        m = self.resolve({"VolumesFrom": [f"{other}:ro"], "Binds": ["mine:/o"]}, (), [theirs])
        self.assertEqual((m["/s"].name, m["/s"].rw, m["/s"].copy_up), ("shared", False, False))
        self.assertEqual((m["/h"].source, m["/h"].rw), (self.tmp, False))
        self.assertEqual(m["/o"].name, "mine")
        self.assertNotIn("/tt", m)
        self.assertEqual(run_sync(self.svc.list_volumes({"dangling": ["true"]})), [])
        self.assertEqual(
            self.err(
                self.svc.resolve_mounts(
                    self.cid, mount_request({"VolumesFrom": ["x:nocopy"]}), [], [[]]
                ),
                InvalidParameter,
            ),
            "invalid mode: nocopy",
        )


class TmpfsOptionTests(SynchronousTestCase):
    """moby's MergeTmpfsOptions semantics."""

    def test_later_wins(self) -> None:
        """A later flag replaces its inverse; a later key=value replaces the earlier one."""
        self.assertEqual(
            merge_tmpfs_options(["noexec", "nosuid", "size=1m", "exec", "size=2m"]),
            ["nosuid", "exec", "size=2m"],
        )


class LifecycleTests(Base):
    """prepare / container_stopped / release: mounts, copy-up, events, anonymous cleanup."""

    cid = "3" * 64

    def setUp(self) -> None:
        super().setUp()
        add_container(self.db, self.cid)
        self.rootfs = os.path.join(self.tmp, "rootfs")
        os.makedirs(os.path.join(self.rootfs, "data", "sub"))
        with open(os.path.join(self.rootfs, "data", "sub", "file"), "w") as f:
            f.write("from image")
        os.symlink("/data", os.path.join(self.rootfs, "link"))

    def test_copy_up_once_into_empty(self) -> None:
        """The image's content at the mount path is copied into an empty volume, following a
        symlink inside the rootfs only; a non-empty volume or nocopy is left alone."""
        specs = run_sync(
            self.svc.resolve_mounts(
                self.cid, mount_request({"Binds": ["v1:/link", "v2:/data:nocopy"]}), []
            )
        )
        run_sync(self.svc.prepare(self.cid, specs, self.rootfs))
        v1 = run_sync(self.svc.inspect("v1")).mountpoint
        with open(os.path.join(v1, "sub", "file")) as f:
            self.assertEqual(f.read(), "from image")
        v2 = run_sync(self.svc.inspect("v2")).mountpoint
        self.assertEqual(os.listdir(v2), [])
        os.remove(os.path.join(v1, "sub", "file"))
        run_sync(self.svc.prepare(self.cid, specs, self.rootfs))
        self.assertEqual(os.listdir(os.path.join(v1, "sub")), [])
        mounts = [
            (n, a["destination"], a["read/write"]) for _t, act, n, a in self.seen if act == "mount"
        ]
        self.assertEqual(mounts[:2], [("v1", "/link", "true"), ("v2", "/data", "true")])

    def test_subpath(self) -> None:
        """VolumeOptions.Subpath: inspect's source is the volume, the runtime gets a staging
        point opened by descriptor; it must exist at start, and a link leaving the volume is
        refused with dockerd's texts (404 missing, 400 escape) and nothing staged."""
        specs = run_sync(
            self.svc.resolve_mounts(
                self.cid,
                mount_request(
                    {
                        "Mounts": [
                            {
                                "Type": "volume",
                                "Source": "sp",
                                "Target": "/s",
                                "VolumeOptions": {"Subpath": "a/./b/"},
                            }
                        ]
                    }
                ),
                [],
            )
        )
        mp = run_sync(self.svc.inspect("sp")).mountpoint
        self.assertEqual((specs[0].source, specs[0].subpath), (mp, "a/b"))
        self.assertEqual(
            self.err(self.svc.prepare(self.cid, specs, ""), NotFound),
            "cannot access path a/b: no such file or directory",
        )
        os.makedirs(os.path.join(mp, "a"))
        for target in (self.tmp, "/", "../../..", "../" * 8 + self.tmp.lstrip("/")):
            os.symlink(target, os.path.join(mp, "a", "b"))
            self.assertEqual(
                self.err(self.svc.prepare(self.cid, specs, ""), InvalidParameter),
                "path concatenation escapes the base directory, subpath: a/b",
            )
            os.remove(os.path.join(mp, "a", "b"))
        self.assertEqual(self.driver.staged, {})
        # every prepare drops what an earlier start left, and what it made itself on failure
        self.assertEqual(self.driver.released_staging.count(self.cid), 2 * 5)
        os.symlink("../real", os.path.join(mp, "a", "b"))  # a link that stays inside is fine
        os.mkdir(os.path.join(mp, "real"))
        runtime = run_sync(self.svc.prepare(self.cid, specs, ""))
        self.assertEqual(runtime[0].source, f"/staged/{self.cid}/0")
        self.assertEqual(runtime[0].destination, "/s")
        run_sync(self.svc.unstage(self.cid))
        self.assertEqual(self.driver.staged, {})
        self.assertIn(self.cid, self.driver.released_staging)
        self.assertEqual(
            self.err(
                self.svc.resolve_mounts(
                    self.cid,
                    mount_request(
                        {
                            "Mounts": [
                                {
                                    "Type": "volume",
                                    "Source": "sp",
                                    "Target": "/t",
                                    "VolumeOptions": {"Subpath": "../x"},
                                }
                            ]
                        }
                    ),
                    [],
                ),
                InvalidParameter,
            ),
            'invalid mount config for type "volume": subpath must be a relative path within the '
            "volume",
        )

    def test_no_staging_round_trip_without_subpaths(self) -> None:
        """Staging points exist only for volume subpaths and confined binds: a container with
        neither skips the staging area at start and at removal (an io round trip each); one
        whose mounts were never saved (a create cut short) still has it swept."""
        specs = run_sync(
            self.svc.resolve_mounts(self.cid, mount_request({"Binds": ["plain:/p"]}), [])
        )
        run_sync(self.svc.prepare(self.cid, specs, ""))
        run_sync(self.svc.release(self.cid, False, specs))
        self.assertEqual(self.driver.released_staging, [])
        run_sync(self.svc.release(self.cid, False, None))
        self.assertEqual(self.driver.released_staging, [self.cid])

    def test_subpath_legacy_row(self) -> None:
        """A container stored before subpaths were kept apart (source .../_data/SUB) is read
        back with the subpath split off, so it too is opened inside the volume."""
        from pyd.state.containers import _mounts_from_json

        src = "/var/lib/pyd/volumes/v1/_data/a/b"
        (m,) = _mounts_from_json([{"type": "volume", "source": src, "destination": "/x",
                                   "name": "v1"}])  # fmt: skip
        self.assertEqual((m.source, m.subpath), ("/var/lib/pyd/volumes/v1/_data", "a/b"))

    def test_volume_over_file_refused(self) -> None:
        """A volume whose mount path is a file in the image is refused with dockerd's text."""
        with open(os.path.join(self.rootfs, "afile"), "w") as f:
            f.write("x")
        specs = run_sync(self.svc.resolve_mounts(self.cid, mount_request({}), ["/afile"]))
        self.assertEqual(
            self.err(self.svc.prepare(self.cid, specs, self.rootfs), InvalidParameter),
            "cannot mount volume over existing file, file exists "
            + os.path.join(self.rootfs, "afile"),
        )

    def test_bind_sources_recreated_at_start(self) -> None:
        """A -v host directory deleted after create is created again at start (dockerd does);
        a --mount bind source is not."""
        host = os.path.join(self.tmp, "h1")
        other = os.path.join(self.tmp, "h2")
        os.mkdir(other)
        hc = {
            "Binds": [f"{host}:/h"],
            "Mounts": [{"Type": "bind", "Source": other, "Target": "/o"}],
        }
        self.db.run_sync(
            lambda conn: conn.execute(
                update(ContainerRow).where(ContainerRow.id == self.cid).values(host_config=hc)
            )
        )
        specs = run_sync(self.svc.resolve_mounts(self.cid, mount_request(hc), []))
        os.rmdir(host)
        os.rmdir(other)
        run_sync(self.svc.prepare(self.cid, specs, self.rootfs))
        self.assertTrue(os.path.isdir(host))
        self.assertFalse(os.path.exists(other))

    def test_mount_options_volume(self) -> None:
        """A volume with mount options is mounted at first prepare, kept while another running
        container uses it, unmounted when the last one stops."""
        other = "4" * 64
        add_container(self.db, other)
        run_sync(
            self.svc.create("tv", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
        )
        s1 = run_sync(self.svc.resolve_mounts(self.cid, mount_request({"Binds": ["tv:/t"]}), []))
        s2 = run_sync(self.svc.resolve_mounts(other, mount_request({"Binds": ["tv:/t"]}), []))
        run_sync(self.svc.prepare(self.cid, s1, self.rootfs))
        set_status(self.db, self.cid, "running")
        run_sync(self.svc.prepare(other, s2, self.rootfs))
        set_status(self.db, other, "running")
        path = self.driver.data_path("tv")
        self.assertEqual(
            self.driver.runner.calls[0],
            [
                *("mount", "--options-source=disable", "--types=tmpfs", "--options=size=1m"),
                *("--", "tmpfs", path),
            ],
        )
        set_status(self.db, self.cid, "exited")
        run_sync(self.svc.container_stopped(self.cid))
        self.assertIn("tv", self.driver.mounted)
        set_status(self.db, other, "exited")
        run_sync(self.svc.container_stopped(other))
        self.assertNotIn("tv", self.driver.mounted)
        run_sync(self.svc.container_stopped(other))  # idempotent
        self.assertEqual([c[0] for c in self.driver.runner.calls], ["mount", "umount"])
        self.assertEqual(
            [a for _t, a, n, _ in self.seen if n == "tv"],
            ["create", "mount", "mount", "unmount", "unmount", "unmount"],
        )

    def test_release(self) -> None:
        """rm -v / AutoRemove: anonymous volumes go, named stay; an anonymous volume another
        container still uses stays too."""
        other = "5" * 64
        add_container(self.db, other)
        specs = run_sync(
            self.svc.resolve_mounts(self.cid, mount_request({"Binds": ["named:/n"]}), ["/a", "/b"])
        )
        anon = {m.destination: m.name for m in specs}
        run_sync(
            self.svc.resolve_mounts(other, mount_request({"VolumesFrom": [self.cid]}), [], [specs])
        )
        run_sync(self.svc.release(self.cid, True))
        left = {v.name for v in run_sync(self.svc.list_volumes({}))}
        self.assertEqual(left, {"named", anon["/a"], anon["/b"]})
        run_sync(self.svc.release(other, True))
        left = {v.name for v in run_sync(self.svc.list_volumes({}))}
        self.assertEqual(left, {"named"})

    def test_release_keeps_without_flag(self) -> None:
        """Without remove_anonymous the anonymous volume stays (dangling)."""
        specs = run_sync(self.svc.resolve_mounts(self.cid, mount_request({}), ["/a"]))
        run_sync(self.svc.release(self.cid, False))
        self.assertEqual(
            [v.name for v in run_sync(self.svc.list_volumes({"dangling": ["1"]}))], [specs[0].name]
        )


class MountRootTests(SynchronousTestCase):
    """is_mountpoint asks statx(2) for the mount root (no read of the mount table)."""

    def test_mount_roots(self) -> None:
        self.assertTrue(local_driver.is_mountpoint("/"))
        self.assertTrue(local_driver.is_mountpoint("/proc"))
        tmp = tempfile.mkdtemp(prefix="pyd-vol-mnt-")
        self.addCleanup(shutil.rmtree, tmp, True)
        self.assertFalse(local_driver.is_mountpoint(tmp))
        self.assertFalse(local_driver.is_mountpoint(os.path.join(tmp, "missing")))

    def test_kernel_reports_mount_roots(self) -> None:
        """The kernels pyd runs on (5.8+) answer; the mount table is the fallback."""
        self.assertIs(local_driver._statx_mount_root("/proc"), True)
        self.assertIs(local_driver._statx_mount_root("/proc/self/fd"), False)
