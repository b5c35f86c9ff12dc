"""docker info tells the truth: each field compared with the host fact or setting it comes from."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pyd import config as cfgmod
from pyd.api.root import ApiRoot
from pyd.api.system import SystemRouter
from pyd.core.seams import InlineBlocking
from pyd.engine import hostinfo
from pyd.engine.events import EventService
from pyd.engine.system import HostFacts, SystemService
from pyd.state.events import EventRepository
from tests.helpers.memdb import memory_db


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class HostReadTests(SynchronousTestCase):
    """The readers, against a fake /proc and /sys of the test's own."""

    def setUp(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pyd-info-"))
        self.addCleanup(shutil.rmtree, self.root, True)

    def test_live_facts(self) -> None:
        """IPv4Forwarding is the sysctl; NFd counts /proc/self/fd; threads are this process's."""
        proc = self.root / "proc"
        _write(proc / "sys/net/ipv4/ip_forward", "0\n")
        for n in range(3):
            _write(proc / "self/fd" / str(n), "")
        live = hostinfo.read_live(str(proc))
        self.assertEqual(live, hostinfo.LiveFacts(False, 3, threading.active_count()))
        _write(proc / "sys/net/ipv4/ip_forward", "1\n")
        self.assertTrue(hostinfo.read_live(str(proc)).ipv4_forwarding)

    def test_cgroup_v2_features(self) -> None:
        """Limits follow the root's controllers; no memory.swap.max in our cgroup = no swap."""
        cg = self.root / "cg"
        _write(cg / "cgroup.controllers", "cpuset cpu io pids\n")
        f = hostinfo.read_features(str(self.root), cgroup_root=str(cg))
        self.assertEqual(
            (f.cgroup_version, f.memory_limit, f.swap_limit, f.cpu_cfs, f.cpuset, f.pids_limit),
            ("2", False, False, True, True, True),
        )
        self.assertFalse(f.oom_kill_disable)

    def test_cgroup_v1_features(self) -> None:
        """On v1 swap and oom-kill-disable follow the memory controller's files."""
        cg = self.root / "cg1"
        _write(cg / "memory/memory.memsw.limit_in_bytes", "")
        _write(cg / "memory/memory.oom_control", "")
        f = hostinfo.read_features(str(self.root), cgroup_root=str(cg))
        self.assertEqual((f.cgroup_version, f.swap_limit, f.oom_kill_disable), ("1", True, True))

    def test_os_version(self) -> None:
        """OSVersion is os-release's VERSION_ID."""
        _write(self.root / "os-release", 'NAME="Debian"\nVERSION_ID="12"\n')
        self.assertEqual(hostinfo.os_version(str(self.root / "os-release")), "12")

    def test_mask(self) -> None:
        """Proxy credentials are masked as dockerd masks them."""
        self.assertEqual(
            hostinfo.mask_credentials("http://u:secret@proxy:3128"), "http://xxxxx:xxxxx@proxy:3128"
        )
        self.assertEqual(hostinfo.mask_credentials("http://proxy:3128"), "http://proxy:3128")

    def test_warnings(self) -> None:
        """dockerd's warnings for missing limits and forwarding; none when all is there."""
        full = hostinfo.HostFeatures(swap_limit=True)
        on = hostinfo.LiveFacts(True, 1, 1)
        self.assertEqual(hostinfo.warnings(full, on, []), [])
        off = hostinfo.LiveFacts(False, 1, 1)
        w = hostinfo.warnings(hostinfo.HostFeatures(), off, [("0.0.0.0:2375", False, False)])
        self.assertEqual(w[0], "WARNING: No swap limit support")
        self.assertIn("WARNING: IPv4 forwarding is disabled", w)
        self.assertTrue(w[-1].startswith("[DEPRECATION NOTICE]: API is accessible on http://"))


class InfoFieldsTests(SynchronousTestCase):
    """GET /info on this host, each field against its source."""

    def info(
        self, flags: dict[str, Any], env: dict[str, str] | None = None, runtimes: Any = None
    ) -> dict[str, Any]:
        data_root = tempfile.mkdtemp(prefix="pyd-info-root-")
        self.addCleanup(shutil.rmtree, data_root, True)
        cfg = cfgmod.build({"data-root": data_root, **flags}, "/nonexistent/daemon.json")
        host = HostFacts.read(data_root, "tini-static")
        db = memory_db(alembic=True)
        clock = Clock()
        events = EventService(EventRepository(db), clock)
        system = SystemService("ID1", host, cfg, blocking=InlineBlocking(), runtimes=runtimes)
        http = StubTreq(ApiRoot([SystemRouter(system, events, clock)]))
        for k, v in (env or {}).items():
            self.patch(os, "environ", {**os.environ, k: v})
        resp = self.successResultOf(http.request("GET", "http://pyd/info"))
        self.host = host
        return dict(json.loads(self.successResultOf(resp.content())))

    def test_fields_from_the_host(self) -> None:
        """Forwarding, limits, descriptors, threads, OS version and driver status are the host's."""
        info = self.info({})
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            forwarding = f.read().strip() == "1"
        f_ = self.host.features
        self.assertEqual(info["IPv4Forwarding"], forwarding)
        self.assertEqual("WARNING: IPv4 forwarding is disabled" in info["Warnings"], not forwarding)
        self.assertEqual("WARNING: No swap limit support" in info["Warnings"], not f_.swap_limit)
        self.assertEqual(info["SwapLimit"], f_.swap_limit)
        self.assertEqual(info["OomKillDisable"], f_.oom_kill_disable)
        self.assertEqual(info["MemoryLimit"], f_.memory_limit)
        self.assertEqual(info["CgroupVersion"], self.host.cgroup_version)
        self.assertGreater(info["NFd"], 2)
        self.assertGreaterEqual(info["NGoroutines"], 1)
        self.assertEqual(info["OSVersion"], hostinfo.os_version())
        self.assertEqual(info["DriverStatus"][0], ["Backing Filesystem", f_.backing_fs])
        self.assertNotIn("<unknown>", f_.backing_fs)
        self.assertEqual(info["InitBinary"], "tini-static")
        self.assertEqual(info["Runtimes"], {})  # no runtime set given: none registered
        self.assertEqual(info["DefaultRuntime"], "crun")
        self.assertEqual(info["ServerVersion"], "28.2.2")

    def test_runtimes(self) -> None:
        """Runtimes: every registered name with its path as configured and its runtimeArgs
        (dockerd's fields); DefaultRuntime is the configured default."""
        from pyd.config.runtimes import table
        from pyd.drivers.runtime.oci import RuntimeSet

        configured = {"kr": {"path": "/opt/kr", "runtimeArgs": ["--debug"]}}
        rs = RuntimeSet.resolve(
            table(configured),
            frozenset(configured),
            "runc",
            "/run/x",
            lambda n: {"crun": "/usr/bin/crun", "runc": "/usr/sbin/runc"}.get(n, n),
        )
        info = self.info({}, runtimes=rs)
        self.assertEqual(
            info["Runtimes"],
            {
                "crun": {"path": "crun"},
                "io.containerd.runc.v2": {"path": "runc"},
                "kr": {"path": "/opt/kr", "runtimeArgs": ["--debug"]},
                "runc": {"path": "runc"},
            },
        )
        self.assertEqual(info["DefaultRuntime"], "runc")

    def test_fields_from_the_configuration(self) -> None:
        """Debug, experimental, log driver, live-restore, registries and proxies are the
        configuration's; proxy credentials are masked."""
        info = self.info(
            {
                "debug": True,
                "experimental": True,
                "log-driver": "local",
                "insecure-registries": ["10.1.0.0/16", "reg.local:5000"],
                "http-proxy": "http://u:pw@proxy.test:3128",
                "no-proxy": "localhost",
            }
        )
        self.assertTrue(info["Debug"])
        self.assertTrue(info["ExperimentalBuild"])
        self.assertEqual(info["LoggingDriver"], "local")
        self.assertEqual(
            info["RegistryConfig"]["InsecureRegistryCIDRs"],
            ["10.1.0.0/16", "::1/128", "127.0.0.0/8"],
        )
        self.assertFalse(info["RegistryConfig"]["IndexConfigs"]["reg.local:5000"]["Secure"])
        self.assertEqual(info["HttpProxy"], "http://xxxxx:xxxxx@proxy.test:3128")
        self.assertEqual(info["NoProxy"], "localhost")

    def test_proxy_from_environment(self) -> None:
        """Without the proxies setting the daemon's HTTPS_PROXY shows (masked)."""
        info = self.info({}, env={"HTTPS_PROXY": "http://a:b@envproxy:8080"})
        self.assertEqual(info["HttpsProxy"], "http://xxxxx:xxxxx@envproxy:8080")
