"""The effect of honoured create fields on the OCI runtime spec crun is given (the rows of
pyd/engine/audit.py name these tests): a container is created and started with the fake
runtime, which keeps the spec the engine built."""

from __future__ import annotations

import os
import signal
from typing import Any

import attrs
from twisted.internet.defer import Deferred

from pyd.core.errors import InvalidParameter
from pyd.engine.commit import merge_commit_config
from pyd.engine.honoured import HostLimits
from tests.unit.test_containers_engine import EngineTestBase


class SpecEffectTests(EngineTestBase):
    def spec(self, **config: Any) -> dict[str, Any]:
        cid = self.started(**config)
        spec: dict[str, Any] = self.runtime.containers[cid]["spec"]
        return spec

    def test_process_fields(self) -> None:
        """Hostname, Domainname, Entrypoint with Cmd, and WorkingDir reach the process."""
        spec = self.spec(
            Hostname="box",
            Domainname="example.test",
            Entrypoint=["/bin/sh", "-c"],
            Cmd=["echo hi"],
            WorkingDir="/srv/app",
        )
        self.assertEqual((spec["hostname"], spec["domainname"]), ("box", "example.test"))
        self.assertEqual(spec["process"]["args"], ["/bin/sh", "-c", "echo hi"])
        self.assertEqual(spec["process"]["cwd"], "/srv/app")
        self.assertIn("HOSTNAME=box", spec["process"]["env"])

    def test_cpu_and_memory(self) -> None:
        """CPU shares, period, quota, cpuset and memory reservation and swap are the cgroup's."""
        spec = self.spec(
            Cmd=["true"],
            HostConfig={
                "CpuShares": 512,
                "CpuPeriod": 50000,
                "CpuQuota": 25000,
                "CpusetCpus": "0",
                "CpusetMems": "0",
                "Memory": 64 << 20,
                "MemorySwap": 96 << 20,
                "MemoryReservation": 32 << 20,
            },
        )
        res = spec["linux"]["resources"]
        self.assertEqual(
            res["cpu"], {"shares": 512, "period": 50000, "quota": 25000, "cpus": "0", "mems": "0"}
        )
        self.assertEqual(
            res["memory"], {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20}
        )

    def test_nano_cpus(self) -> None:
        """NanoCpus is a CFS quota over dockerd's 100ms period."""
        spec = self.spec(Cmd=["true"], HostConfig={"NanoCpus": 1_500_000_000})
        cpu = spec["linux"]["resources"]["cpu"]
        self.assertEqual((cpu["quota"], cpu["period"]), (150000, 100000))

    def test_cpu_realtime(self) -> None:
        """Where the kernel has RT group scheduling, the real-time period and runtime are set."""
        self.svc.settings = attrs.evolve(self.svc.settings, limits=HostLimits(realtime=True))
        spec = self.spec(
            Cmd=["true"],
            HostConfig={"CpuRealtimePeriod": 1_000_000, "CpuRealtimeRuntime": 950_000},
        )
        cpu = spec["linux"]["resources"]["cpu"]
        self.assertEqual((cpu["realtimePeriod"], cpu["realtimeRuntime"]), (1_000_000, 950_000))

    def test_blkio_throttles(self) -> None:
        """Each throttle names the device by its real numbers."""
        dev = next(
            (
                f"/dev/{n}"
                for n in ("loop0", "vda", "sda", "nvme0n1")
                if os.path.exists(f"/dev/{n}")
            ),
            None,
        )
        if dev is None:
            self.skipTest("no block device under /dev")
        rdev = os.stat(dev).st_rdev
        row = {"major": os.major(rdev), "minor": os.minor(rdev), "rate": 1048576}
        spec = self.spec(
            Cmd=["true"],
            HostConfig={
                k: [{"Path": dev, "Rate": 1048576}]
                for k in (
                    "BlkioDeviceReadBps",
                    "BlkioDeviceWriteBps",
                    "BlkioDeviceReadIOps",
                    "BlkioDeviceWriteIOps",
                )
            },
        )
        self.assertEqual(
            spec["linux"]["resources"]["blockIO"],
            {
                "throttleReadBpsDevice": [row],
                "throttleWriteBpsDevice": [row],
                "throttleReadIOPSDevice": [row],
                "throttleWriteIOPSDevice": [row],
            },
        )

    def test_uts_and_cgroupns_modes(self) -> None:
        """UTSMode host shares the host's UTS namespace; CgroupnsMode private gives a cgroup
        namespace of its own, host none; UsernsMode host never adds a user namespace."""
        private = self.spec(Cmd=["true"], HostConfig={"CgroupnsMode": "private"})
        types = [n["type"] for n in private["linux"]["namespaces"]]
        self.assertIn("uts", types)
        self.assertIn("cgroup", types)
        self.assertNotIn("user", types)
        host = self.spec(
            Cmd=["true"],
            HostConfig={"UTSMode": "host", "CgroupnsMode": "host", "UsernsMode": "host"},
        )
        types = [n["type"] for n in host["linux"]["namespaces"]]
        self.assertNotIn("uts", types)
        self.assertNotIn("cgroup", types)
        self.assertNotIn("user", types)

    def test_usernsmode_and_isolation_others_refused(self) -> None:
        """UsernsMode other than host and Isolation other than default are 400s naming them."""
        e = self.fail_with(
            self.svc.create(None, {"Image": "busybox"}, {"UsernsMode": "private"}),
            InvalidParameter,
        )
        self.assertIn("invalid UsernsMode private", str(e))
        e = self.fail_with(
            self.svc.create(None, {"Image": "busybox"}, {"Isolation": "hyperv"}),
            InvalidParameter,
        )
        self.assertIn("Invalid isolation: \"hyperv\" - linux only supports 'default'", str(e))
        self.create(Cmd=["true"], HostConfig={"Isolation": "default"})

    def test_sysctls_groups_console(self) -> None:
        """Sysctls are the spec's; GroupAdd adds supplementary groups; ConsoleSize sizes the
        first terminal."""
        spec = self.spec(
            Cmd=["true"],
            Tty=True,
            HostConfig={
                "Sysctls": {"net.ipv4.ip_forward": "1"},
                "GroupAdd": ["4242"],
                "ConsoleSize": [30, 100],
            },
        )
        self.assertEqual(spec["linux"]["sysctl"], {"net.ipv4.ip_forward": "1"})
        self.assertIn(4242, spec["process"]["user"]["additionalGids"])
        self.assertEqual(spec["process"]["consoleSize"], {"height": 30, "width": 100})

    def test_dns_fields(self) -> None:
        """Dns, DnsSearch and DnsOptions make the container's resolv.conf."""
        cid = self.started(
            Cmd=["true"],
            HostConfig={
                "NetworkMode": "none",
                "Dns": ["192.0.2.53"],
                "DnsSearch": ["corp.test"],
                "DnsOptions": ["ndots:2"],
            },
        )
        with open(os.path.join(self.svc.bundle_dir(cid), "resolv.conf")) as f:
            text = f.read()
        self.assertIn("nameserver 192.0.2.53\n", text)
        self.assertIn("search corp.test\n", text)
        self.assertIn("options ndots:2\n", text)


class StopEffectTests(EngineTestBase):
    def test_stop_signal_and_timeout(self) -> None:
        """docker stop sends Config.StopSignal, then SIGKILL once Config.StopTimeout has passed
        (on the engine's clock)."""
        self.runtime.fatal_signals[signal.SIGKILL] = 137
        cid = self.started(Cmd=["sleep", "100"], StopSignal="SIGUSR1", StopTimeout=3)
        sent = self.runtime.containers[cid]["signals"]  # the fake drops the record at delete
        stopping = Deferred.fromCoroutine(self.svc.stop(cid))
        self.assertEqual(sent, [signal.SIGUSR1])
        self.clock.advance(2.5)
        self.assertNoResult(stopping)
        self.assertEqual(sent, [signal.SIGUSR1])
        self.clock.advance(1)
        self.successResultOf(stopping)
        self.assertEqual(sent, [signal.SIGUSR1, signal.SIGKILL])
        self.assertEqual(self.svc.resolve(cid).state.exit_code, 137)


class StoredFieldTests(EngineTestBase):
    def test_stored_and_committed(self) -> None:
        """OnBuild, Shell and ArgsEscaped are stored as sent (inspect shows them) and docker
        commit keeps them in the new image's config; ContainerIDFile is stored as sent (the CLI
        writes the file, as with dockerd), and CpuCount (Windows only) as well."""
        cid = self.create(
            Cmd=["true"],
            OnBuild=["RUN echo child"],
            Shell=["/bin/bash", "-c"],
            ArgsEscaped=True,
            HostConfig={"ContainerIDFile": "/tmp/cid.txt", "CpuCount": 2},
        )
        c = self.svc.resolve(cid)
        self.assertEqual(c.config["OnBuild"], ["RUN echo child"])
        self.assertEqual(c.config["Shell"], ["/bin/bash", "-c"])
        self.assertIs(c.config["ArgsEscaped"], True)
        self.assertEqual(c.host_config["ContainerIDFile"], "/tmp/cid.txt")
        # Windows-only: stored and shown, no effect on Linux (as dockerd)
        self.assertEqual(c.host_config["CpuCount"], 2)
        committed = merge_commit_config({"Shell": ["/bin/sh", "-c"]}, c.config, {})
        self.assertEqual(committed["OnBuild"], ["RUN echo child"])
        self.assertEqual(committed["Shell"], ["/bin/bash", "-c"])
        self.assertIs(committed["ArgsEscaped"], True)
