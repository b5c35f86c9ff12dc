"""pyd.engine.exec with a scripted exec driver: dockerd's checks, events and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import Conflict, InvalidParameter, NotFound
from pyd.core.seams import InlineBlocking
from pyd.drivers.streams.execs import ExecFailed, ExecSpec, ExecStarted
from pyd.engine.exec import ExecConfig, ExecError, ExecService
from pyd.engine.streams import StreamTarget
from tests.fakes.events import FakeEvents
from tests.helpers.sync import run_sync


class FakeTargets:
    """A single container whose status the test sets."""

    def __init__(self, target: StreamTarget) -> None:
        self.target = target

    async def stream_target(self, ref: str) -> StreamTarget:
        if ref not in (self.target.id, self.target.name):
            raise NotFound(f"No such container: {ref}")
        return self.target


class FakeExecDriver:
    """Records specs; fails or returns a pid and an exit Deferred the test fires."""

    def __init__(self) -> None:
        self.specs: list[ExecSpec] = []
        self.fail: str | None = None
        self.exit: Deferred[int] = Deferred()

    async def start(self, spec: ExecSpec, on_attach: Any = None) -> ExecStarted:
        self.specs.append(spec)
        if self.fail:
            raise ExecFailed(self.fail)
        return ExecStarted(pid=4242, exit_code=self.exit, attach_path="")


class ExecServiceTests(SynchronousTestCase):
    """create/start/inspect rules."""

    def setUp(self) -> None:
        bundle = Path(self.mktemp())
        bundle.mkdir(parents=True)
        (bundle / "config.json").write_text(
            json.dumps({"process": {"env": ["PATH=/bin", "A=1"], "cwd": "/", "args": ["sh"]}})
        )
        self.target = StreamTarget(
            id="c" * 64, name="web", image="img", status="running", pid=1, tty=False,
            open_stdin=False, stdin_once=False, bundle=str(bundle), attach_socket="",
            rootfs=None, labels={"l": "v"},
        )  # fmt: skip
        self.targets = FakeTargets(self.target)
        self.events = FakeEvents()
        self.driver = FakeExecDriver()
        self.svc = ExecService(
            self.targets, self.driver, self.events, InlineBlocking(), Clock(),
            self.mktemp(),
        )  # fmt: skip

    def _create(self, **kw: Any) -> Any:
        cfg = ExecConfig(cmd=("echo", "hi"), **kw)
        return run_sync(self.svc.create("web", cfg))

    def test_not_running(self) -> None:
        """A stopped container refuses with dockerd's text."""
        self.targets.target = attrs.evolve(self.target, status="exited")
        e = self.assertRaises(Conflict, run_sync, self.svc.create("web", ExecConfig(cmd=("true",))))
        self.assertEqual(str(e), f"container {'c' * 64} is not running")

    def test_paused_and_empty_command(self) -> None:
        """Paused containers and empty commands are refused."""
        self.targets.target = attrs.evolve(self.target, status="paused")
        e = self.assertRaises(Conflict, run_sync, self.svc.create("web", ExecConfig(cmd=("true",))))
        self.assertIn("is paused, unpause the container before exec", str(e))
        self.targets.target = self.target
        self.assertRaises(InvalidParameter, run_sync, self.svc.create("web", ExecConfig(cmd=())))

    def test_lifecycle_events_and_process(self) -> None:
        """create/start/die emit dockerd's actions; the process merges env and sets cwd."""
        s = self._create(env=("A=2", "B=3"), working_dir="/tmp")
        run_sync(self.svc.start(s.id, None))
        self.assertTrue(s.running)
        self.assertEqual(s.pid, 4242)
        proc = self.driver.specs[0].process
        self.assertEqual(proc["env"], ["PATH=/bin", "A=2", "B=3"])
        self.assertEqual((proc["cwd"], proc["args"]), ("/tmp", ["echo", "hi"]))
        self.driver.exit.callback(3)
        self.assertEqual((s.running, s.exit_code), (False, 3))
        actions = [e.action for e in self.events.events]
        self.assertEqual(actions, ["exec_create: echo hi", "exec_start: echo hi", "exec_die"])
        self.assertEqual(self.events.events[2].attributes["exitCode"], "3")
        self.assertEqual(self.events.events[2].attributes["execID"], s.id)
        e = self.assertRaises(Conflict, run_sync, self.svc.start(s.id, None))
        self.assertEqual(str(e), f"Error: Exec command {s.id} has already run")

    def test_start_failure(self) -> None:
        """A command the runtime cannot start ends with exit code 126 and dockerd's prefix."""
        self.driver.fail = "executable file `nope` not found in $PATH"
        s = self._create()
        e = self.assertRaises(ExecError, run_sync, self.svc.start(s.id, None))
        self.assertTrue(str(e).startswith("OCI runtime exec failed: exec failed: "))
        self.assertEqual(s.exit_code, 126)

    def test_start_failure_in_dockerds_words(self) -> None:
        """crun's refusals are shown in runc's words, as dockerd shows them (its golden
        exec_tty): a name not in $PATH, a path that does not exist; other texts as they are."""
        cases = [
            (
                ("nonexistent",),
                "executable file `nonexistent` not found in $PATH: No such file or directory",
                'unable to start container process: exec: "nonexistent": '
                "executable file not found in $PATH: unknown",
            ),
            (
                ("/nope/x",),
                "executable file `/nope/x` not found in $PATH: No such file or directory",
                'unable to start container process: exec: "/nope/x": '
                "stat /nope/x: no such file or directory: unknown",
            ),
            (("/etc",), "open executable: Is a directory",
             'unable to start container process: exec: "/etc": permission denied: unknown'),
            (("x",), "something else", "something else"),
        ]  # fmt: skip
        for cmd, crun_says, reason in cases:
            self.driver.fail = crun_says
            s = run_sync(self.svc.create("web", ExecConfig(cmd=cmd)))
            e = self.assertRaises(ExecError, run_sync, self.svc.start(s.id, None))
            self.assertEqual(str(e), f"OCI runtime exec failed: exec failed: {reason}")
            self.assertEqual(s.exit_code, 126)

    def test_container_gone_forgets_its_execs(self) -> None:
        """When the container stops or goes, its exec sessions are forgotten (dockerd's
        C{Cleanup}): they no longer pile up, one per exec ever run."""
        s = self._create()
        run_sync(self.svc.start(s.id, None))
        self.driver.exit.callback(0)
        self.assertEqual(self.svc.container_execs(self.target.id), [s.id])
        self.svc.container_gone("d" * 64)
        self.assertEqual(self.svc.get(s.id), s)
        self.svc.container_gone(self.target.id)
        self.assertEqual(self.svc.container_execs(self.target.id), [])
        with self.assertRaises(NotFound):
            self.svc.get(s.id)

    def test_unknown_exec(self) -> None:
        """An unknown id is dockerd's 404."""
        with self.assertRaises(NotFound) as e:
            self.svc.get("nope")
        self.assertEqual(str(e.exception), "No such exec instance: nope")

    def test_user_resolution_failures_end_the_exec_plainly(self) -> None:
        """exec -u: an unknown user is the resolver's plain text (exit 126); anything unexpected
        while preparing the process ends the exec too, without Python's text (never a hang)."""

        def unknown(rootfs: str, user: str) -> Any:
            raise InvalidParameter(
                f"unable to find user {user}: no matching entries in passwd file"
            )

        def broken(rootfs: str, user: str) -> Any:
            raise OSError(40, "Too many levels of symbolic links", "/etc/passwd")

        for resolver, text in (
            (unknown, "unable to find user nobody2: no matching entries in passwd file"),
            (broken, "cannot prepare the exec process"),
        ):
            self.targets.target = attrs.evolve(self.target, rootfs="/nonexistent-root")
            self.svc._resolve_user = resolver
            s = self._create(user="nobody2")
            e = self.assertRaises(ExecError, run_sync, self.svc.start(s.id, None))
            self.assertEqual(str(e), text)
            self.assertEqual(s.exit_code, 126)
        self.assertEqual(self.driver.specs, [])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)  # the reason is in the log

    def test_user_refused_when_the_root_is_not_mounted(self) -> None:
        """exec -u on a container whose root filesystem is not mounted (not restored after a
        daemon restart): the user cannot be looked up, so the exec is refused with dockerd's
        text and why; it never runs as the container's default user instead."""
        asked: list[tuple[str, str]] = []

        def resolver(rootfs: str, user: str) -> Any:
            asked.append((rootfs, user))
            return 1000, 1000, (1000,), "/home/app"

        self.svc._resolve_user = resolver
        for user, name in (("app", "app"), ("app:staff", "app"), ("1000", "1000")):
            s = self._create(user=user)
            e = self.assertRaises(ExecError, run_sync, self.svc.start(s.id, None))
            self.assertEqual(
                str(e),
                f"unable to find user {name}: no matching entries in passwd file "
                "(the container's root filesystem is not mounted)",
            )
            self.assertEqual(s.exit_code, 126)
        self.assertEqual((self.driver.specs, asked), ([], []))
        # with the root mounted, the same user is resolved there
        self.targets.target = attrs.evolve(self.target, rootfs="/root-of-c")
        s = self._create(user="app")
        run_sync(self.svc.start(s.id, None))
        self.assertEqual(asked, [("/root-of-c", "app")])
        self.assertEqual(
            self.driver.specs[0].process["user"],
            {"uid": 1000, "gid": 1000, "additionalGids": [1000]},
        )
