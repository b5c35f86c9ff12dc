"""ContainerService with a fake runtime, fake providers, in-memory SQLite and a task.Clock."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import attrs
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import Conflict, InvalidParameter, NotFound, NotModified, SystemError_
from pyd.core.seams import InlineBlocking
from pyd.drivers.runtime.conmon import CreateOptions, ProcessGone
from pyd.drivers.runtime.oci import OciRuntime, RuntimeSet
from pyd.engine.containers import ContainerService, ContainerSettings, LogsRequest, runconfig
from pyd.engine.spec import NetworkRequest, rules
from pyd.state.containers import ContainerRepository
from tests.fakes.container_providers import (
    FakeContainerImages,
    FakeNetworkProvider,
    FakeVolumeProvider,
    busybox_image,
)
from tests.fakes.events import FakeEvents
from tests.fakes.runtime import FakeRuntime
from tests.helpers.memdb import memory_db
from tests.helpers.mounts import remove_tree
from tests.helpers.sync import run_sync

T = TypeVar("T")


class EngineTestBase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        root = tempfile.mkdtemp(prefix="pyd-t-")
        self.addCleanup(remove_tree, root)  # also what the engine mounted (shm)
        self.root = root
        self.db = memory_db()
        self.addCleanup(self.db.close)
        self.runtime = FakeRuntime(self.clock)
        self.images = FakeContainerImages(os.path.join(root, "layers"))
        self.networks = FakeNetworkProvider()
        self.volumes = FakeVolumeProvider()
        self.events = FakeEvents()
        hosts = os.path.join(root, "host-resolv.conf")
        with open(hosts, "w") as f:
            f.write("nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example.org\n")
        self.svc = self.make_service()
        run_sync(self.svc.startup())

    def make_service(self) -> ContainerService:
        return ContainerService(
            ContainerRepository(self.db),
            self.runtime,
            self.images,
            self.networks,
            self.volumes,
            self.events,
            InlineBlocking(),
            self.clock,
            ContainerSettings(
                containers_dir=os.path.join(self.root, "containers"),
                ncpu=2,
                init_path="/usr/bin/tini-static",
                host_resolv_conf=os.path.join(self.root, "host-resolv.conf"),
            ),
        )

    def fail_with(self, coro: Coroutine[Any, Any, Any], exc: type[Exception]) -> Exception:
        with self.assertRaises(exc) as raised:
            run_sync(coro)
        return raised.exception

    def create(self, name: str | None = None, **config: Any) -> str:
        hc = config.pop("HostConfig", {})
        config.setdefault("Image", "busybox")
        cid, _ = run_sync(self.svc.create(name, config, hc))
        return cid

    def started(self, name: str | None = None, **config: Any) -> str:
        cid = self.create(name, **config)
        run_sync(self.svc.start(cid))
        return cid


class CreateTests(EngineTestBase):
    def test_image_defaults_merged(self) -> None:
        """Cmd, Env and WorkingDir come from the image when the request leaves them empty."""
        self.images.images["web"] = busybox_image(
            Cmd=["httpd", "-f"],
            WorkingDir="/www",
            Env=["PATH=/bin", "A=1"],
            Labels={"l": "img"},
            ExposedPorts={"80/tcp": {}},
            StopSignal="SIGQUIT",
        )
        cid = self.create("web1", Image="web", Env=["A=2", "B=3"], Labels={"m": "x"})
        c = self.svc.resolve("web1")
        self.assertEqual(c.id, cid)
        self.assertEqual(c.config["Cmd"], ["httpd", "-f"])
        self.assertEqual(c.config["WorkingDir"], "/www")
        # moby's merge: the request's Env first, then the image's entries it does not set
        self.assertEqual(c.config["Env"], ["A=2", "B=3", "PATH=/bin"])
        self.assertEqual(c.config["Labels"], {"l": "img", "m": "x"})
        self.assertEqual(c.config["ExposedPorts"], {"80/tcp": {}})
        self.assertEqual(c.config["StopSignal"], "SIGQUIT")
        self.assertEqual(c.config["Hostname"], cid[:12])
        self.assertEqual(c.name, "/web1")
        self.assertEqual(c.host_config["NetworkMode"], "bridge")
        self.assertEqual(self.events.actions(cid), ["create"])

    def test_event_attributes(self) -> None:
        """Events carry the container's labels, image and name; a record stored with mistyped
        labels (an older pyd) reads them as the spec does (Go's zero values)."""
        cid = self.create("ev1", Image="busybox", Labels={"m": "x", "n": ""})
        create = next(e for e in self.events.events if e.action == "create")
        self.assertEqual(create.attributes, {"m": "x", "n": "", "image": "busybox", "name": "ev1"})
        c = self.svc.resolve(cid)
        odd = attrs.evolve(c, config={**c.config, "Labels": {"m": 5, "n": "y"}, "Image": 7})
        process = self.svc.spec_of(odd).process
        want = {**process.labels, "image": process.image or odd.image_ref, "name": "ev1"}
        self.assertEqual(self.svc._attrs(odd), want)

    def test_entrypoint_resets_image_cmd(self) -> None:
        """An explicit Entrypoint drops the image's Cmd, as dockerd does."""
        self.images.images["e"] = busybox_image(Entrypoint=["/bin/app"], Cmd=["--help"])
        self.create("e1", Image="e", Entrypoint=["/bin/sh"])
        self.assertIsNone(self.svc.resolve("e1").config["Cmd"])
        self.create("e2", Image="e")
        c = self.svc.resolve("e2")
        self.assertEqual((c.config["Entrypoint"], c.config["Cmd"]), (["/bin/app"], ["--help"]))

    def test_generated_name(self) -> None:
        """Without a name the container gets an adjective_surname one."""
        cid = self.create()
        name = self.svc.resolve(cid).name
        self.assertRegex(name, r"^/[a-z]+_[a-z]+\d*$")

    def test_name_conflict(self) -> None:
        """A taken name is a 409 with dockerd's exact text, and nothing is created."""
        first = self.create("dup")
        err = self.fail_with(self.svc.create("dup", {"Image": "busybox"}, {}), Conflict)
        self.assertEqual(
            str(err),
            f'Conflict. The container name "/dup" is already in use by container "{first}". '
            "You have to remove (or rename) that container to be able to reuse that name.",
        )
        self.assertEqual(len(self.svc.list_all()), 1)

    def test_invalid_name(self) -> None:
        """Names outside dockerd's pattern are refused."""
        err = self.fail_with(
            self.svc.create("bad name", {"Image": "busybox"}, {}), InvalidParameter
        )
        self.assertIn("Invalid container name (bad name)", str(err))

    def test_memory_too_small(self) -> None:
        """Memory under 6MB is dockerd's 400 and creates nothing."""
        err = self.fail_with(
            self.svc.create("mm", {"Image": "busybox"}, {"Memory": 1024}), InvalidParameter
        )
        self.assertEqual(str(err), "Minimum memory limit allowed is 6MB")
        self.assertEqual(self.svc.list_all(), [])

    def test_restart_policy_with_autoremove(self) -> None:
        """AutoRemove and a restart policy cannot be combined."""
        err = self.fail_with(
            self.svc.create(
                None,
                {"Image": "busybox"},
                {"AutoRemove": True, "RestartPolicy": {"Name": "always"}},
            ),
            InvalidParameter,
        )
        self.assertEqual(str(err), "can't create 'AutoRemove' container with restart policy")

    def test_unknown_image(self) -> None:
        """A missing image is a 404 (the CLI then pulls)."""
        err = self.fail_with(self.svc.create(None, {"Image": "nope"}, {}), NotFound)
        self.assertEqual(str(err), "No such image: nope:latest")

    def test_unknown_capability(self) -> None:
        """An unknown CapAdd is a 400."""
        self.fail_with(
            self.svc.create(None, {"Image": "busybox"}, {"CapAdd": ["CAP_NOPE"]}), InvalidParameter
        )

    def test_volumes_from_parsed_before_lookup(self) -> None:
        """dockerd parses each VolumesFrom entry before it looks the container up: an empty
        entry or a bad mode is its 400 (not a 404 for a container named ""); a missing one 404."""
        err = self.fail_with(
            self.svc.create(None, {"Image": "busybox"}, {"VolumesFrom": [""]}), InvalidParameter
        )
        self.assertEqual(str(err), "volumes-from specification cannot be an empty string")
        err = self.fail_with(
            self.svc.create(None, {"Image": "busybox"}, {"VolumesFrom": ["gone:bogus"]}),
            InvalidParameter,
        )
        self.assertEqual(str(err), "invalid mode: bogus")
        err = self.fail_with(
            self.svc.create(None, {"Image": "busybox"}, {"VolumesFrom": ["gone"]}), NotFound
        )
        self.assertEqual(str(err), "No such container: gone")
        self.assertEqual(self.svc.list_all(), [])

    def test_resolve_by_prefix(self) -> None:
        """Containers resolve by full id, name, and unique id prefix."""
        cid = self.create("p1")
        self.assertEqual(self.svc.resolve(cid[:12]).id, cid)
        self.assertEqual(self.svc.resolve("/p1").id, cid)
        self.assertRaises(NotFound, self.svc.resolve, "zzz")


class StartStopTests(EngineTestBase):
    def test_start_builds_spec(self) -> None:
        """Start resolves the user, writes hosts files and gives crun Docker's spec."""
        cid = self.started(
            "s1",
            Cmd=["sleep", "100"],
            User="app",
            Env=["X=1"],
            HostConfig={
                "Memory": 64 * 1024 * 1024,
                "CapAdd": ["NET_ADMIN"],
                "CapDrop": ["MKNOD"],
                "Init": True,
                "ExtraHosts": ["db:10.0.0.9"],
            },
        )
        c = self.svc.resolve(cid)
        self.assertEqual(c.state.status, "running")
        self.assertTrue(c.state.pid > 0)
        spec = self.runtime.containers[cid]["spec"]
        self.assertEqual(spec["process"]["args"], ["/sbin/docker-init", "--", "sleep", "100"])
        self.assertEqual(
            spec["process"]["user"], {"uid": 1000, "gid": 1000, "additionalGids": [1000, 50]}
        )
        self.assertIn("X=1", spec["process"]["env"])
        self.assertIn("HOME=/home/app", spec["process"]["env"])
        caps = spec["process"]["capabilities"]["bounding"]
        self.assertIn("CAP_NET_ADMIN", caps)
        self.assertNotIn("CAP_MKNOD", caps)
        self.assertEqual(spec["linux"]["resources"]["memory"]["limit"], 64 * 1024 * 1024)
        self.assertEqual(spec["linux"]["cgroupsPath"], f"/pyd/{cid}")
        ns = {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}
        self.assertEqual(ns["network"], f"/run/netns/{cid[:12]}")
        bundle = self.svc.bundle_dir(cid)
        with open(os.path.join(bundle, "hosts")) as f:
            hosts = f.read()
        self.assertIn("10.0.0.9\tdb\n", hosts)
        self.assertIn(f"10.250.0.2\t{cid[:12]}\n", hosts)
        with open(os.path.join(bundle, "resolv.conf")) as f:
            self.assertEqual(f.read(), "search example.org\nnameserver 10.250.0.1\n")
        self.assertEqual(self.events.actions(cid), ["create", "start"])
        self.fail_with(self.svc.start(cid), NotModified)

    def test_host_network_and_privileged(self) -> None:
        """--network host joins no netns; --privileged keeps only what CapBnd allows."""
        self.svc.settings = ContainerSettings(
            containers_dir=self.svc.settings.containers_dir,
            cap_bounding=frozenset({"CAP_CHOWN", "CAP_SYS_ADMIN"}),
        )
        cid = self.started(Cmd=["true"], HostConfig={"NetworkMode": "host", "Privileged": True})
        spec = self.runtime.containers[cid]["spec"]
        self.assertNotIn("network", [n["type"] for n in spec["linux"]["namespaces"]])
        self.assertEqual(
            sorted(spec["process"]["capabilities"]["bounding"]), ["CAP_CHOWN", "CAP_SYS_ADMIN"]
        )
        self.assertNotIn("maskedPaths", spec["linux"])

    def test_exit_recorded(self) -> None:
        """An exit file makes the container exited with its code, and emits die."""
        cid = self.started(Cmd=["sh", "-c", "exit 3"])
        waiter = self.svc.wait(cid, "next-exit")
        self.assertNoResult(waiter)
        self.runtime.exit(cid, 3)
        c = self.svc.resolve(cid)
        self.assertEqual((c.state.status, c.state.exit_code), ("exited", 3))
        self.assertEqual(self.successResultOf(waiter).status_code, 3)
        die = next(e for e in self.events.events if e.action == "die")
        self.assertEqual(die.attributes["exitCode"], "3")
        self.assertIn(cid, self.networks.torn_down)
        self.assertNotIn(cid, self.images.mounted)
        self.assertEqual(self.successResultOf(self.svc.wait(cid)).status_code, 3)

    def test_exit_during_start(self) -> None:
        """A process that exits before start recorded it running still ends up exited."""
        self.runtime.exit_on_start = 0
        cid = self.started(Cmd=["true"])
        c = self.svc.resolve(cid)
        self.assertEqual((c.state.status, c.state.exit_code), ("exited", 0))
        self.assertEqual(self.events.actions(cid), ["create", "start", "die"])

    def test_stop_escalates_to_sigkill(self) -> None:
        """stop sends the stop signal, waits the timeout, then SIGKILL: exit 137."""
        cid = self.started(Cmd=["sleep", "100"])
        d = Deferred.fromCoroutine(self.svc.stop(cid, timeout=5))
        self.assertNoResult(d)
        self.clock.advance(5)
        self.successResultOf(d)
        c = self.svc.resolve(cid)
        self.assertEqual((c.state.status, c.state.exit_code), ("exited", 137))
        kills = [e.attributes["signal"] for e in self.events.events if e.action == "kill"]
        self.assertEqual(kills, ["15", "9"])
        self.assertEqual(self.events.actions(cid)[-2:], ["die", "stop"])
        self.fail_with(self.svc.stop(cid), NotModified)

    def test_stop_waits_for_a_slow_exit_record(self) -> None:
        """Under a slow daemon the exit of a SIGKILLed process may be recorded long after:
        after 10 s the process itself is SIGKILLed, and when it is gone stop waits for the
        record without a limit and succeeds (it answered 500 30 s after SIGKILL)."""
        del self.runtime.fatal_signals[signal.SIGKILL]  # the exit file comes late
        cid = self.started(Cmd=["sleep", "100"])
        pid = self.svc.resolve(cid).state.pid
        d = Deferred.fromCoroutine(self.svc.stop(cid, timeout=1))
        self.clock.advance(1)  # SIGTERM's timeout: SIGKILL
        self.clock.advance(9.9)
        self.assertEqual(self.runtime.killed_pids, [])
        self.clock.advance(0.1)
        self.assertEqual(self.runtime.killed_pids, [pid])
        self.clock.advance(3600)
        self.assertNoResult(d)
        self.runtime.exit(cid, 137)
        self.successResultOf(d)
        self.assertEqual(self.svc.resolve(cid).state.status, "exited")
        self.assertEqual(self.events.actions(cid)[-2:], ["die", "stop"])

    def test_kill_waits_for_a_slow_exit_record(self) -> None:
        """docker kill (SIGKILL) follows the same steps."""
        del self.runtime.fatal_signals[signal.SIGKILL]
        cid = self.started(Cmd=["sleep", "100"])
        d = Deferred.fromCoroutine(self.svc.kill(cid))
        self.clock.advance(3600)
        self.assertNoResult(d)
        self.runtime.exit(cid, 137)
        self.successResultOf(d)

    def test_stop_of_a_process_that_outlives_sigkill(self) -> None:
        """A process still there after the direct SIGKILL (uninterruptible sleep) fails the
        stop with dockerd 28's text 2 + 2 s later; a zombie with its own text at once."""
        del self.runtime.fatal_signals[signal.SIGKILL]
        self.runtime.direct_kill = "signalled"
        cid = self.started(Cmd=["sleep", "100"])
        d = Deferred.fromCoroutine(self.svc.stop(cid, timeout=0))
        self.clock.advance(0)  # SIGTERM's timeout: SIGKILL
        self.clock.advance(10)  # the process itself is SIGKILLed
        self.clock.advance(2)  # kill's last wait: its error, then stop's 2 more seconds
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        f = self.failureResultOf(d, SystemError_)
        self.assertEqual(
            f.getErrorMessage(), "tried to kill container, but did not receive an exit event"
        )
        self.runtime.direct_kill = "zombie"
        d = Deferred.fromCoroutine(self.svc.kill(cid))
        self.clock.advance(10)
        f = self.failureResultOf(d, SystemError_)
        self.assertIn(f"container {cid[:12]} PID ", f.getErrorMessage())
        self.assertIn("is zombie and can not be killed", f.getErrorMessage())

    def test_stop_signal_honoured(self) -> None:
        """A process ending on SIGTERM exits 143 without waiting for the timeout."""
        self.runtime.fatal_signals[signal.SIGTERM] = 143
        cid = self.started(Cmd=["sleep", "100"])
        run_sync(self.svc.stop(cid))
        self.assertEqual(self.svc.resolve(cid).state.exit_code, 143)

    def test_kill_not_running(self) -> None:
        """kill of a stopped container is dockerd's 409."""
        cid = self.create("k1")
        err = self.fail_with(self.svc.kill("k1"), Conflict)
        self.assertEqual(str(err), f"cannot kill container: k1: container {cid} is not running")

    def test_kill_returns_once_dead(self) -> None:
        """SIGKILL (the default) returns only when the container has exited: inspect right
        after says exited/137 and rm without force works (dockerd's daemon/kill.go Kill)."""
        cid = self.started(Cmd=["sleep", "100"])
        real_kill = self.runtime.kill

        async def slow_death(
            container_id: str, sig: int, all_processes: bool = False, runtime: Any = None
        ) -> None:
            # The process dies a moment after the signal, as a real one does.
            self.runtime.calls.append(("kill", container_id, str(sig)))
            self.clock.callLater(0.5, self.runtime.exit, container_id, 137)

        self.runtime.kill = slow_death  # type: ignore[method-assign]  # the test swaps the method for a scripted one
        d = Deferred.fromCoroutine(self.svc.kill(cid))
        self.assertNoResult(d)
        self.clock.advance(0.5)
        self.successResultOf(d)
        c = self.svc.resolve(cid)
        self.assertEqual((c.state.status, c.state.exit_code), ("exited", 137))
        self.runtime.kill = real_kill  # type: ignore[method-assign]  # the test swaps the method for a scripted one
        run_sync(self.svc.remove(cid))

    def test_kill_racing_the_own_exit(self) -> None:
        """A kill whose runtime finds the container already gone (its exit not yet reaped) is
        a success, not a 500; a second kill is dockerd's 409."""
        cid = self.started(Cmd=["sleep", "100"])

        async def gone(
            container_id: str, sig: int, all_processes: bool = False, runtime: Any = None
        ) -> None:
            self.clock.callLater(0.1, self.runtime.exit, container_id, 0)
            raise ProcessGone("kill", "open pidfd: No such process")

        self.runtime.kill = gone  # type: ignore[method-assign]  # the test swaps the method for a scripted one
        d = Deferred.fromCoroutine(self.svc.kill(cid))
        self.clock.advance(0.1)
        self.successResultOf(d)
        self.assertEqual(self.svc.resolve(cid).state.status, "exited")
        self.fail_with(self.svc.kill(cid), Conflict)

    def test_remove_restarting_refused(self) -> None:
        """rm without force of a restarting container is dockerd's 409; with force it goes."""
        cid = self.started(Cmd=["false"], HostConfig={"RestartPolicy": {"Name": "always"}})
        self.runtime.exit(cid, 1)
        self.assertEqual(self.svc.resolve(cid).state.status, "restarting")
        err = self.fail_with(self.svc.remove(cid), Conflict)
        self.assertIn("container is restarting: stop the container before removing", str(err))
        run_sync(self.svc.remove(cid, force=True))
        self.fail_with(self.svc.remove(cid), NotFound)

    def test_waiter_hears_the_exit_once_restarting(self) -> None:
        """A policy restart is recorded before the exit's waiters fire (dockerd's SetRestarting
        fires them): `wait` then `rm` meets the 409, as docker-py's own test expects."""
        cid = self.started(Cmd=["sleep", "2"], HostConfig={"RestartPolicy": {"Name": "always"}})
        seen: list[str] = []
        waiter = self.svc.wait(cid)
        waiter.addCallback(lambda _: seen.append(self.svc.resolve(cid).state.status))
        self.runtime.exit(cid, 0)
        self.successResultOf(waiter)
        self.assertEqual(seen, ["restarting"])
        self.fail_with(self.svc.remove(cid), Conflict)
        run_sync(self.svc.remove(cid, force=True))

    def test_force_remove_racing_the_exit(self) -> None:
        """rm -f of a container whose process exits as the SIGKILL is on its way (crun: open
        pidfd: No such process) removes it, as dockerd does; kill in that race is done too."""
        self.runtime.exit_before_kill = 0
        cid = self.started(Cmd=["true"])
        d = Deferred.fromCoroutine(self.svc.remove(cid, force=True))
        self.clock.advance(0)  # the exit file is reported after the failed signal
        self.successResultOf(d)
        self.assertNotIn(cid, [c.id for c in self.svc.list_all()])
        cid = self.started(Cmd=["true"])
        d = Deferred.fromCoroutine(self.svc.kill(cid))
        self.clock.advance(0)
        self.successResultOf(d)
        self.assertEqual(self.svc.resolve(cid).state.status, "exited")
        self.fail_with(self.svc.kill(cid), Conflict)

    def test_kill_with_signal(self) -> None:
        """kill passes the signal and emits kill with it."""
        cid = self.started(Cmd=["sleep", "100"])
        run_sync(self.svc.kill(cid, "HUP"))
        self.assertIn(("kill", cid, "1"), self.runtime.calls)
        self.assertEqual(self.svc.resolve(cid).state.status, "running")
        self.fail_with(self.svc.kill(cid, "NOPE"), InvalidParameter)

    def test_start_error_not_found(self) -> None:
        """An unknown executable is dockerd's start error and exit code 127."""
        self.runtime.fail_create = (
            "executable file `nope` not found in $PATH: No such file or directory"
        )
        cid = self.create(Cmd=["nope"])
        err = self.fail_with(self.svc.start(cid), InvalidParameter)
        self.assertIn('exec: "nope": executable file not found in $PATH', str(err))
        c = self.svc.resolve(cid)
        self.assertEqual((c.state.status, c.state.exit_code), ("created", 127))
        self.assertIn(cid, self.networks.torn_down)

    def test_process_starts_once_interfaces_are_plugged(self) -> None:
        """The runtime creates the container while its interfaces are plugged; the process
        starts only once they are, and a plugging failure fails the start: nothing started,
        the runtime's container deleted, the network torn down."""
        cid = self.started(Cmd=["true"])
        self.assertEqual(self.networks.plugged_ids, [cid])
        self.assertIn(("start", cid), self.runtime.calls)

        self.networks.plug_failure = SystemError_("configuring eth0: no buffer space")
        cid = self.create(Cmd=["true"])
        err = self.fail_with(self.svc.start(cid), SystemError_)
        self.assertIn("no buffer space", str(err))
        self.assertIn(("create", cid), self.runtime.calls)
        self.assertNotIn(("start", cid), self.runtime.calls)
        self.assertIn(("delete", cid), self.runtime.calls)
        self.assertIn(cid, self.networks.torn_down)
        self.assertEqual(self.svc.resolve(cid).state.status, "created")

    def test_start_error_permission(self) -> None:
        """A non-executable file is exit code 126 with 'permission denied'."""
        self.runtime.fail_create = "open executable: Permission denied"
        cid = self.create(Cmd=["/etc/passwd"])
        err = self.fail_with(self.svc.start(cid), InvalidParameter)
        self.assertIn("permission denied", str(err))
        self.assertEqual(self.svc.resolve(cid).state.exit_code, 126)

    def test_working_dir_not_a_directory(self) -> None:
        """A WorkingDir that is a file in the container is dockerd's start error; a missing one
        or a directory passes (the runtime makes a missing one)."""

        from pyd.core.errors import SystemError_
        from pyd.engine.containers.create import _check_working_dir

        root = tempfile.mkdtemp(prefix="pyd-t-")
        self.addCleanup(shutil.rmtree, root, True)
        os.makedirs(os.path.join(root, "etc"))
        with open(os.path.join(root, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0::/root:/bin/sh\n")
        os.symlink("/etc/passwd", os.path.join(root, "link"))
        for ok in ("", "/etc", "/made/here"):
            _check_working_dir(root, ok)
        for bad in ("/etc/passwd", "/link"):
            with self.assertRaises(SystemError_) as cm:
                _check_working_dir(root, bad)
            self.assertEqual(str(cm.exception), f"Cannot mkdir: {bad} is not a directory")

    def test_oom(self) -> None:
        """An OOM exit sets OOMKilled and emits oom before die."""
        cid = self.started(Cmd=["hog"], HostConfig={"Memory": 32 * 1024 * 1024})
        self.runtime.exit(cid, 137, oom=True)
        c = self.svc.resolve(cid)
        self.assertTrue(c.state.oom_killed)
        self.assertEqual(self.events.actions(cid)[-2:], ["oom", "die"])

    def test_pause_unpause(self) -> None:
        """pause/unpause change the state; wrong states are 409s."""
        cid = self.started(Cmd=["sleep", "100"])
        run_sync(self.svc.pause(cid))
        self.assertEqual(self.svc.resolve(cid).state.status, "paused")
        self.fail_with(self.svc.pause(cid), Conflict)
        self.fail_with(self.svc.start(cid), Conflict)
        run_sync(self.svc.unpause(cid))
        self.assertEqual(self.svc.resolve(cid).state.status, "running")
        self.fail_with(self.svc.unpause(cid), Conflict)
        self.assertEqual(self.events.actions(cid)[-2:], ["pause", "unpause"])

    def test_stop_paused(self) -> None:
        """A paused container can be stopped (SIGKILL lands once thawed)."""
        cid = self.started(Cmd=["sleep", "100"])
        run_sync(self.svc.pause(cid))
        d = Deferred.fromCoroutine(self.svc.stop(cid, timeout=1))
        self.clock.advance(1)
        self.successResultOf(d)
        self.assertEqual(self.svc.resolve(cid).state.status, "exited")

    def test_restart(self) -> None:
        """restart stops and starts again; emits restart."""
        self.runtime.fatal_signals[signal.SIGTERM] = 143
        cid = self.started(Cmd=["sleep", "100"])
        run_sync(self.svc.restart(cid))
        c = self.svc.resolve(cid)
        self.assertEqual(c.state.status, "running")
        self.assertEqual(self.events.actions(cid)[-3:], ["stop", "start", "restart"])

    def test_update_live(self) -> None:
        """update changes HostConfig and the live cgroup through the runtime."""
        cid = self.started(Cmd=["sleep", "100"])
        run_sync(self.svc.update(cid, {"Memory": 128 * 1024 * 1024, "PidsLimit": 50}))
        res = self.runtime.containers[cid]["resources"]
        self.assertEqual(res["memory"]["limit"], 128 * 1024 * 1024)
        self.assertEqual(res["pids"], {"limit": 50})
        self.assertEqual(self.svc.resolve(cid).host_config["Memory"], 128 * 1024 * 1024)
        self.fail_with(self.svc.update(cid, {"Memory": 10}), InvalidParameter)

    def test_update_realtime_stored_not_live(self) -> None:
        """As moby 28's toContainerdResources: a real-time CPU budget (or the OOM killer) is
        stored for the next start, not written into the running cgroup, where the kernel
        refuses a budget the parent cgroup has not got (pyd answered 500)."""
        self.svc.settings = attrs.evolve(
            self.svc.settings, limits=attrs.evolve(self.svc.settings.limits, realtime=True)
        )
        cid = self.started(Cmd=["sleep", "100"])
        run_sync(self.svc.update(cid, {"CpuRealtimeRuntime": 100, "CpuShares": 512}))
        res = self.runtime.containers[cid]["resources"]
        self.assertEqual(res, {"cpu": {"shares": 512}})
        self.assertEqual(self.svc.resolve(cid).host_config["CpuRealtimeRuntime"], 100)


class SysctlNameTests(EngineTestBase):
    """A sysctl key that leaves its subtree is refused at create (issue 12)."""

    def test_escaping_sysctl_refused(self) -> None:
        """C{net/../kernel/core_pattern} would write kernel.core_pattern: 400, nothing made."""
        for key in ("net/../kernel/core_pattern", "net..x", "net/./y"):
            err = self.fail_with(
                self.svc.create(
                    None, {"Image": "busybox", "Cmd": ["true"]}, {"Sysctls": {key: "1"}}
                ),
                InvalidParameter,
            )
            self.assertEqual(str(err), f"invalid sysctl name {key!r}")
        self.assertEqual(self.svc.list_all(), [])
        self.assertEqual(rules.sysctl_name("net/ipv4/ip_forward"), "net.ipv4.ip_forward")


class NamespaceJoinPinningTests(EngineTestBase):
    """C{container:X} is resolved once, at create, to X's full id (escape 8 of issue 12)."""

    def test_create_stores_the_full_id(self) -> None:
        """--pid/--ipc container:<name or prefix> are stored as container:<full id>."""
        donor = self.started("donor", Cmd=["sleep", "9"], HostConfig={"IpcMode": "shareable"})
        cid = self.create(
            Cmd=["true"],
            HostConfig={"PidMode": "container:donor", "IpcMode": f"container:{donor[:7]}"},
        )
        hc = self.svc.resolve(cid).host_config
        self.assertEqual(hc["PidMode"], f"container:{donor}")
        self.assertEqual(hc["IpcMode"], f"container:{donor}")

    def test_unknown_donor_refused_at_create(self) -> None:
        """A container:X naming nothing is refused at create, and nothing is created."""
        err = self.fail_with(
            self.svc.create(
                None, {"Image": "busybox", "Cmd": ["true"]}, {"PidMode": "container:nope"}
            ),
            InvalidParameter,
        )
        self.assertEqual(str(err), "No such container: nope")
        self.assertEqual(self.svc.list_all(), [])

    def test_decoy_removed_before_start_is_not_replaced(self) -> None:
        """The attack: a decoy named with the first characters of another container's id is
        joined by name at create, then removed; the start must not join the container whose id
        the name is a prefix of."""
        target = self.started("target", Cmd=["sleep", "9"])
        decoy = self.started(target[:6], Cmd=["sleep", "9"])
        joiner = self.create(Cmd=["true"], HostConfig={"PidMode": f"container:{target[:6]}"})
        self.assertEqual(self.svc.resolve(joiner).host_config["PidMode"], f"container:{decoy}")
        run_sync(self.svc.remove(decoy, force=True))
        self.fail_with(self.svc.start(joiner), InvalidParameter)
        self.assertNotIn(joiner, self.runtime.containers)

    def test_container_named_like_the_pinned_id_is_not_joined(self) -> None:
        """Once the pinned donor is gone, a container named with its full id is not it."""
        donor = self.started("donor", Cmd=["sleep", "9"])
        joiner = self.create(Cmd=["true"], HostConfig={"PidMode": "container:donor"})
        run_sync(self.svc.remove(donor, force=True))
        self.started(donor, Cmd=["sleep", "9"])
        self.fail_with(self.svc.start(joiner), InvalidParameter)

    def test_join_uses_the_pinned_donor(self) -> None:
        """The start joins the pinned donor's pid namespace by its process."""
        donor = self.started("donor", Cmd=["sleep", "9"])
        joiner = self.started(Cmd=["true"], HostConfig={"PidMode": "container:donor"})
        spec = self.runtime.containers[joiner]["spec"]
        ns = {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}
        self.assertEqual(ns["pid"], f"/proc/{self.svc.resolve(donor).state.pid}/ns/pid")


class RestartPolicyTests(EngineTestBase):
    def test_on_failure_with_backoff(self) -> None:
        """on-failure:2 restarts twice with 100 ms then 200 ms delays, then stays exited."""
        cid = self.started(
            Cmd=["false"],
            HostConfig={"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}},
        )
        self.runtime.exit(cid, 1)
        c = self.svc.resolve(cid)
        self.assertEqual((c.state.status, c.restart_count), ("restarting", 1))  # counted at die
        self.clock.advance(0.15)
        c = self.svc.resolve(cid)
        self.assertEqual((c.state.status, c.restart_count), ("running", 1))
        # dockerd's events for a policy restart: die, then start (no "restart")
        self.assertEqual(self.events.actions(cid), ["create", "start", "die", "start"])
        self.runtime.exit(cid, 1)
        self.clock.advance(0.15)
        self.assertEqual(self.svc.resolve(cid).state.status, "restarting")
        self.clock.advance(0.1)
        self.assertEqual(self.svc.resolve(cid).restart_count, 2)
        self.runtime.exit(cid, 1)
        self.clock.advance(10)
        c = self.svc.resolve(cid)
        self.assertEqual((c.state.status, c.restart_count), ("exited", 2))

    def test_failed_restart_is_not_retried(self) -> None:
        """A policy restart whose start fails leaves the container exited, as dockerd does."""
        cid = self.started(Cmd=["false"], HostConfig={"RestartPolicy": {"Name": "always"}})
        self.runtime.fail_start = "exec: no such file"
        self.runtime.exit(cid, 1)
        self.clock.advance(0.15)
        c = self.svc.resolve(cid)
        self.assertEqual((c.state.status, c.restart_count), ("exited", 1))
        starts = [x for x in self.runtime.calls if x[0] == "start"]
        self.clock.advance(120)
        self.assertEqual([x for x in self.runtime.calls if x[0] == "start"], starts)
        self.assertEqual(self.svc.resolve(cid).state.status, "exited")

    def test_on_failure_success_does_not_restart(self) -> None:
        """Exit 0 under on-failure stays exited."""
        cid = self.started(Cmd=["true"], HostConfig={"RestartPolicy": {"Name": "on-failure"}})
        self.runtime.exit(cid, 0)
        self.clock.advance(1)
        self.assertEqual(self.svc.resolve(cid).state.status, "exited")

    def test_always_then_stop(self) -> None:
        """always restarts after any exit; stop of a restarting container ends it."""
        cid = self.started(Cmd=["true"], HostConfig={"RestartPolicy": {"Name": "always"}})
        self.runtime.exit(cid, 0)
        run_sync(self.svc.stop(cid))
        self.clock.advance(5)
        c = self.svc.resolve(cid)
        self.assertEqual(c.state.status, "exited")
        self.assertTrue(c.state.manually_stopped)

    def test_backoff_resets_after_long_run(self) -> None:
        """A run of 10 s or more resets the delay to 100 ms."""
        cid = self.started(Cmd=["x"], HostConfig={"RestartPolicy": {"Name": "always"}})
        for _ in range(3):
            self.runtime.exit(cid, 1)
            self.clock.advance(1)  # restarted after the back-off delay...
            self.clock.advance(60)  # ...and ran for a minute
        self.runtime.exit(cid, 1)
        self.clock.advance(0.15)
        self.assertEqual(self.svc.resolve(cid).state.status, "running")


class RemoveTests(EngineTestBase):
    def test_remove_running_refused(self) -> None:
        """rm of a running container without force is dockerd's 409."""
        cid = self.started("r1", Cmd=["sleep", "1"])
        err = self.fail_with(self.svc.remove(cid), Conflict)
        self.assertEqual(
            str(err),
            'cannot remove container "/r1": container is running: stop the container before '
            "removing or force remove",
        )

    def test_force_remove(self) -> None:
        """rm -f kills, releases everything, emits destroy, fires removed waiters."""
        cid = self.started("r2", Cmd=["sleep", "100"])
        waiter = self.svc.wait(cid, "removed")
        run_sync(self.svc.remove(cid, force=True, volumes=True))
        self.assertRaises(NotFound, self.svc.resolve, cid)
        self.assertEqual(self.successResultOf(waiter).status_code, 137)
        self.assertIn((cid, True), self.volumes.released)
        self.assertIn(cid, self.networks.released)
        self.assertNotIn(cid, self.images.layers)
        self.assertFalse(os.path.exists(self.svc.bundle_dir(cid)))
        self.assertEqual(self.events.actions(cid)[-1], "destroy")
        self.assertIsNone(self.successResultOf(self.svc._repo.get(cid)))

    def test_auto_remove(self) -> None:
        """AutoRemove containers disappear after their exit; removed waiters get the code."""
        cid = self.started(Cmd=["sh"], HostConfig={"AutoRemove": True})
        waiter = self.svc.wait(cid, "removed")
        self.runtime.exit(cid, 3)
        self.assertEqual(self.successResultOf(waiter).status_code, 3)
        self.assertRaises(NotFound, self.svc.resolve, cid)

    def test_auto_remove_after_start_failure(self) -> None:
        """A --rm container whose start fails is removed too (the CLI waits for that)."""
        self.runtime.fail_create = "executable file `nope` not found in $PATH"
        cid = self.create(Cmd=["nope"], HostConfig={"AutoRemove": True})
        waiter = self.svc.wait(cid, "removed")
        self.fail_with(self.svc.start(cid), InvalidParameter)
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(waiter).status_code, 127)
        self.assertRaises(NotFound, self.svc.resolve, cid)

    def test_rename(self) -> None:
        """rename changes the name; a taken name is 409; emits rename with oldName."""
        cid = self.create("a1")
        self.create("b1")
        self.fail_with(self.svc.rename("a1", "b1"), Conflict)
        run_sync(self.svc.rename("a1", "c1"))
        self.assertEqual(self.svc.resolve("c1").id, cid)
        ev = self.events.events[-1]
        self.assertEqual(
            (ev.action, ev.attributes["oldName"], ev.attributes["name"]), ("rename", "/a1", "c1")
        )

    def test_prune(self) -> None:
        """prune removes stopped containers only (label filter honoured)."""
        keep = self.started(Cmd=["sleep", "1"])
        gone = self.create(Labels={"x": "1"})
        other = self.create(Labels={"x": "2"})
        result = run_sync(self.svc.prune(None, ["x=1"]))
        self.assertEqual(result.deleted, (gone,))
        self.svc.resolve(keep)
        self.svc.resolve(other)

    def test_prune_reports_reclaimed_writable_layers(self) -> None:
        """SpaceReclaimed: the writable layers of the removed containers, measured before."""
        sizes: dict[str, int] = {}

        async def rw_sizes(cids: Sequence[str]) -> list[int]:
            return [sizes[cid] for cid in cids]

        self.svc.rw_sizes = rw_sizes
        a, b = self.create(), self.create()
        running = self.started(Cmd=["sleep", "1"])
        sizes.update({a: 1000, b: 234, running: 5000})
        result = run_sync(self.svc.prune(None, []))
        self.assertEqual(set(result.deleted), {a, b})
        self.assertEqual(result.space_reclaimed, 1234)


class RestoreTests(EngineTestBase):
    def test_restore(self) -> None:
        """After a daemon restart: live conmon -> running; exit file -> exited; neither -> 255."""
        alive = self.started(Cmd=["sleep", "100"])
        exited = self.started(Cmd=["sleep", "100"])
        lost = self.started(Cmd=["sleep", "100"])
        always = self.started(
            Cmd=["sleep", "100"], HostConfig={"RestartPolicy": {"Name": "always"}}
        )
        self.svc.shutdown()
        # While the daemon is down: one exits (conmon writes its file), one's runtime vanishes.
        self.runtime.callbacks.clear()
        self.runtime.exit(exited, 7)
        self.runtime.alive_monitors.discard(lost)
        self.runtime.alive_monitors.discard(always)
        self.svc = self.make_service()
        run_sync(self.svc.startup())
        self.assertEqual(self.svc.resolve(alive).state.status, "running")
        c = self.svc.resolve(exited)
        self.assertEqual((c.state.status, c.state.exit_code), ("exited", 7))
        c = self.svc.resolve(lost)
        self.assertEqual((c.state.status, c.state.exit_code), ("exited", 255))
        self.assertEqual(self.svc.resolve(always).state.status, "running")
        # The restored running container's exit is still seen.
        self.runtime.exit(alive, 0)
        self.assertEqual(self.svc.resolve(alive).state.status, "exited")
        # A lost container can be started again.
        run_sync(self.svc.start(lost))
        self.assertEqual(self.svc.resolve(lost).state.status, "running")

    def test_adopt_unrecorded_start(self) -> None:
        """A container conmon runs but the database never saw started is adopted as running."""
        cid = self.create(Cmd=["sleep", "100"])
        run_sync(self.runtime.create(CreateOptions(cid, "x", self.svc.bundle_dir(cid), {})))
        run_sync(self.runtime.start(cid))
        self.svc.shutdown()
        self.svc = self.make_service()
        run_sync(self.svc.startup())
        self.assertEqual(self.svc.resolve(cid).state.status, "running")
        self.runtime.exit(cid, 0)
        self.assertEqual(self.svc.resolve(cid).state.status, "exited")

    def test_interrupted_create_removed(self) -> None:
        """A daemon killed in the middle of a create (its row stored, its writable layer or
        mounts not yet): the restart removes the container, its anonymous volumes and bundle,
        as a failed create does; a finished create stays."""
        kept = self.create(Cmd=["sleep", "100"])
        hang: Deferred[None] = Deferred()
        real = self.volumes.resolve_mounts

        async def stuck(*a: Any, **kw: Any) -> Any:
            await hang
            return await real(*a, **kw)

        self.volumes.resolve_mounts = stuck  # type: ignore[method-assign]
        pending = Deferred.fromCoroutine(self.svc.create("/cut", {"Image": "busybox"}, {}))
        self.assertNoResult(pending)
        cut = self.svc.resolve("cut").id
        self.svc.shutdown()
        self.volumes.resolve_mounts = real  # type: ignore[method-assign]
        self.svc = self.make_service()
        run_sync(self.svc.startup())
        self.fail_with(self._resolve(cut), NotFound)
        self.assertIn((cut, True), self.volumes.released)
        self.assertFalse(os.path.exists(self.svc.bundle_dir(cut)))
        self.assertEqual(self.svc.resolve(kept).state.status, "created")
        # the old daemon's create is gone with it: end the coroutine while the DB is open
        pending.cancel()
        self.failureResultOf(pending)

    async def _resolve(self, ref: str) -> Any:
        return self.svc.resolve(ref)

    def test_interrupted_start_undone(self) -> None:
        """A daemon killed in the middle of a start, after the runtime created the container
        but before conmon took over (so no monitor lives): the restart deletes the runtime's
        half-created container, unmounts the root filesystem and has the network give back
        what the start took; the container can then start."""
        cid = self.create(Cmd=["sleep", "100"])
        running = self.started(Cmd=["sleep", "100"])
        run_sync(self.images.mount_rw_layer(cid))
        run_sync(self.networks.setup(cid, "x", "x", "bridge", NetworkRequest(), []))
        run_sync(self.runtime.create(CreateOptions(cid, "x", self.svc.bundle_dir(cid), {})))
        self.runtime.alive_monitors.discard(cid)
        self.svc.shutdown()
        self.runtime.callbacks.clear()
        self.svc = self.make_service()
        run_sync(self.svc.startup())
        self.assertEqual(self.svc.resolve(cid).state.status, "created")
        self.assertNotIn(cid, self.runtime.containers)
        self.assertNotIn(cid, self.images.mounted)
        self.assertEqual(self.networks.stale_released, [cid])
        self.assertIn(running, self.images.mounted)
        run_sync(self.svc.start(cid))
        self.assertEqual(self.svc.resolve(cid).state.status, "running")

    def test_stopped_containers_looked_at_once(self) -> None:
        """At start, the conmon check and the mount check of the containers that do not run
        are one call each for all of them (a thousand created containers made two thread hops
        apiece), and only a mounted root filesystem is unmounted; a running one is unchanged."""
        stopped = [self.create(Cmd=["true"]) for _ in range(6)]
        running = self.started(Cmd=["sleep", "100"])
        run_sync(self.images.mount_rw_layer(stopped[0]))  # a start cut short left it mounted
        self.svc.shutdown()
        self.runtime.callbacks.clear()
        singles: list[str] = []
        real_alive = self.runtime.monitor_alive

        async def alive(bundle: str) -> bool:
            singles.append(bundle)
            return await real_alive(bundle)

        unmounted: list[str] = []
        real_unmount = self.images.unmount_rw_layer

        async def unmount(cid: str) -> None:
            unmounted.append(cid)
            await real_unmount(cid)

        self.runtime.monitor_alive = alive  # type: ignore[method-assign]
        self.images.unmount_rw_layer = unmount  # type: ignore[method-assign]
        before = self.runtime.monitors_alive_calls
        self.svc = self.make_service()
        run_sync(self.svc.startup())
        self.assertEqual(self.runtime.monitors_alive_calls - before, 1)
        # the running container's own check (its conmon lives) is the only single one
        self.assertEqual(singles, [self.svc.bundle_dir(running)])
        self.assertEqual(unmounted, [stopped[0]])
        self.assertNotIn(stopped[0], self.images.mounted)
        self.assertEqual({self.svc.resolve(c).state.status for c in stopped}, {"created"})
        self.assertEqual(self.svc.resolve(running).state.status, "running")

    def test_running_containers_restored_side_by_side(self) -> None:
        """The containers that still run are reconciled a few at a time (each asks the
        runtime, a process spawn, and mounts its root filesystem): with ten of them, eight
        runtime questions are in flight at once, and all are running once answered."""
        from pyd.engine.containers.restore import RESTORE_AT_ONCE

        ids = [self.started(Cmd=["sleep", "100"]) for _ in range(10)]
        self.svc.shutdown()
        self.runtime.callbacks.clear()
        asked: list[tuple[str, Deferred[Any]]] = []
        real_state = self.runtime.state

        def state(cid: str, runtime: Any = None) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            asked.append((cid, d))
            return d

        self.runtime.state = state  # type: ignore[method-assign]
        self.svc = self.make_service()
        started = Deferred.fromCoroutine(self.svc.startup())
        self.assertEqual(len(asked), RESTORE_AT_ONCE)
        while asked:
            cid, d = asked.pop(0)
            d.callback(run_sync(real_state(cid)))
        self.successResultOf(started)
        self.assertEqual({self.svc.resolve(c).state.status for c in ids}, {"running"})

    def test_interrupted_removal_finished(self) -> None:
        """A daemon killed in the middle of `docker rm` (the container marked removing, its
        writable layer already gone): the restart finishes the removal."""
        cid = self.started(Cmd=["sleep", "100"])
        c = self.svc.resolve(cid)
        self.runtime.exit(cid, 137)
        c = self.svc.resolve(cid)
        run_sync(self.svc._save(attrs.evolve(c, state=attrs.evolve(c.state, status="removing"))))
        run_sync(self.images.remove_rw_layer(cid))
        self.svc.shutdown()
        self.svc = self.make_service()
        run_sync(self.svc.startup())
        self.fail_with(self._resolve(cid), NotFound)
        self.assertIn(cid, self.networks.released)
        self.assertFalse(os.path.exists(self.svc.bundle_dir(cid)))

    def test_orphan_bundle_swept(self) -> None:
        """A bundle directory without its container (a removal that ended between the row and
        the directory) is removed at start; other names and known containers' stay."""
        kept = self.create(Cmd=["sleep", "100"])
        orphan = os.path.join(self.root, "containers", "e" * 64)
        other = os.path.join(self.root, "containers", "notes")
        os.makedirs(os.path.join(orphan, "sub"))
        os.makedirs(other)
        self.svc.shutdown()
        self.svc = self.make_service()
        run_sync(self.svc.startup())
        self.assertFalse(os.path.exists(orphan))
        self.assertTrue(os.path.isdir(other))
        self.assertTrue(os.path.isdir(self.svc.bundle_dir(kept)))

    def test_interrupted_bundle_writes_swept(self) -> None:
        """The temporary file of a bundle write the daemon died in (config.json.tmp, the
        runtime's; hosts.tmp) is removed at start; the log rotation's ctr.log.tmp and the
        bundle's real files stay."""
        cid = self.create(Cmd=["sleep", "100"])
        bundle = self.svc.bundle_dir(cid)
        for name in ("config.json.tmp", "hosts.tmp", "ctr.log.tmp", "config.json"):
            with open(os.path.join(bundle, name), "w") as f:
                f.write("x")
        self.svc.shutdown()
        self.svc = self.make_service()
        run_sync(self.svc.startup())
        left = set(os.listdir(bundle))
        self.assertNotIn("config.json.tmp", left)
        self.assertNotIn("hosts.tmp", left)
        self.assertIn("ctr.log.tmp", left)
        self.assertIn("config.json", left)

    def test_pause_of_a_commit_cut_before_recorded(self) -> None:
        """The daemon killed after the runtime paused the container for a commit but before
        the pause was recorded: the restart still unpauses it."""
        cid = self.started(Cmd=["sleep", "100"])
        hang: Deferred[None] = Deferred()
        real = self.runtime.pause

        async def pause_then_die(container_id: str, runtime: Any = None) -> None:
            await real(container_id)
            await hang

        self.runtime.pause = pause_then_die  # type: ignore[method-assign]
        pending = Deferred.fromCoroutine(self.svc.pause(cid, for_commit=True))
        self.assertNoResult(pending)
        self.svc.shutdown()
        self.runtime.pause = real  # type: ignore[method-assign]
        self.runtime.callbacks.clear()
        self.svc = self.make_service()
        run_sync(self.svc.startup())
        self.assertEqual(self.svc.resolve(cid).state.status, "running")
        self.assertEqual(self.runtime.containers[cid]["status"], "running")
        pending.cancel()
        self.failureResultOf(pending)

    def test_pause_of_a_commit_undone(self) -> None:
        """A daemon killed in the middle of a commit left the container paused by pyd (not by a
        user): the restart unpauses it; a user's pause stays."""
        committed = self.started(Cmd=["sleep", "100"])
        paused = self.started(Cmd=["sleep", "100"])
        run_sync(self.svc.pause(committed, for_commit=True))
        run_sync(self.svc.pause(paused))
        self.svc.shutdown()
        self.runtime.callbacks.clear()
        self.svc = self.make_service()
        run_sync(self.svc.startup())
        c = self.svc.resolve(committed)
        self.assertEqual((c.state.status, c.state.paused_for_commit), ("running", False))
        self.assertEqual(self.runtime.containers[committed]["status"], "running")
        self.assertEqual(self.svc.resolve(paused).state.status, "paused")
        self.assertEqual(self.runtime.containers[paused]["status"], "paused")


class HealthTests(EngineTestBase):
    def test_health_transitions(self) -> None:
        """Probes run on the interval: healthy on success, unhealthy after Retries failures."""
        cid = self.started(
            Cmd=["sleep", "100"],
            Healthcheck={"Test": ["CMD-SHELL", "check"], "Interval": 1_000_000_000, "Retries": 2},
        )
        self.assertEqual(self.svc.resolve(cid).state.health_status, "starting")
        self.runtime.exec_results = [(0, b"ok"), (1, b"bad"), (1, b"bad")]
        self.clock.advance(1)
        self.assertEqual(self.svc.resolve(cid).state.health_status, "healthy")
        self.assertIn(("exec", cid, "/bin/sh", "-c", "check"), self.runtime.calls)
        self.clock.advance(1)
        self.assertEqual(self.svc.resolve(cid).state.health_status, "healthy")
        self.clock.advance(1)
        st = self.svc.resolve(cid).state
        self.assertEqual((st.health_status, st.health_failing_streak), ("unhealthy", 2))
        self.assertEqual(len(st.health_log), 3)
        actions = self.events.actions(cid)
        self.assertIn("health_status: healthy", actions)
        self.assertIn("health_status: unhealthy", actions)


class LogsTests(EngineTestBase):
    def test_unreachable_syslog_fails_the_start(self) -> None:
        """dockerd's syslog driver dials at start: a server that cannot be reached fails the
        start with its error, and nothing of the run is left."""
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        cid = self.create(
            Cmd=["x"],
            HostConfig={
                "LogConfig": {
                    "Type": "syslog",
                    "Config": {"syslog-address": f"tcp://127.0.0.1:{port}"},
                }
            },
        )
        e = self.fail_with(self.svc.start(cid), SystemError_)
        self.assertEqual(
            str(e),
            "failed to initialize logging driver: "
            f"dial tcp 127.0.0.1:{port}: connect: connection refused",
        )
        self.assertNotEqual(self.svc.resolve(cid).state.status, "running")
        self.assertNotIn(("create", cid), self.runtime.calls)

    def test_read_logs(self) -> None:
        """k8s-file lines become entries; tail counts whole lines; streams filter."""
        cid = self.create(Cmd=["x"])
        path = self.svc.resolve(cid).extra["log_path"]
        with open(path, "w") as f:
            f.write(
                "2026-11-28T12:30:03.100000000+00:00 stdout F one\n"
                "2026-11-28T12:30:04.000000000+00:00 stderr F two\n"
                "2026-11-28T12:30:05.000000000+00:00 stdout P thr\n"
                "2026-11-28T12:30:05.500000000+00:00 stdout F ee\n"
            )
        _, entries, _ = run_sync(self.svc.read_logs(cid, LogsRequest()))
        self.assertEqual([e.data for e in entries], [b"one\n", b"two\n", b"thr", b"ee\n"])
        _, entries, _ = run_sync(self.svc.read_logs(cid, LogsRequest(tail=1)))
        self.assertEqual([e.data for e in entries], [b"thr", b"ee\n"])
        _, entries, _ = run_sync(self.svc.read_logs(cid, LogsRequest(stdout=False)))
        self.assertEqual([(e.stream, e.data) for e in entries], [("stderr", b"two\n")])
        since = entries[0].time_nano
        _, entries, _ = run_sync(self.svc.read_logs(cid, LogsRequest(since_nano=since + 1)))
        self.assertEqual(len(entries), 2)

    def test_follow_reads_to_the_end_after_remove(self) -> None:
        """docker-py's run(remove=True) removes the container before it reads the followed
        stream: what was logged must still come through, and the follower must end."""
        cid = self.started(Cmd=["x"])
        path = self.svc.resolve(cid).extra["log_path"]
        with open(path, "w") as f:
            f.write("2026-11-28T12:30:03.100000000+00:00 stdout F first\n")
        req = LogsRequest(follow=True)
        c, entries, tail = run_sync(self.svc.read_logs(cid, req))
        got = [e.data for e in entries]
        d = Deferred.fromCoroutine(
            self.svc.follow_logs(
                c, req, tail, lambda b: got.extend(e.data for e in b), lambda: False
            )
        )
        with open(path, "a") as f:
            f.write("2026-11-28T12:30:04.100000000+00:00 stdout F last\n")
        self.runtime.exit(cid, 0)
        run_sync(self.svc.remove(cid))
        self.assertFalse(os.path.exists(path))
        self.clock.pump([0.1] * 3)
        self.successResultOf(d)
        self.assertEqual(got, [b"first\n", b"last\n"])


class FakeDirWatcher:
    """A DirWatcher the test fires by hand."""

    def __init__(self) -> None:
        self.watches: dict[str, Any] = {}

    def watch(self, directory: str, callback: Any) -> Any:
        self.watches[directory] = callback

        def cancel() -> None:
            self.watches.pop(directory, None)

        return cancel


class LogConfigTests(EngineTestBase):
    """Log drivers and options like dockerd: keys at create, values at start; rotation wiring."""

    def test_unknown_driver_and_option_refused_at_create(self) -> None:
        """dockerd's texts for a driver it cannot find and for keys the driver does not know."""
        e = self.fail_with(
            self.svc.create(None, {"Image": "busybox"}, {"LogConfig": {"Type": "fluentd"}}),
            InvalidParameter,
        )
        self.assertEqual(
            str(e), 'error looking up logging plugin fluentd: plugin "fluentd" not found'
        )
        e = self.fail_with(
            self.svc.create(
                None, {"Image": "busybox"}, {"LogConfig": {"Type": "", "Config": {"x": "1"}}}
            ),
            InvalidParameter,
        )
        self.assertEqual(str(e), "unknown log opt 'x' for json-file log driver")
        self.assertEqual(self.svc.list_all(), [])

    def test_bad_value_fails_the_start(self) -> None:
        """A bad max-size is the start's error (exit code 128, State.Error), not create's."""
        cid = self.create(
            HostConfig={"LogConfig": {"Type": "json-file", "Config": {"max-size": "1x"}}}
        )
        e = self.fail_with(self.svc.start(cid), SystemError_)
        self.assertEqual(str(e), "failed to initialize logging driver: invalid suffix: 'x'")
        st = self.svc.resolve(cid).state
        self.assertEqual((st.status, st.exit_code, st.error), ("created", 128, str(e)))
        self.assertNotIn(("create", cid), self.runtime.calls)

    def test_daemon_defaults_merged(self) -> None:
        """The daemon's driver when none is given; its options under the container's own."""
        self.svc.settings = attrs.evolve(
            self.svc.settings, log_driver="json-file", log_opts={"max-size": "1m", "max-file": "2"}
        )
        cid = self.create(HostConfig={"LogConfig": {"Type": "", "Config": {"max-file": "4"}}})
        self.assertEqual(
            self.svc.resolve(cid).host_config["LogConfig"],
            {"Type": "json-file", "Config": {"max-file": "4", "max-size": "1m"}},
        )
        cid = self.create(HostConfig={"LogConfig": {"Type": "local", "Config": {}}})
        self.assertEqual(
            self.svc.resolve(cid).host_config["LogConfig"], {"Type": "local", "Config": {}}
        )

    def test_rotation_is_watched_while_running(self) -> None:
        """max-size with max-file > 1: the log is prepared and watched while the container runs;
        conmon's own limit is 10 x max-size x max-file."""
        watcher = FakeDirWatcher()
        self.svc.log_watcher = watcher
        lc = {"Type": "json-file", "Config": {"max-size": "10k", "max-file": "3"}}
        cid = self.started(HostConfig={"LogConfig": lc})
        bundle = self.svc.bundle_dir(cid)
        opts: CreateOptions = self.runtime.containers[cid]["opts"]
        self.assertEqual((opts.log_size_max, opts.log_driver), (300_000, "k8s-file"))
        self.assertIn(bundle, watcher.watches)
        self.assertTrue(os.path.exists(os.path.join(bundle, "ctr.log.1")))
        self.assertTrue(os.path.exists(os.path.join(bundle, "ctr.log.next")))
        # conmon replaced the log (its own limit): the next event numbers the new file
        os.rename(os.path.join(bundle, "ctr.log.tmp"), os.path.join(bundle, "ctr.log"))
        watcher.watches[bundle]("ctr.log")
        self.assertEqual(
            os.stat(os.path.join(bundle, "ctr.log")).st_ino,
            os.stat(os.path.join(bundle, "ctr.log.2")).st_ino,
        )
        self.runtime.exit(cid, 0)
        self.assertNotIn(bundle, watcher.watches)

    def test_none_and_plain_sizes(self) -> None:
        """none: conmon keeps no log; max-size alone is conmon's own limit (max-file 1)."""
        cid = self.started(HostConfig={"LogConfig": {"Type": "none", "Config": {}}})
        opts: CreateOptions = self.runtime.containers[cid]["opts"]
        self.assertEqual((opts.log_driver, opts.log_size_max), ("none", 0))
        cid = self.started(
            HostConfig={"LogConfig": {"Type": "json-file", "Config": {"max-size": "2k"}}}
        )
        opts = self.runtime.containers[cid]["opts"]
        self.assertEqual((opts.log_driver, opts.log_size_max), ("k8s-file", 2000))
        self.assertFalse(os.path.exists(os.path.join(self.svc.bundle_dir(cid), "ctr.log.next")))


class LogOptionValueTests(SynchronousTestCase):
    """dockerd's parsing of log option values (go-units, strconv) and their messages."""

    def test_sizes(self) -> None:
        """FromHumanSize is decimal; RAMInBytes binary; go-units' errors."""
        self.assertEqual(rules.go_size("100k"), 100_000)
        self.assertEqual(rules.go_size("1.5MB"), 1_500_000)
        self.assertEqual(rules.go_size("2KiB"), 2000)
        self.assertEqual(rules.go_size("2KiB", binary=True), 2048)
        self.assertEqual(rules.go_size("10 m"), 10_000_000)
        self.assertEqual(rules.go_size("42"), 42)
        for bad, msg in (
            ("abc", "invalid size: 'abc'"),
            ("-1", "invalid size: '-1'"),
            ("10x", "invalid suffix: 'x'"),
            ("10kbb", "invalid suffix: 'kbb'"),
            ("1.2.3k", 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
        ):
            with self.assertRaises(ValueError) as ctx:
                rules.go_size(bad)
            self.assertEqual(str(ctx.exception), msg)

    def test_plans(self) -> None:
        """json-file and local defaults and errors, as dockerd's loggers report them."""
        self.assertEqual(
            runconfig.log_plan({"Type": "json-file"}), runconfig.LogPlan("json-file", 0, 1)
        )
        self.assertEqual(
            runconfig.log_plan({"Type": "local"}), runconfig.LogPlan("local", 20 * 1024 * 1024, 5)
        )
        self.assertTrue(
            runconfig.log_plan(
                {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "2"}}
            ).rotates
        )
        self.assertFalse(
            runconfig.log_plan({"Type": "json-file", "Config": {"max-file": "3"}}).rotates
        )
        for lc, msg in (
            ({"max-size": "0"}, "max-size must be a positive number"),
            ({"max-file": "x"}, 'strconv.Atoi: parsing "x": invalid syntax'),
            ({"max-file": "0"}, "max-file cannot be less than 1"),
            (
                {"compress": "true", "max-size": "1k"},
                "compress cannot be true when max-file is less than 2 or max-size is not set",
            ),
        ):
            with self.assertRaises(SystemError_) as ctx:
                runconfig.log_plan({"Type": "json-file", "Config": lc})
            self.assertEqual(str(ctx.exception), "failed to initialize logging driver: " + msg)
        for lc, msg in (
            ({"max-size": "x"}, "invalid value for max-size: x: invalid size: 'x'"),
            ({"max-file": "1"}, "compression cannot be enabled when max file count is 1"),
            (
                {"compress": "no"},
                'invalid boolean value for compress: strconv.ParseBool: parsing "no": invalid syntax',
            ),
        ):
            with self.assertRaises(SystemError_) as ctx:
                runconfig.log_plan({"Type": "local", "Config": lc})
            self.assertEqual(str(ctx.exception), "failed to initialize logging driver: " + msg)

    def test_create_time_checks(self) -> None:
        """mode and max-buffer-size like dockerd's ValidateLogOpts; none accepts anything."""
        rules.validate_log_config({"Type": "none", "Config": {"whatever": "1"}})
        rules.validate_log_config(
            {"Type": "json-file", "Config": {"mode": "non-blocking", "max-buffer-size": "4m"}}
        )
        for lc, msg in (
            ({"mode": "fast"}, "logger: logging mode not supported: fast"),
            (
                {"max-buffer-size": "4m"},
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'",
            ),
        ):
            with self.assertRaises(InvalidParameter) as ctx:
                rules.validate_log_config({"Type": "json-file", "Config": lc})
            self.assertEqual(str(ctx.exception), msg)


class RuntimeChoiceTests(EngineTestBase):
    """HostConfig.Runtime: the name asked for is kept, the container runs under that runtime,
    and every later operation of the run (kill, delete, restore) uses it; unknown names get
    dockerd's 400."""

    def make_service(self) -> ContainerService:
        svc = super().make_service()
        self.runtimes = RuntimeSet(
            {
                "crun": OciRuntime("crun", "/usr/bin/crun", "/x/crun"),
                "runc": OciRuntime("runc", "/usr/sbin/runc", "/x/runtime-runc"),
            },
            "crun",
        )
        svc.settings = attrs.evolve(
            svc.settings,
            runtimes=self.runtimes,
            limits=attrs.evolve(svc.settings.limits, runtimes=self.runtimes.names),
        )
        return svc

    def test_name_kept_and_used(self) -> None:
        """--runtime runc: inspect says runc, create/start/kill/delete go to runc; no
        --runtime: the default's name is stored (as dockerd) and crun runs it."""
        cid = self.started(Cmd=["sleep", "9"], HostConfig={"Runtime": "runc"})
        self.assertEqual(self.svc.resolve(cid).host_config["Runtime"], "runc")
        other = self.started(Cmd=["sleep", "9"])
        self.assertEqual(self.svc.resolve(other).host_config["Runtime"], "crun")
        run_sync(self.svc.kill(cid))
        run_sync(self.svc.remove(cid))
        ops = [(op, name) for op, c, name in self.runtime.runtime_calls if c == cid]
        self.assertEqual(
            ops, [("create", "runc"), ("start", "runc"), ("kill", "runc"), ("delete", "runc"),
                  ("delete", "runc")],
        )  # fmt: skip
        self.assertIn(("create", other, "crun"), self.runtime.runtime_calls)

    def test_unknown_refused(self) -> None:
        """dockerd's text, nothing created."""
        e = self.fail_with(
            self.svc.create(None, {"Image": "busybox"}, {"Runtime": "kata"}), InvalidParameter
        )
        self.assertEqual(str(e), "unknown or invalid runtime name: kata")
        self.assertEqual(self.svc.list_all(), [])

    def test_restored_run_keeps_its_runtime(self) -> None:
        """After a daemon restart whose configuration no longer has runc, the running runc
        container is still killed and deleted through runc (its recorded binary and root); a
        new start of it gets dockerd's unknown-runtime error."""
        cid = self.started(Cmd=["sleep", "9"], HostConfig={"Runtime": "runc"})
        self.svc.shutdown()
        self.runtime.callbacks.clear()
        self.svc = super().make_service()  # only the driver's default runtime now
        self.svc.settings = attrs.evolve(
            self.svc.settings, runtimes=RuntimeSet({"crun": self.runtimes.runtimes["crun"]}, "crun")
        )
        run_sync(self.svc.startup())
        self.runtime.runtime_calls.clear()
        run_sync(self.svc.kill(cid))
        self.assertEqual(self.runtime.runtime_calls[0], ("kill", cid, "runc"))
        self.assertIn(("delete", cid, "runc"), self.runtime.runtime_calls)
        e = self.fail_with(self.svc.start(cid), InvalidParameter)
        self.assertEqual(str(e), "unknown or invalid runtime name: runc")

    def test_container_of_an_older_pyd(self) -> None:
        """A container stored by a pyd that recorded no runtime (and no HostConfig.Runtime) ran
        under crun: operations on it use crun even when the default is now runc."""
        cid = self.started(Cmd=["sleep", "9"])
        c = self.svc.resolve(cid)
        old = attrs.evolve(
            c,
            host_config={k: v for k, v in c.host_config.items() if k != "Runtime"},
            extra={k: v for k, v in c.extra.items() if k != "oci_runtime"},
        )
        self.svc.settings = attrs.evolve(
            self.svc.settings, runtimes=attrs.evolve(self.runtimes, default="runc")
        )
        rt = self.svc.oci_runtime(old)
        assert rt is not None
        self.assertEqual(rt.name, "crun")


class DaemonDefaultsTests(EngineTestBase):
    """cgroup-parent, default-ulimits, default-shm-size and init as the daemon's defaults."""

    def make_service(self) -> ContainerService:
        svc = super().make_service()
        svc.settings = attrs.evolve(
            svc.settings,
            cgroup_parent="/batch",
            default_ulimits=(("nofile", 100, 200), ("nproc", 50, 50)),
            default_shm_size=128 << 20,
            init=True,
        )
        return svc

    def test_defaults_applied(self) -> None:
        """The cgroup is /batch/<id>, the rlimits are the container's then the daemon's it does
        not name, ShmSize is stored as the daemon's default, and the init is PID 1 unless
        HostConfig.Init is false or the PID namespace is the host's."""
        cid = self.started(
            Cmd=["true"], HostConfig={"Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}]}
        )
        spec = self.runtime.containers[cid]["spec"]
        self.assertEqual(spec["linux"]["cgroupsPath"], f"/batch/{cid}")
        self.assertEqual(
            spec["process"]["rlimits"],
            [
                {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2},
                {"type": "RLIMIT_NPROC", "soft": 50, "hard": 50},
            ],
        )
        self.assertEqual(self.svc.resolve(cid).host_config["ShmSize"], 128 << 20)
        shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
        self.assertIn(f"size={128 << 20}", shm["options"])
        self.assertEqual(spec["process"]["args"][:3], ["/sbin/docker-init", "--", "true"])
        own = self.started(Cmd=["true"], HostConfig={"CgroupParent": "/own", "Init": False})
        spec = self.runtime.containers[own]["spec"]
        self.assertEqual(spec["linux"]["cgroupsPath"], f"/own/{own}")
        self.assertEqual(spec["process"]["args"], ["true"])
        host_pid = self.started(Cmd=["true"], HostConfig={"PidMode": "host"})
        self.assertEqual(self.runtime.containers[host_pid]["spec"]["process"]["args"], ["true"])
