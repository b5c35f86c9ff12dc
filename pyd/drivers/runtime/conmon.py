"""The crun + conmon runtime driver (layer: drivers).

Speaks conmon's API version 1 exactly as RUNTIME.md section 2.2 describes: conmon is spawned with
a sync pipe (its fd 3) and a start pipe (its fd 4); one byte on the start pipe lets it run
C{crun create}; it double-forks into a monitor that outlives pyd and answers on the sync pipe with
C{{"data": <pid>}} or C{{"data": -1, "message": ...}}. pyd then runs C{crun start}. When the
container exits conmon writes C{<exits>/<id>} (watched with inotify), C{<bundle>/exit} and, after an
OOM kill, C{<bundle>/oom}. Logs go to C{<bundle>/ctr.log} in k8s-file format.

The driver holds no Docker rules: it does what the engine asks.
"""

from __future__ import annotations

import json
import os
import re
import signal as _signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from pyd.core.seams import Blocking, IProcessReactor
from pyd.drivers.process import ProcessResult, ProcessRunner
from pyd.drivers.runtime import cgroups
from pyd.drivers.runtime.bpfcache import FilterCache
from pyd.drivers.runtime.oci import OciRuntime

log = Logger()


class RuntimeFailed(Exception):
    """The runtime refused an operation; C{message} is its stderr (already stripped)."""

    def __init__(self, op: str, message: str, rc: int = -1) -> None:
        super().__init__(f"{op}: {message}")
        self.op = op
        self.message = message
        self.rc = rc


class ProcessGone(RuntimeFailed):
    """A signal found no process: the container's init has exited (its exit file and conmon's
    report are on their way, or its runtime state is already deleted) or never ran. crun says
    C{open pidfd: No such process} (ESRCH), that the container is not running / stopped, or
    cannot open its state."""


_GONE = ("No such process", "not running", "is stopped", "container stopped")


def _state_deleted(message: str, container_id: str) -> bool:
    """crun could not open the container's state file because its delete removed it."""
    return "No such file or directory" in message and f"{container_id}/status" in message


@attrs.frozen
class CreateOptions:
    """What the engine decided for one container start."""

    container_id: str
    name: str
    bundle: str  # persistent directory: config.json, ctr.log, exit, oom, conmon.pid
    spec: dict[str, Any]
    terminal: bool = False
    stdin: bool = False
    leave_stdin_open: bool = False
    log_path: str = ""  # default <bundle>/ctr.log
    log_size_max: int = 0  # conmon renames a fresh file over the log before passing this size
    log_driver: str = "k8s-file"  # or "none": conmon keeps no log
    # host paths in the runtime's error messages -> what the client is shown instead (a staged
    # mount's point -> the source the client named); see L{scrub_host_paths}
    path_names: Mapping[str, str] = attrs.field(factory=dict)
    runtime: OciRuntime | None = None  # None: the driver's default (crun)


@attrs.frozen
class ExitInfo:
    """How a container ended, from conmon's files."""

    code: int
    oom_killed: bool
    finished_nano: int


class RuntimeDriver(Protocol):
    """What the container engine needs from the runtime; the real one is L{ConmonRuntime}."""

    async def setup(self) -> None:
        """Prepare directories, fix the host's cgroup layout, start watching exits."""
        ...

    def watch_exits(self, callback: Callable[[str], None]) -> None:
        """Call C{callback(container_id)} whenever a container's exit file appears."""
        ...

    async def create(self, opts: CreateOptions) -> int:
        """Write the bundle and start conmon; return the container's host pid (created state).

        @raise RuntimeFailed: the runtime refused (its message says why).
        """
        ...

    async def start(self, container_id: str, runtime: OciRuntime | None = None) -> None:
        """Let the created container run its process."""
        ...

    async def kill(
        self,
        container_id: str,
        sig: int,
        all_processes: bool = False,
        runtime: OciRuntime | None = None,
    ) -> None:
        """Send C{sig} to the container's init (or every process)."""
        ...

    async def delete(
        self, container_id: str, force: bool = False, runtime: OciRuntime | None = None
    ) -> None:
        """Remove the runtime's state and cgroup (idempotent)."""
        ...

    async def state(
        self, container_id: str, runtime: OciRuntime | None = None
    ) -> dict[str, Any] | None:
        """The runtime's view (C{status}: created/running/paused/stopped), None if unknown."""
        ...

    async def pause(self, container_id: str, runtime: OciRuntime | None = None) -> None:
        """Freeze every process."""
        ...

    async def resume(self, container_id: str, runtime: OciRuntime | None = None) -> None:
        """Thaw them."""
        ...

    async def update(
        self, container_id: str, resources: dict[str, Any], runtime: OciRuntime | None = None
    ) -> None:
        """Change C{linux.resources} of a live container."""
        ...

    async def exec_sync(
        self,
        container_id: str,
        args: Sequence[str],
        env: Sequence[str] = (),
        user: str = "",
        cwd: str = "",
        timeout: float = 30,
        runtime: OciRuntime | None = None,
    ) -> tuple[int, bytes]:
        """Run a command inside the container, wait, return (exit code, combined output)."""
        ...

    async def read_exit(self, container_id: str, bundle: str) -> ExitInfo | None:
        """The exit recorded by conmon, or None while the container still runs."""
        ...

    async def monitor_alive(self, bundle: str) -> bool:
        """Whether the container's conmon is still running."""
        ...

    async def kill_pid(self, pid: int) -> str:
        """SIGKILL the container's init process itself, past the runtime (dockerd's
        C{killProcessDirectly}): C{gone} (no such process), C{zombie} (dead, not reaped) or
        C{signalled} (still there after the signal, or no pid to signal)."""
        ...

    async def monitors_alive(self, bundles: Mapping[str, str]) -> set[str]:
        """Which of these containers (id -> bundle) still have their conmon running: one
        look for all (the daemon's start asks it of every stopped container)."""
        ...

    async def clear_exit(self, container_id: str, bundle: str) -> None:
        """Forget a consumed exit (so the next run's exit is not confused with it)."""
        ...

    async def stats(self, container_id: str, cgroups_path: str = "") -> cgroups.CgroupStats:
        """One sample of the container's cgroup counters (C{cgroups_path}: where its cgroup
        is, by default C{/pyd/<id>})."""
        ...

    def attach_socket_path(self, container_id: str, bundle: str) -> str:
        """conmon's attach socket (SOCK_SEQPACKET) of a running container."""
        ...

    def ctl_path(self, bundle: str) -> str:
        """conmon's control FIFO (C{1 <rows> <cols>} resizes the tty)."""
        ...


class _ConmonProtocol(ProcessProtocol):
    """Talks to the first conmon process over its sync (fd 3) and start (fd 4) pipes."""

    def __init__(self) -> None:
        self.buf = b""
        self.result: Deferred[dict[str, Any]] = Deferred()
        self.exited: Deferred[int] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.writeToChild(4, b"\0")
        self.transport.closeChildFD(4)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD != 3 or self.result.called:
            return
        self.buf += data
        line, sep, _ = self.buf.partition(b"\n")
        if sep:
            self._fire(line)

    def _fire(self, raw: bytes) -> None:
        if self.result.called:
            return
        try:
            value = json.loads(raw.decode("utf-8", "replace"))
        except ValueError:
            value = {"data": -1, "message": f"conmon sent {raw!r}"}
        self.result.callback(value)
        if self.transport is not None:
            self.transport.closeChildFD(3)

    def childConnectionLost(self, childFD: int) -> None:
        if childFD == 3 and not self.result.called:
            if self.buf.strip():
                self._fire(self.buf)
            else:
                self.result.callback({"data": -1, "message": "conmon exited without a reply"})

    def processExited(self, reason: Failure) -> None:
        value: Any = reason.value
        code = getattr(value, "exitCode", 0) or 0
        if not self.exited.called:
            self.exited.callback(int(code))


# runc reports through logrus: time="..." level=error msg="runc create failed: ..."
_LOGRUS = re.compile(r'^time="[^"]*" level=\w+ msg="((?:[^"\\]|\\.)*)"')


def strip_runtime_message(msg: str) -> str:
    """A runtime's error without its own framing: crun's C{crun: } prefix, runc's logrus line
    and C{runc create failed: } (dockerd's text names the runtime itself)."""
    msg = msg.strip()
    m = _LOGRUS.match(msg)
    if m:
        msg = re.sub(r"\\(.)", r"\1", m.group(1))
    for prefix in ("crun: ", "Error: ", "runc create failed: ", "runc exec failed: "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg


def scrub_host_paths(
    msg: str, roots: Mapping[str, str], names: Mapping[str, str] | None = None
) -> str:
    """C{msg} without the daemon's own host paths: each key of C{names} (longest first) becomes
    its value, then each root of C{roots} (the exec root, the data root) becomes its label
    wherever it starts a path (C{/run/pyd/crun/x/status} -> C{<exec-root>/crun/x/status})."""
    for host, shown in sorted((names or {}).items(), key=lambda kv: -len(kv[0])):
        if host:
            msg = msg.replace(host, shown)
    for raw, label in sorted(roots.items(), key=lambda kv: -len(kv[0])):
        root = raw.rstrip("/")
        if root:
            msg = re.sub(re.escape(root) + r"(?=/|$|[^\w.-])", label, msg)
    return msg


class ConmonRuntime:
    """L{RuntimeDriver} over conmon and crun."""

    def __init__(
        self,
        reactor: IProcessReactor,
        runner: ProcessRunner,
        blocking: Blocking,
        exec_root: str,
        conmon: str = "/usr/bin/conmon",
        crun: str = "/usr/bin/crun",
        cgroup_root: str = cgroups.CGROUP_ROOT,
        fix_cgroups: bool = True,
        data_root: str = "",
        default: OciRuntime | None = None,
    ) -> None:
        self._reactor = reactor
        self._runner = runner
        self._blocking = blocking
        self._filters = FilterCache()
        self.exec_root = exec_root
        # the runtime's messages reach clients: never with these host paths in them
        self._roots = {exec_root: "<exec-root>", data_root: "<data-root>"}
        self.conmon = conmon
        self.crun = crun
        self.crun_root = os.path.join(exec_root, "crun")
        # the runtime of a call that names none (containers of a pyd that knew only crun)
        self.default = default or OciRuntime("crun", crun, self.crun_root)
        self.exits_dir = os.path.join(exec_root, "exits")
        self.sockets_dir = os.path.join(exec_root, "s")
        self.cgroup_root = cgroup_root
        self._fix_cgroups = fix_cgroups
        self._callbacks: list[Callable[[str], None]] = []
        self._notifier: Any = None
        self._poller: Any = None
        self._seen: dict[str, float] = {}
        self.cgroup_fix_result = ""

    # --- setup and exit watching -------------------------------------------------------------

    async def setup(self) -> None:
        """Create the directories, apply the hugetlb fix, start the inotify watch."""

        def prepare() -> str:
            for d in (self.default.root, self.exits_dir, self.sockets_dir):
                os.makedirs(d, mode=0o700, exist_ok=True)
            if self._fix_cgroups:
                return cgroups.fix_hybrid_hugetlb(self.cgroup_root)
            return "skipped"

        self.cgroup_fix_result = await self._blocking.run(prepare)
        if self.cgroup_fix_result not in ("mounted", "not-needed", "skipped"):
            log.warn("cgroup fix for crun: {result}", result=self.cgroup_fix_result)
        self._start_watch()

    def _start_watch(self) -> None:
        try:
            from twisted.internet import inotify
            from twisted.python.filepath import FilePath

            notifier = inotify.INotify(self._reactor)
            notifier.startReading()
            notifier.watch(
                FilePath(self.exits_dir),
                mask=inotify.IN_MOVED_TO | inotify.IN_CLOSE_WRITE,
                callbacks=[self._on_inotify],
            )
            self._notifier = notifier
        except Exception as e:  # noqa: BLE001 - inotify missing: fall back to polling
            log.warn("inotify unavailable ({err}); polling the exits directory", err=e)
            from twisted.internet.task import LoopingCall

            self._poller = LoopingCall(self._poll)
            self._poller.clock = self._reactor
            self._poller.start(0.5, now=False)

    def stop_watching(self) -> None:
        """Stop the inotify watch or the poller (daemon shutdown)."""
        if self._notifier is not None:
            self._notifier.loseConnection()
            self._notifier = None
        if self._poller is not None and self._poller.running:
            self._poller.stop()

    def _on_inotify(self, _watch: Any, path: Any, _mask: int) -> None:
        name = path.basename()
        if isinstance(name, bytes):
            name = name.decode()
        self._notify(name)

    def _poll(self) -> None:
        try:
            names = os.listdir(self.exits_dir)
        except OSError:
            return
        for name in names:
            try:
                mtime = os.stat(os.path.join(self.exits_dir, name)).st_mtime
            except OSError:
                continue
            if self._seen.get(name) != mtime:
                self._seen[name] = mtime
                self._notify(name)

    def _notify(self, name: str) -> None:
        if name.startswith(".") or len(name) != 64:
            return
        for cb in list(self._callbacks):
            try:
                cb(name)
            except Exception:  # noqa: BLE001 - one bad callback must not stop the others
                log.failure("exit callback failed for {cid}", cid=name)

    def watch_exits(self, callback: Callable[[str], None]) -> None:
        """Register C{callback(container_id)} for exit files."""
        self._callbacks.append(callback)

    # --- runtime calls --------------------------------------------------------------------

    @property
    def host_roots(self) -> dict[str, str]:
        """The daemon's roots and the labels that replace them in runtime errors."""
        return dict(self._roots)

    def _message(self, raw: str, names: Mapping[str, str] | None = None) -> str:
        """A runtime error as clients may see it: stripped, no host path of the daemon's."""
        return scrub_host_paths(strip_runtime_message(raw), self._roots, names)

    def _rt(self, runtime: OciRuntime | None) -> OciRuntime:
        return runtime or self.default

    async def _run_crun(
        self, op: str, *args: str, stdin: bytes | None = None, runtime: OciRuntime | None = None
    ) -> ProcessResult:
        result = await self._runner.run(self._rt(runtime).argv(*args), stdin=stdin)
        if result.rc != 0:
            raise RuntimeFailed(
                op, self._message(result.stderr.decode("utf-8", "replace")), result.rc
            )
        return result

    async def create(self, opts: CreateOptions) -> int:
        """Write config.json, spawn conmon, wait for its sync reply; return the container pid."""
        cid = opts.container_id
        bundle = opts.bundle
        log_path = opts.log_path or os.path.join(bundle, "ctr.log")
        rt = self._rt(opts.runtime)
        filter_key = self._filters.key(opts.spec, rt)
        spec = self._filters.with_filter(opts.spec, filter_key)

        def prepare() -> int:
            os.makedirs(rt.root, mode=0o700, exist_ok=True)
            os.makedirs(bundle, mode=0o700, exist_ok=True)
            tmp = os.path.join(bundle, "config.json.tmp")
            with open(tmp, "w") as f:
                json.dump(spec, f)
            os.replace(tmp, os.path.join(bundle, "config.json"))
            for stale in (
                os.path.join(self.exits_dir, cid),
                os.path.join(bundle, "exit"),
                os.path.join(bundle, "oom"),
                os.path.join(bundle, "pidfile"),
                os.path.join(bundle, "conmon.pid"),
            ):
                try:
                    os.unlink(stale)
                except FileNotFoundError:  # no stale file from an earlier run
                    pass
            link = os.path.join(self.sockets_dir, cid)
            if os.path.islink(link):
                os.unlink(link)
            return os.open(
                os.path.join(bundle, "conmon.stderr"),
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                0o600,
            )

        # A stale runtime state from a previous run (same id) would make crun refuse.
        await self.delete(cid, force=True, runtime=rt)
        err_fd = await self._blocking.run(prepare)
        null_fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        argv = [
            self.conmon,
            "--api-version", "1",
            "-c", cid,
            "-u", cid,
            "-n", opts.name or cid,
            *rt.conmon_args(),
            "-b", bundle,
            "-p", os.path.join(bundle, "pidfile"),
            "-P", os.path.join(bundle, "conmon.pid"),
            "-l", "none" if opts.log_driver == "none" else "k8s-file:" + log_path,
            "--exit-dir", self.exits_dir,
            "--persist-dir", bundle,
            "--socket-dir-path", self.sockets_dir,
            "--full-attach",
            "--log-level", "error",
        ]  # fmt: skip
        if opts.log_size_max > 0 and opts.log_driver != "none":
            argv += ["--log-size-max", str(opts.log_size_max)]
        if opts.terminal:
            argv.append("-t")
        if opts.stdin:
            argv.append("-i")
            if opts.leave_stdin_open:
                argv.append("--leave-stdin-open")
        env = {
            "PATH": os.environ.get(
                "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            ),
            "_OCI_SYNCPIPE": "3",
            "_OCI_STARTPIPE": "4",
        }
        proto = _ConmonProtocol()
        try:
            # conmon also writes an "oom" file into its working directory, so it must run in
            # the bundle; but a cwd makes Twisted fork the whole daemon instead of using
            # posix_spawn (twice as slow here). `env -C` changes directory for us.
            exe, full = self.conmon, argv
            if os.access(ENV, os.X_OK):
                exe, full = ENV, [ENV, "-C", bundle, *argv]
            self._reactor.spawnProcess(
                proto,
                exe,
                full,
                env=env,
                path=None if exe == ENV else bundle,
                childFDs={0: null_fd, 1: null_fd, 2: err_fd, 3: "r", 4: "w"},
            )
        finally:
            os.close(null_fd)
            os.close(err_fd)
        reply = await proto.result
        pid = int(reply.get("data", -1))
        if pid <= 0:
            message = str(reply.get("message") or "")
            if not message:
                message = await self._blocking.run(
                    _read_text, os.path.join(bundle, "conmon.stderr")
                )
            raise RuntimeFailed("create", self._message(message, opts.path_names))
        if filter_key is not None and not self._filters.known(filter_key):
            data = await self._blocking.run(FilterCache.read, rt, cid)
            if data is not None:
                self._filters.keep(filter_key, data)
        return pid

    async def start(self, container_id: str, runtime: OciRuntime | None = None) -> None:
        """C{crun start}."""
        await self._run_crun("start", "start", container_id, runtime=runtime)

    async def kill(
        self,
        container_id: str,
        sig: int,
        all_processes: bool = False,
        runtime: OciRuntime | None = None,
    ) -> None:
        """C{crun kill [--all] ID SIG}.

        @raise ProcessGone: the process has exited (a kill racing the container's own exit).
        """
        args = ["kill"]
        if all_processes:
            args.append("--all")
        rt = self._rt(runtime)
        try:
            await self._run_crun("kill", *args, container_id, str(sig), runtime=rt)
        except RuntimeFailed as e:
            # its state directory goes when the exit is handled (delete): nothing left to signal.
            # A kill that lands while that delete runs finds the directory but no longer its
            # status file ("error opening file `<root>/<id>/status`: No such file or directory").
            gone = not os.path.isdir(os.path.join(rt.root, container_id)) or _state_deleted(
                e.message, container_id
            )
            if gone or any(g in e.message for g in _GONE):
                raise ProcessGone(e.op, e.message, e.rc) from None
            raise

    async def delete(
        self, container_id: str, force: bool = False, runtime: OciRuntime | None = None
    ) -> None:
        """C{crun delete [-f]}; an unknown container is not an error."""
        rt = self._rt(runtime)
        if not os.path.isdir(os.path.join(rt.root, container_id)):
            return  # crun and runc keep their state in <root>/<id>: nothing to delete
        args = ["delete"]
        if force:
            args.append("-f")
        result = await self._runner.run(rt.argv(*args, container_id))
        if result.rc != 0:
            err = result.stderr.decode("utf-8", "replace")
            if "does not exist" in err or "No such file" in err or "not found" in err:
                return
            raise RuntimeFailed("delete", self._message(err), result.rc)

    async def state(
        self, container_id: str, runtime: OciRuntime | None = None
    ) -> dict[str, Any] | None:
        """C{crun state}, parsed; None when crun does not know the container."""
        result = await self._runner.run(self._rt(runtime).argv("state", container_id))
        if result.rc != 0:
            return None
        try:
            value = json.loads(result.stdout)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def pause(self, container_id: str, runtime: OciRuntime | None = None) -> None:
        """C{crun pause}."""
        await self._run_crun("pause", "pause", container_id, runtime=runtime)

    async def resume(self, container_id: str, runtime: OciRuntime | None = None) -> None:
        """C{crun resume}."""
        await self._run_crun("resume", "resume", container_id, runtime=runtime)

    async def update(
        self, container_id: str, resources: dict[str, Any], runtime: OciRuntime | None = None
    ) -> None:
        """C{crun update -r -} with an OCI C{linux.resources} document on stdin."""
        await self._run_crun(
            "update",
            "update",
            "-r",
            "-",
            container_id,
            stdin=json.dumps(resources).encode(),
            runtime=runtime,
        )

    async def exec_sync(
        self,
        container_id: str,
        args: Sequence[str],
        env: Sequence[str] = (),
        user: str = "",
        cwd: str = "",
        timeout: float = 30,
        runtime: OciRuntime | None = None,
    ) -> tuple[int, bytes]:
        """C{crun exec} with output collected (health checks); killed after C{timeout}."""
        argv = ["exec"]
        for e in env:
            argv += ["--env", e]
        if user:
            argv += ["--user", user]
        if cwd:
            argv += ["--cwd", cwd]
        argv += [container_id, *args]
        d = self._runner.run(self._rt(runtime).argv(*argv))
        timed_out = False

        def on_timeout(_: Any, _t: float) -> ProcessResult:
            nonlocal timed_out
            timed_out = True
            return ProcessResult(tuple(argv), -1, b"", b"")

        d.addTimeout(timeout, self._reactor, onTimeoutCancel=on_timeout)
        result = await d
        if timed_out:
            return -1, b"Health check exceeded timeout"
        rc = result.rc
        if rc < 0:
            rc = 128 - rc
        return rc, result.stdout + result.stderr

    # --- files ------------------------------------------------------------------------------

    async def read_exit(self, container_id: str, bundle: str) -> ExitInfo | None:
        """Read C{<exits>/<id>} (or C{<bundle>/exit}) and C{<bundle>/oom}."""
        exits_dir = self.exits_dir

        def read() -> ExitInfo | None:
            for path in (os.path.join(exits_dir, container_id), os.path.join(bundle, "exit")):
                try:
                    with open(path) as f:
                        text = f.read().strip()
                    st = os.stat(path)
                except OSError:
                    continue
                try:
                    code = int(text)
                except ValueError:
                    continue
                oom = os.path.exists(os.path.join(bundle, "oom"))
                return ExitInfo(code=code, oom_killed=oom, finished_nano=st.st_mtime_ns)
            return None

        return await self._blocking.run(read)

    async def clear_exit(self, container_id: str, bundle: str) -> None:
        """Remove the exit and oom files of a finished run."""

        def clear() -> None:
            for p in (
                os.path.join(self.exits_dir, container_id),
                os.path.join(bundle, "exit"),
                os.path.join(bundle, "oom"),
            ):
                try:
                    os.unlink(p)
                except FileNotFoundError:  # not written by this run: nothing to remove
                    pass

        await self._blocking.run(clear)

    async def kill_pid(self, pid: int) -> str:
        """See L{RuntimeDriver.kill_pid} (its /proc look runs in the io pool)."""
        return await self._blocking.run(_kill_directly, pid)

    async def monitor_alive(self, bundle: str) -> bool:
        """Whether C{<bundle>/conmon.pid} names a live conmon process."""
        return await self._blocking.run(_conmon_alive, bundle)

    async def monitors_alive(self, bundles: Mapping[str, str]) -> set[str]:
        """The ids among C{bundles} (id -> bundle) whose conmon runs, in one io-pool job."""

        def alive() -> set[str]:
            return {cid for cid, bundle in bundles.items() if _conmon_alive(bundle)}

        return await self._blocking.run(alive)

    async def stats(self, container_id: str, cgroups_path: str = "") -> cgroups.CgroupStats:
        """Read the cgroup counters of C{cgroups_path} (default C{/pyd/<id>})."""
        paths = cgroups.CgroupPaths(cgroups_path or cgroup_path(container_id), self.cgroup_root)
        return await self._blocking.run(paths.stats)

    def attach_socket_path(self, container_id: str, bundle: str) -> str:
        """C{<bundle>/attach}: conmon runs with C{--full-attach}, so the path is never truncated
        (it may exceed sun_path's 108 bytes: connect through C{/proc/self/fd/<dirfd>/attach})."""
        return os.path.join(bundle, "attach")

    def ctl_path(self, bundle: str) -> str:
        """conmon's control FIFO in the bundle."""
        return os.path.join(bundle, "ctl")


ENV = "/usr/bin/env"  # coreutils env: `env -C DIR cmd` runs cmd in DIR


def cgroup_path(container_id: str) -> str:
    """The absolute cgroups path pyd gives every container."""
    return f"/pyd/{container_id}"


def _conmon_alive(bundle: str) -> bool:
    """Whether C{<bundle>/conmon.pid} names a live conmon process. Blocking."""
    try:
        with open(os.path.join(bundle, "conmon.pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except (OSError, ValueError):
        return False
    return b"conmon" in cmd.split(b"\0")[0]


def _read_text(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-4000:]
    except OSError:
        return ""


SIGNALS: Mapping[str, int] = {
    name[3:]: int(getattr(_signal, name))
    for name in dir(_signal)
    if name.startswith("SIG")
    and not name.startswith("SIG_")
    and isinstance(getattr(_signal, name), int)
}


def _kill_directly(pid: int) -> str:
    if pid <= 0:
        return "signalled"  # no process to name: as dockerd, which then waits its last 2 s
    try:
        os.kill(pid, _signal.SIGKILL)
    except ProcessLookupError:
        return "gone"
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "gone"
    return "zombie" if state == "Z" else "signalled"
