"""The whole daemon in process for component tests: L{build_service} with fake drivers, a
memory reactor, and StubTreq over the real API site (tests/component/test_daemon_wiring.py,
the fuzz suite)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from pyd import config as cfgmod
from pyd.core.seams import IDaemonReactor, InlineBlocking
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

# What a helper process the fake runner refused to start reports (its stderr).
NO_PROCESS = "not in this test"


class NoProcesses:
    """A L{pyd.drivers.process.ProcessRunner} that runs nothing: the flows under test start no
    helper process, and one that tried gets exit status 127."""

    def __init__(self) -> None:
        self.argvs: list[tuple[str, ...]] = []

    def run(self, argv: Any, **kw: Any) -> Deferred[ProcessResult]:
        self.argvs.append(tuple(argv))
        return succeed(ProcessResult(tuple(argv), 127, b"", NO_PROCESS.encode()))


def fake_drivers(
    root: str,
    runtime: FakeRuntime,
    resolvers: list[NameTable],
    runners: list[NoProcesses] | None = None,
) -> Any:
    """A driver factory for L{build_service}: fakes for the kernel, inline blocking (the
    process runner made is appended to C{runners})."""

    def make(config: cfgmod.DaemonConfig, reactor: IDaemonReactor) -> Drivers:
        io = InlineBlocking()
        runner = NoProcesses()
        if runners is not None:
            runners.append(runner)

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
            helpers=runner,
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


class InProcessDaemon:
    """A started daemon tree under a temporary directory, served in memory.

    @ivar http: a StubTreq over the real API site.
    """

    def __init__(self, prefix: str = "pyd-t-wiring-", **config: Any) -> None:
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.data_root = os.path.join(self.tmp, "data")
        self.exec_root = os.path.join(self.tmp, "exec")
        os.makedirs(self.data_root)
        # The schema is brought to head in-process here; a daemon does it in a child process.
        db = Database(make_engine(os.path.join(self.data_root, "pyd.db")), InlineBlocking())
        db.run_sync(migrate.upgrade)
        db.close()
        resolv = os.path.join(self.tmp, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 192.0.2.53\n")
        self.config = cfgmod.build(
            {
                "data-root": self.data_root,
                "exec-root": self.exec_root,
                "hosts": [f"unix://{self.tmp}/pyd.sock"],
                "pidfile": os.path.join(self.tmp, "pyd.pid"),
                "ip-masq": False,
                **config,
            },
            os.path.join(self.tmp, "absent.json"),
            file_required=False,
        )
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_800_000_000)
        self.runtime = FakeRuntime(self.reactor)
        self.resolvers: list[NameTable] = []
        self.runners: list[NoProcesses] = []
        service = build_service(
            self.config,
            self.reactor,
            fake_drivers(self.tmp, self.runtime, self.resolvers, self.runners),
        )
        assert isinstance(service, PydService)
        self.service = service
        self._http: StubTreq | None = None

    def start(self) -> Deferred[None]:
        """Start the tree; the result fires once the daemon is ready."""
        self.service.startService()
        ready: Deferred[None] = self.service.ready
        return ready

    def stop(self) -> Deferred[None] | None:
        """Stop the tree (if running); the caller waits for the result."""
        if not self.service.running:
            return None
        d: Deferred[None] = self.service.stopService()
        # The registry client waits a reactor turn or two for connections to come back.
        self.reactor.pump([0.05] * 3)
        return d

    def cleanup(self) -> None:
        """Remove the temporary directory."""
        shutil.rmtree(self.tmp, True)

    def stub(self) -> StubTreq:
        """A StubTreq over the daemon's site resource."""
        return StubTreq(self.service.site.resource)

    def call(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json"
    ) -> tuple[int, Any]:
        """One request through the site, answered before this returns (the memory reactor has
        nothing else to run): the status and the body as L{decode_body} reads it. C{body} is
        JSON-encoded unless it is bytes."""
        if self._http is None:
            self._http = self.stub()
        kw: dict[str, Any] = {}
        if body is not None:
            kw["data"] = body if isinstance(body, bytes) else json.dumps(body).encode()
            kw["headers"] = {"Content-Type": ctype}
        resp = _fired(self._http.request(method, "http://pyd" + path, **kw), self._http)
        return resp.code, decode_body(_fired(resp.content(), self._http))


def _fired(d: Deferred[Any], http: StubTreq) -> Any:
    """The result of C{d} once the stub delivered everything; its failure raised."""
    http.flush()
    out: list[Any] = []
    d.addBoth(out.append)
    if not out:
        raise AssertionError("the in-memory request did not finish")
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def decode_body(raw: bytes) -> Any:
    """The body as JSON when it is JSON, else the bytes."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw
