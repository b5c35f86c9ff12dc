"""The whole daemon in process: L{build_service} with fake drivers, a memory reactor, and StubTreq
over the real API site. Proves the wiring: every area is built, started in order, and a
container created from a loaded image starts and inspects through all of them."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from pyd import config as cfgmod
from pyd.core.seams import InlineBlocking
from pyd.daemon.drivers import Drivers
from pyd.daemon.tree import PydService
from pyd.daemon.wiring import build_service
from pyd.drivers.fswatch import DirWatcher
from pyd.drivers.network.dns import NameTable
from pyd.drivers.process import ProcessResult
from pyd.drivers.registry import HTTPClients
from pyd.drivers.runtime.oci import OciRuntime, RuntimeSet
from pyd.drivers.storage.layers import InProcessExtractor
from pyd.drivers.streams.execs import ConmonExecDriver
from pyd.drivers.volumes.local import LocalVolumeDriver
from pyd.engine.system import HostFacts
from pyd.state import migrate
from pyd.state.db import Database, make_engine
from tests.fakes.layers import UnmountedLayerStore
from tests.fakes.network import FakeFirewall, FakeNetlink, FakeResolver
from tests.fakes.runtime import FakeRuntime
from tests.helpers.images import DEFAULT_TAG, busybox_image_tar


class NoProcesses:
    """A L{pyd.drivers.process.ProcessRunner} that runs nothing: the flows under test start no
    helper process, and one that tried would fail loudly here."""

    def __init__(self) -> None:
        self.argvs: list[tuple[str, ...]] = []

    def run(self, argv: Any, **kw: Any) -> Deferred[ProcessResult]:
        self.argvs.append(tuple(argv))
        return succeed(ProcessResult(tuple(argv), 127, b"", b"not in this test"))


def fake_drivers(root: str, runtime: FakeRuntime, resolvers: list[NameTable]) -> Any:
    """A driver factory for L{build_service}: fakes for the kernel, inline blocking."""

    def make(config: cfgmod.DaemonConfig, reactor: Any) -> Drivers:
        io = InlineBlocking()
        runner = NoProcesses()

        def resolver(table: NameTable) -> FakeResolver:
            resolvers.append(table)
            return FakeResolver()

        async def no_pids(cid: str) -> list[int]:
            return []

        async def no_fetch(url: str, path: str) -> None:
            raise AssertionError("no download expected")

        return Drivers(
            pools=(),
            db_blocking=InlineBlocking(),
            io=io,
            runner=runner,
            host=HostFacts("6.1.0", "Test OS", "x86_64", 2, 1 << 30, "2", "testhost"),
            cap_bounding=None,
            init_path="",
            runtime=runtime,
            runtimes=RuntimeSet(
                {"crun": OciRuntime("crun", "/usr/bin/crun", os.path.join(root, "crun"))}, "crun"
            ),
            exec_driver=ConmonExecDriver(reactor, io, crun_root=os.path.join(root, "crun")),
            container_pids=no_pids,
            layers=UnmountedLayerStore(
                os.path.join(config.data_root, "storage"), InProcessExtractor(io), use_fsconfig=True
            ),
            fetcher=no_fetch,
            netlink=FakeNetlink(),
            firewall=FakeFirewall(),
            resolver=resolver,
            volumes=LocalVolumeDriver(config.data_root, io, runner),
            registry=HTTPClients(reactor, os.path.join(root, "certs.d")),
            log_watcher=DirWatcher(reactor),
        )

    return make


class DaemonWiringTests(SynchronousTestCase):
    """build_service wires every area by construction; the tree starts and serves."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-wiring-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        data_root = os.path.join(self.tmp, "data")
        os.makedirs(data_root)
        # The schema is brought to head in-process here; a daemon does it in a child process.
        db = Database(make_engine(os.path.join(data_root, "pyd.db")), InlineBlocking())
        db.run_sync(migrate.upgrade)
        db.close()
        resolv = os.path.join(self.tmp, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 192.0.2.53\n")
        self.config = cfgmod.build(
            {
                "data-root": data_root,
                "exec-root": os.path.join(self.tmp, "exec"),
                "hosts": [f"unix://{self.tmp}/pyd.sock"],
                "pidfile": os.path.join(self.tmp, "pyd.pid"),
                "ip-masq": False,
            },
            os.path.join(self.tmp, "absent.json"),
            file_required=False,
        )
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_800_000_000)
        self.runtime = FakeRuntime(self.reactor)
        self.resolvers: list[NameTable] = []
        self.service = build_service(
            self.config,
            self.reactor,
            fake_drivers(self.tmp, self.runtime, self.resolvers),
        )
        assert isinstance(self.service, PydService)
        self.service.startService()
        self.addCleanup(self.stop)
        self.successResultOf(self.service.ready)
        self.http = StubTreq(self.service.site.resource)

    def stop(self) -> None:
        if self.service.running:
            d = self.service.stopService()
            # The registry client waits a reactor turn or two for connections to come back.
            self.reactor.pump([0.05] * 3)
            self.successResultOf(d)

    def call(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json"
    ) -> tuple[int, Any]:
        kw: dict[str, Any] = {}
        if body is not None:
            kw["data"] = body if isinstance(body, bytes) else json.dumps(body).encode()
            kw["headers"] = {"Content-Type": ctype}
        d = self.http.request(method, "http://pyd" + path, **kw)
        self.http.flush()
        resp = self.successResultOf(d)
        content = resp.content()
        self.http.flush()
        raw = self.successResultOf(content)
        try:
            return resp.code, (json.loads(raw) if raw else None)
        except ValueError:
            return resp.code, raw

    def test_shutdown_timeout(self) -> None:
        """A stop hook that never finishes holds shutdown for shutdown-timeout seconds (15, the
        default), then the daemon stops anyway (pidfile removed)."""
        self.assertEqual(self.config.shutdown_timeout, 15)
        hung: Deferred[None] = Deferred()
        self.service.lifecycle.stop.append(lambda: hung)
        d = self.service.stopService()
        self.reactor.pump([0.05] * 3)
        self.assertNoResult(d)
        self.reactor.advance(15)
        self.reactor.pump([0.05] * 3)
        self.successResultOf(d)
        self.assertFalse(os.path.exists(self.config.pidfile))

    def test_started_tree(self) -> None:
        """Start-up locked the data root, wrote the pidfile, listened on the -H socket."""
        with open(self.config.pidfile) as f:
            self.assertEqual(int(f.read()), os.getpid())
        [port] = self.reactor.unixServers
        self.assertEqual(port[0], f"{self.tmp}/pyd.sock")
        # the site behind the connection guard (per-peer and handshake caps)
        self.assertIs(port[1].wrappedFactory, self.service.site)
        code, info = self.call("GET", "/v1.50/info")
        self.assertEqual(code, 200)
        self.assertEqual(info["Name"], "testhost")
        self.assertEqual(info["NCPU"], 2)
        self.stop()
        self.assertFalse(os.path.exists(self.config.pidfile))

    def test_create_start_inspect(self) -> None:
        """A loaded image, a container created from it, started and inspected: the request
        goes through the router, the engine areas and the (fake) drivers."""
        built = busybox_image_tar(os.path.join(self.tmp, "bb.tar"))
        with open(built.path, "rb") as f:
            code, _ = self.call("POST", "/v1.50/images/load?quiet=1", f.read(), "application/x-tar")
        self.assertEqual(code, 200)
        code, body = self.call(
            "POST", "/v1.50/containers/create?name=web", {"Image": DEFAULT_TAG, "Cmd": ["true"]}
        )
        self.assertEqual(code, 201, body)
        cid = body["Id"]
        code, body = self.call("POST", f"/v1.50/containers/{cid}/start")
        self.assertEqual(code, 204, body)
        self.assertIn(("start", cid), self.runtime.calls)
        self.assertEqual(self.runtime.containers[cid]["status"], "running")
        code, inspect = self.call("GET", f"/v1.50/containers/{cid}/json")
        self.assertEqual(code, 200)
        self.assertEqual(inspect["Name"], "/web")
        self.assertEqual(inspect["Image"], built.id)
        self.assertTrue(inspect["State"]["Running"])
        self.assertEqual(list(inspect["NetworkSettings"]["Networks"]), ["bridge"])
        # The image area sees the container through the wiring (removal is refused).
        code, body = self.call("DELETE", f"/v1.50/images/{DEFAULT_TAG}")
        self.assertEqual(code, 409, body)
