"""Container lifecycle: create, start, stop, kill, wait, remove, restart policies, health, restore.

Layer: engine. Docker's rules live here; the runtime driver (crun + conmon) only executes.
Each container's lifecycle operations are serialised by a L{DeferredLock}; the exit of a running
container arrives from the runtime's exit watcher and is handled once per run (L{_Run}).

Other areas (attach, exec, stats, archive) build on L{ContainerService.running} which gives
the bundle, conmon's attach socket and the container's pid.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal as _signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, DeferredList, DeferredLock, ensureDeferred, succeed
from twisted.logger import Logger

from pyd.core.errors import (
    Conflict,
    InvalidParameter,
    NotFound,
    NotModified,
    PydError,
    SystemError_,
    no_such_container,
)
from pyd.core.ids import VALID_NAME, is_full_id, new_id, random_name
from pyd.core.records import (
    Container,
    ContainerState,
    Endpoint,
    HealthLogEntry,
    Image,
    MountSpec,
    NetworkSetup,
    PortMapping,
)
from pyd.core.seams import Blocking, EventSink
from pyd.drivers.runtime import spec as oci
from pyd.drivers.runtime.cgroups import CgroupStats
from pyd.drivers.runtime.conmon import (
    CreateOptions,
    ExitInfo,
    RuntimeDriver,
    RuntimeFailed,
    cgroup_path,
)
from pyd.drivers.runtime.shm import mount_shm, unmount_shm
from pyd.engine import container_config as cc
from pyd.engine import resolvconf
from pyd.engine.containers.logfiles import (
    LogEntry,
    LogTail,
    rotate_log_files,
    rotation_step,
    select_entries,
)
from pyd.engine.contracts import ImageProvider, NetworkProvider, VolumeProvider
from pyd.engine.networks import ContainerRef
from pyd.engine.spec import CreateSpec, parse_create, parse_update, resources_of, stored_spec
from pyd.engine.spec.records import Health, LogConfig, Resources
from pyd.engine.streams import StreamTarget
from pyd.engine.users import resolve_user
from pyd.state.containers import ContainerRepository

log = Logger()

# HostConfig keys whose C{container:X} joins another container's namespaces.
NAMESPACE_JOIN_KEYS = ("NetworkMode", "PidMode", "IpcMode")
RESTART_BASE = 0.1  # moby restartmanager: first delay 100 ms, doubled, capped at 1 min
RESTART_MAX = 60.0
RESTART_RESET_AFTER = 10.0  # a run this long resets the back-off


@attrs.frozen
class ContainerSettings:
    """Daemon-wide facts and defaults the container service needs."""

    containers_dir: str  # <data-root>/containers: one persistent bundle dir per container
    ncpu: int = 1
    cap_bounding: frozenset[str] | None = None
    init_path: str = ""  # static init for --init (tini-static / catatonit)
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    log_driver: str = "json-file"  # the daemon's default log driver, and its options
    log_opts: dict[str, str] = attrs.field(factory=dict)
    host_hostname: str = "localhost"
    host_resolv_conf: str = "/etc/resolv.conf"
    host_hosts: str = "/etc/hosts"


@attrs.frozen
class RunningContainer:
    """What attach/exec/stats/top need of a running container."""

    container: Container
    pid: int
    bundle: str
    attach_socket: str
    ctl_path: str
    rootfs: str


@attrs.frozen
class CommitSource:
    """What C{docker commit} needs of a container (the images router's CommitSource)."""

    container_id: str
    config: dict[str, Any]
    running: bool
    name: str = ""


@attrs.frozen
class WaitResult:
    """C{POST /containers/{id}/wait}'s answer."""

    status_code: int
    error: str | None = None


@attrs.frozen
class PruneResult:
    """C{POST /containers/prune}'s answer."""

    deleted: tuple[str, ...]
    space_reclaimed: int


@attrs.frozen
class LogsRequest:
    """C{docker logs} options."""

    follow: bool = False
    stdout: bool = True
    stderr: bool = True
    since_nano: int = 0
    until_nano: int | None = None
    tail: int | None = None


class DirWatcher(Protocol):
    """Tells when a file in a directory was written or renamed into it (conmon's log)."""

    def watch(self, directory: str, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call C{callback(name)} when file C{name} in C{directory} was modified or renamed
        in (several changes may be reported once); return the function that stops watching."""
        ...


ROTATION_RESEND = 2.0  # seconds without conmon carrying out a reopen: ask again
LOG_BACKSTOP = 10  # conmon's own --log-size-max: this many times max-size x max-file


class _LogWatch:
    """A running container whose log pyd rotates (max-size with max-file > 1)."""

    def __init__(self, path: str, max_size: int, max_files: int, ctl: str) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max_files
        self.ctl = ctl
        self.cancel: Callable[[], None] | None = None
        self.busy = False
        self.again = False
        self.requested = 0  # inode conmon was asked to leave (0: no reopen pending)
        self.requested_at = 0.0
        self.known = 0  # inode of ctr.log at the previous step


class _Run:
    """One run of a container: from create in the runtime to its handled exit."""

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.pid = 0
        self.finished: Deferred[ExitInfo] = Deferred()
        # Fired once start recorded the running state: an exit handled earlier would be
        # overwritten by that write, so exit handling waits for it.
        self.ready: Deferred[None] = Deferred()
        self.handling = False
        self.health_call: Any = None
        self.rootfs = ""


def _now_nano(clock: Any) -> int:
    return int(clock.seconds() * 1_000_000_000)


class ContainerService:
    """Docker's container lifecycle over a L{RuntimeDriver} and the three providers."""

    def __init__(
        self,
        repo: ContainerRepository,
        runtime: RuntimeDriver,
        images: ImageProvider,
        networks: NetworkProvider,
        volumes: VolumeProvider,
        events: EventSink,
        blocking: Blocking,
        clock: Any,
        settings: ContainerSettings,
        *,
        before_start: Sequence[Callable[[str, str], Awaitable[None]]] = (),
        on_gone: Sequence[Callable[[str], None]] = (),
        rw_size: Callable[[str], Awaitable[int]] | None = None,
        rw_paths: Callable[[str], Awaitable[dict[str, str]]] | None = None,
        exec_ids: Callable[[str], list[str]] | None = None,
        log_watcher: DirWatcher | None = None,
    ) -> None:
        self._repo = repo
        self.runtime = runtime
        self._images = images
        self._networks = networks
        self._volumes = volumes
        self._events = events
        self._blocking = blocking
        self._clock = clock
        self.settings = settings
        self._cache: dict[str, Container] = {}
        self._locks: dict[str, DeferredLock] = {}
        self._runs: dict[str, _Run] = {}
        self._restart_calls: dict[str, Any] = {}
        self._backoff: dict[str, float] = {}
        self._exit_waiters: dict[str, list[Deferred[WaitResult]]] = {}
        self._removed_waiters: dict[str, list[Deferred[WaitResult]]] = {}
        self._log_wakers: dict[str, list[Callable[[], None]]] = {}
        self._stopping = False
        # Hooks of the stream services: between conmon create and crun start (attach clients
        # connect to the new attach socket then), and when a container is gone.
        self.before_start = list(before_start)
        # Optional image-store hooks: bytes in the writable layer, overlay paths for inspect.
        self.rw_size = rw_size
        self.rw_paths = rw_paths
        # The exec service's sessions of a container (inspect's ExecIDs).
        self.exec_ids = exec_ids
        self.on_gone = list(on_gone)
        # How rotations of ctr.log are noticed (polling when None).
        self.log_watcher = log_watcher
        self._log_watches: dict[str, _LogWatch] = {}

    # --- start-up and shutdown -------------------------------------------------------------------

    async def load(self) -> None:
        """Read every container into the cache (before restore)."""
        for c in await self._repo.all():
            self._cache[c.id] = c

    async def startup(self) -> None:
        """Daemon start: prepare the runtime, load state, reconcile with what still runs."""
        await self.runtime.setup()
        self.runtime.watch_exits(self._on_exit_file)
        await self.load()
        await self.restore()

    def shutdown(self) -> None:
        """Daemon stop: cancel timers; containers keep running (live restore)."""
        self._stopping = True
        for call in list(self._restart_calls.values()):
            if call.active():
                call.cancel()
        self._restart_calls.clear()
        for run in self._runs.values():
            if run.health_call is not None and run.health_call.active():
                run.health_call.cancel()
        for cid in list(self._log_watches):
            self._unwatch_log(cid)
        stop = getattr(self.runtime, "stop_watching", None)
        if stop is not None:
            stop()

    async def restore(self) -> None:
        """Reconcile the database with the runtime after a daemon (or host) restart.

        A container whose conmon still runs is running; one whose exit file exists exited while
        pyd was down (its exit is recorded now, with events and restart policy); one with
        neither (the host rebooted: runtime state gone) is marked exited (255) and restartable.
        """
        to_start: list[str] = []
        for c in list(self._cache.values()):
            st = c.state
            if st.status in ("running", "paused", "restarting", "removing"):
                bundle = self.bundle_dir(c.id)
                info = await self.runtime.read_exit(c.id, bundle)
                if info is not None or st.status == "restarting":
                    run = _Run(self._clock.seconds() - RESTART_RESET_AFTER)
                    run.ready.callback(None)
                    run.pid = st.pid
                    self._runs[c.id] = run
                    if info is None:
                        info = ExitInfo(st.exit_code, False, _now_nano(self._clock))
                    await self._handle_exit(c.id, info)
                    continue
                if await self.runtime.monitor_alive(bundle):
                    run = _Run(self._clock.seconds())
                    run.ready.callback(None)
                    run.pid = st.pid
                    self._runs[c.id] = run
                    try:
                        run.rootfs = await self._images.mount_rw_layer(c.id)
                    except PydError as e:
                        log.warn("rootfs of {cid}: {err}", cid=c.id, err=e)
                    rt = await self.runtime.state(c.id)
                    status = "running"
                    if rt is not None and rt.get("status") == "paused":
                        status = "paused"
                    if status != st.status:
                        await self._save(attrs.evolve(c, state=attrs.evolve(st, status=status)))
                    await self._resume_log_rotation(c)
                    self._schedule_health(c.id, first=True)
                    continue
                # Runtime state gone (host reboot) or conmon killed: the exit is unknowable.
                try:
                    await self.runtime.delete(c.id, force=True)
                except RuntimeFailed:
                    pass
                try:
                    await self._networks.teardown(c.id)
                except PydError:
                    pass
                new = attrs.evolve(
                    c,
                    state=attrs.evolve(
                        st,
                        status="exited",
                        pid=0,
                        exit_code=255,
                        finished_nano=_now_nano(self._clock),
                        health_status="unhealthy" if st.health_status else "",
                    ),
                )
                await self._save(new)
                if self._policy_restarts(new, 255, on_boot=True):
                    to_start.append(c.id)
            elif st.status in ("exited", "created") and await self.runtime.monitor_alive(
                self.bundle_dir(c.id)
            ):
                # pyd died between conmon's create and recording the start: adopt or discard.
                await self._adopt(c)
            elif (
                st.status in ("exited", "created")
                and st.has_been_started
                and self._policy_restarts(c, st.exit_code, on_boot=True)
            ):
                to_start.append(c.id)
        for cid in to_start:
            try:
                await self._start_locked(cid)
            except PydError as e:
                log.warn("restart of {cid} at daemon start failed: {err}", cid=cid, err=e)

    async def _adopt(self, c: Container) -> None:
        rt = await self.runtime.state(c.id)
        if rt is None or rt.get("status") not in ("running", "paused"):
            try:
                await self.runtime.delete(c.id, force=True)
            except RuntimeFailed:
                pass
            return
        run = _Run(self._clock.seconds())
        run.ready.callback(None)
        run.pid = int(rt.get("pid") or 0)
        self._runs[c.id] = run
        try:
            run.rootfs = await self._images.mount_rw_layer(c.id)
        except PydError as e:
            log.warn("rootfs of {cid}: {err}", cid=c.id, err=e)
        state = attrs.evolve(
            c.state,
            status=str(rt["status"]),
            pid=run.pid,
            exit_code=0,
            error="",
            started_nano=_now_nano(self._clock),
            has_been_started=True,
        )
        await self._save(attrs.evolve(c, state=state))
        await self._resume_log_rotation(c)
        log.info("adopted running container {cid}", cid=c.id)

    # --- lookup ----------------------------------------------------------------------------------

    def bundle_dir(self, container_id: str) -> str:
        """The container's persistent directory (bundle, logs, hosts files)."""
        return os.path.join(self.settings.containers_dir, container_id)

    def resolve(self, ref: str) -> Container:
        """A container by full id, name (with or without C{/}) or unique id prefix.

        @raise NotFound: dockerd's C{No such container: <ref>}.
        @raise InvalidParameter: an ambiguous prefix.
        """
        if not ref:
            raise no_such_container(ref)
        c = self._cache.get(ref)
        if c is not None:
            return c
        name = ref if ref.startswith("/") else "/" + ref
        for c in self._cache.values():
            if c.name == name:
                return c
        if all(ch in "0123456789abcdef" for ch in ref):
            matches = [c for cid, c in self._cache.items() if cid.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise no_such_container(ref)

    def get(self, ref: str) -> Container:
        """Alias of L{resolve} (inspect)."""
        return self.resolve(ref)

    def list_all(self) -> list[Container]:
        """Every container, newest first."""
        return sorted(self._cache.values(), key=lambda c: c.created_nano, reverse=True)

    def running(self, ref: str) -> RunningContainer:
        """A running container's handles, for attach/exec/stats/top.

        @raise Conflict: it is not running (dockerd's text).
        """
        c = self.resolve(ref)
        if not c.state.running:
            raise Conflict(f"container {c.id} is not running")
        run = self._runs.get(c.id)
        bundle = self.bundle_dir(c.id)
        return RunningContainer(
            container=c,
            pid=c.state.pid,
            bundle=bundle,
            attach_socket=self.runtime.attach_socket_path(c.id, bundle),
            ctl_path=self.runtime.ctl_path(bundle),
            rootfs=run.rootfs if run is not None else "",
        )

    async def stream_target(self, ref: str) -> StreamTarget:
        """What attach/exec need (L{pyd.engine.streams.StreamTargets}).

        @raise NotFound: no such container.
        """
        c = self.resolve(ref)
        run = self._runs.get(c.id)
        bundle = self.bundle_dir(c.id)
        s = self.spec_of(c)
        return StreamTarget(
            id=c.id,
            name=c.name.lstrip("/"),
            image=s.process.image or c.image_ref,
            status=c.state.status,
            pid=c.state.pid,
            tty=s.process.tty,
            open_stdin=s.process.open_stdin,
            stdin_once=s.process.stdin_once,
            bundle=bundle,
            attach_socket=self.runtime.attach_socket_path(c.id, bundle),
            rootfs=(run.rootfs or None) if run is not None else None,
            labels=dict(s.process.labels),
            user=s.process.user,
            working_dir=s.process.working_dir,
            mounts=c.mounts,
            readonly_rootfs=s.security.readonly_rootfs,
            bind_files=tuple(
                (str(c.extra[key]), dest)
                for key, dest in (
                    ("hostname_path", "/etc/hostname"),
                    ("hosts_path", "/etc/hosts"),
                    ("resolv_conf_path", "/etc/resolv.conf"),
                )
                if c.extra.get(key)
            ),
        )

    async def containers_using(self, image_id: str) -> list[tuple[str, bool]]:
        """(id, running) of every container made from C{image_id} (image removal rules)."""
        return [
            (c.id, c.state.status in ("running", "paused", "restarting"))
            for c in self._cache.values()
            if c.image_id == image_id
        ]

    async def commit_source(self, ref: str) -> CommitSource:
        """The container C{docker commit} names. @raise NotFound: no such container."""
        c = self.resolve(ref)
        return CommitSource(c.id, dict(c.config), c.state.running, c.name.lstrip("/"))

    async def network_container(self, ref: str) -> ContainerRef:
        """What networking needs of a container (L{pyd.engine.networks.ContainerLookup}).

        @raise NotFound: no such container.
        """
        c = self.resolve(ref)
        return ContainerRef(
            id=c.id,
            name=c.name.lstrip("/"),
            running=c.state.status in ("running", "paused"),
            network_mode=self.spec_of(c).namespaces.network or "default",
            endpoints_config=dict(c.networking_config.get("EndpointsConfig") or {}),
            networks_materialized=bool(c.extra.get("networks_materialized")),
        )

    async def networks_materialized(self, container_id: str) -> None:
        """Networking turned the create-time networks into endpoints (L{ContainerLookup})."""
        c = self._cache.get(container_id)
        if c is not None and not c.extra.get("networks_materialized"):
            await self._save(attrs.evolve(c, extra={**c.extra, "networks_materialized": True}))

    async def endpoints_changed(
        self, cid: str, endpoints: list[Endpoint], resolv_conf: str | None
    ) -> None:
        """Networking connected or disconnected a running container: refresh inspect's view,
        and rewrite resolv.conf when networking gives a new one (unless the user edited it)."""
        c = self._cache.get(cid)
        if c is None or c.state.status not in ("running", "paused"):
            return
        ns = dict(c.network_settings)
        ns["endpoints"] = [attrs.asdict(e) for e in endpoints]
        await self._save(attrs.evolve(c, network_settings=ns))
        path = c.extra.get("resolv_conf_path")
        if resolv_conf and path:
            await self._blocking.run(resolvconf.replace_unless_modified, path, resolv_conf)

    async def stats(self, ref: str) -> CgroupStats:
        """One sample of the container's cgroup counters (zeros when not running)."""
        c = self.resolve(ref)
        return await self.runtime.stats(c.id)

    def _lock(self, cid: str) -> DeferredLock:
        lock = self._locks.get(cid)
        if lock is None:
            lock = self._locks[cid] = DeferredLock()
        return lock

    async def _save(self, c: Container) -> Container:
        await self._repo.save(c)
        if c.id in self._cache:
            self._cache[c.id] = c
        return c

    def _attrs(self, c: Container, **more: str) -> dict[str, str]:
        process = self.spec_of(c).process
        out = dict(process.labels)
        out["image"] = process.image or c.image_ref
        out["name"] = c.name.lstrip("/")
        out.update(more)
        return out

    def _emit(self, c: Container, action: str, **more: str) -> None:
        d = self._events.emit("container", action, c.id, self._attrs(c, **more))
        d.addErrback(lambda f: log.failure("event {action} not stored", f, action=action))

    # --- create ----------------------------------------------------------------------------------

    def parse_create(self, body: Any, api_version: tuple[int, int] = (1, 50)) -> CreateSpec:
        """The engine's door: a C{POST /containers/create} body as a typed spec
        (L{pyd.engine.spec.parse_create} with this host's CPU count).

        @raise InvalidParameter: dockerd's texts (mistyped JSON, version rules, bad values).
        """
        return parse_create(body, api_version, self.settings.ncpu)

    def spec_of(self, c: Container) -> CreateSpec:
        """The typed spec of a stored container (what start, the runtime spec and the rules
        read; its sections stay as sent for inspect). A value stored mistyped by an older pyd
        reads as Go's zero value.
        """
        return stored_spec(c.config, c.host_config, c.networking_config)

    async def create(
        self,
        name: str | None,
        config: dict[str, Any],
        host_config: dict[str, Any],
        networking_config: dict[str, Any] | None = None,
    ) -> tuple[str, list[str]]:
        """L{create_spec} for callers that hold the wire-shaped sections (the builder's step
        containers): they go through the same parser as a client's body."""
        body = {**config, "HostConfig": host_config, "NetworkingConfig": networking_config}
        return await self.create_spec(name, self.parse_create(body))

    async def create_spec(self, name: str | None, spec: CreateSpec) -> tuple[str, list[str]]:
        """Create a container the way C{POST /containers/create} does.

        @return: (id, warnings).
        @raise InvalidParameter: invalid configuration (dockerd's messages); nothing is created.
        @raise NotFound: the image does not exist.
        @raise Conflict: the name is taken.
        """
        if name:
            if not VALID_NAME.match(name):
                raise InvalidParameter(
                    f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )
            name = name if name.startswith("/") else "/" + name
        # the wire sections are kept to answer inspect; the engine fills in its defaults
        config = copy.deepcopy(dict(spec.config))
        hc = copy.deepcopy(dict(spec.host_config))
        image_ref = spec.process.image
        if not image_ref:
            raise InvalidParameter("config cannot be empty in order to create a container")
        warnings = list(spec.warnings)
        for key in spec.runtime.sysctls:
            cc.sysctl_name(key)
        image: Image = await self._images.resolve(image_ref)
        config = cc.merge_image_defaults(config, image)
        if not cc.command_of(config):
            raise InvalidParameter("no command specified")
        config["ExposedPorts"] = _normalise_ports(config.get("ExposedPorts"))
        self._pin_namespace_donors(hc)
        mode = self._networks.canonical_mode(hc.get("NetworkMode") or "default")  # pinned
        if mode == "default":
            mode = "bridge"
        hc["NetworkMode"] = mode
        # the stored sections get dockerd's defaults (inspect shows them)
        hc["RestartPolicy"] = {
            "Name": spec.restart.name,
            "MaximumRetryCount": spec.restart.maximum_retry_count,
        }
        hc["LogConfig"] = self._log_config(spec.logging)
        cc.validate_log_config(hc["LogConfig"])
        if not spec.runtime.shm_size:
            hc["ShmSize"] = cc.DEFAULT_SHM
        cid = new_id()
        if not config.get("Hostname"):
            config["Hostname"] = self.settings.host_hostname if mode == "host" else cid[:12]
        netcfg = copy.deepcopy(dict(spec.networking_config))
        await self._networks.validate(
            cid, mode, dict(netcfg.get("EndpointsConfig") or {}), spec.network
        )
        bundle = self.bundle_dir(cid)
        c = Container(
            id=cid,
            name=name or "",
            image_id=image.id,
            image_ref=image_ref,
            created_nano=_now_nano(self._clock),
            config=config,
            host_config=hc,
            state=ContainerState(),
            extra={
                "bundle": bundle,
                "hosts_path": os.path.join(bundle, "hosts"),
                "hostname_path": os.path.join(bundle, "hostname"),
                "resolv_conf_path": os.path.join(bundle, "resolv.conf"),
                "log_path": os.path.join(bundle, "ctr.log"),
                "platform": "linux",
            },
            networking_config=netcfg,
        )
        c = await self._insert(c, generated=not name)
        try:
            await self._blocking.run(os.makedirs, bundle, 0o700, True)
            image_vols = list((image.container_config.get("Volumes") or {}).keys())
            image_vols += [v for v in (config.get("Volumes") or {}) if v not in image_vols]
            from_mounts = []
            for ref in spec.mounts.volumes_from:
                other = self.resolve(ref.split(":")[0])
                from_mounts.append(list(other.mounts))
            mounts = await self._volumes.resolve_mounts(cid, spec.mounts, image_vols, from_mounts)
            await self._images.create_rw_layer(cid, image.id)
        except BaseException:
            await self._volumes.release(cid, True)
            await self._repo.remove(cid)
            self._cache.pop(cid, None)
            await self._blocking.run(shutil.rmtree, bundle, True)
            raise
        c = await self._save(attrs.evolve(c, mounts=tuple(mounts)))
        self._emit(c, "create")
        return cid, warnings

    async def _insert(self, c: Container, generated: bool) -> Container:
        if not generated:
            await self._repo.add(c)
            self._cache[c.id] = c
            return c
        for attempt in range(10):
            name = "/" + random_name()
            if attempt >= 3:
                name += str(attempt)
            try:
                await self._repo.add(attrs.evolve(c, name=name))
            except Conflict:
                continue
            c = attrs.evolve(c, name=name)
            self._cache[c.id] = c
            return c
        raise Conflict("could not generate a unique container name")

    # --- start -----------------------------------------------------------------------------------

    async def start(self, ref: str) -> None:
        """Start a created or stopped container.

        @raise NotModified: it already runs.
        @raise Conflict: it is paused, or being removed.
        @raise InvalidParameter: the runtime refused the process (dockerd's text; exit code
            127/126 recorded in its state).
        """
        c = self.resolve(ref)
        async with self._lock(c.id):
            c = self.resolve(c.id)
            if c.state.status == "paused":
                raise Conflict("cannot start a paused container, try unpause instead")
            if c.state.status in ("running",):
                raise NotModified()
            if c.state.status == "removing":
                raise Conflict("container is marked for removal and cannot be started")
            if c.state.status == "dead":
                raise Conflict("cannot start a dead container")
            self._cancel_restart(c.id)
            c = attrs.evolve(c, state=attrs.evolve(c.state, manually_stopped=False))
            self._cache[c.id] = c
            await self._start(c)

    async def _start_locked(self, cid: str) -> None:
        async with self._lock(cid):
            c = self._cache.get(cid)
            if c is None or c.state.status in ("running", "paused", "removing", "dead"):
                return
            await self._start(c)

    async def _start(self, c: Container) -> None:
        cid = c.id
        bundle = self.bundle_dir(cid)
        hc = c.host_config
        run = _Run(self._clock.seconds())
        net: NetworkSetup | None = None
        spec_input: oci.RuntimeSpecInput | None = None
        log_path = c.extra.get("log_path") or os.path.join(bundle, "ctr.log")
        s = self.spec_of(c)
        try:
            plan = cc.log_plan(s.logging)

            async def mount() -> str:
                run.rootfs = await self._images.mount_rw_layer(cid)
                return run.rootfs

            # The root filesystem and the network namespace do not depend on each other: set
            # them up at the same time (whichever succeeded is undone by _start_failed).
            (mounted, rootfs), (netted, net_or_failure) = await _settle(
                mount(),
                self._networks.setup(
                    cid,
                    c.name.lstrip("/"),
                    s.process.hostname or cid[:12],
                    s.namespaces.network or "bridge",
                    dict(c.networking_config.get("EndpointsConfig") or {}),
                    s.network,
                    list(s.process.exposed_ports),
                ),
            )
            if netted:
                net = net_or_failure
            if not mounted:
                rootfs.raiseException()
            if not netted:
                net_or_failure.raiseException()
            # Volumes after the network, as dockerd does (its "mount" events follow "connect").
            # the runtime binds what prepare opened (subpaths on staging points), not c.mounts
            mounts = await self._volumes.prepare(cid, c.mounts, rootfs)
            spec_input = await self._blocking.run(
                self._prepare_spec, attrs.evolve(c, mounts=tuple(mounts)), s, rootfs, net
            )
            pid_path, ipc_path, shm_source = self._namespace_joins(s)
            if s.namespaces.ipc == "shareable":
                shm_source = os.path.join(self.bundle_dir(cid), "shm")
                await self._blocking.run(
                    mount_shm, shm_source, s.runtime.shm_size or cc.DEFAULT_SHM
                )
            spec_input = attrs.evolve(
                spec_input, pid_path=pid_path, ipc_path=ipc_path, shm_source=shm_source
            )
            spec = oci.build_spec(spec_input)
            self._runs[cid] = run
            if plan.rotates:
                await self._blocking.run(rotate_log_files, log_path, plan.max_files, True)
                # conmon's own limit only bounds the log while pyd is not there to rotate it:
                # it counts bytes since its own last rotation (not pyd's), so while pyd runs
                # it cuts a file short once every LOG_BACKSTOP x max-file files
                log_limit = plan.max_size * plan.max_files * LOG_BACKSTOP
            else:
                log_limit = plan.max_size
            pid = await self.runtime.create(
                CreateOptions(
                    container_id=cid,
                    name=c.name.lstrip("/"),
                    bundle=bundle,
                    spec=spec,
                    terminal=s.process.tty,
                    stdin=s.process.open_stdin,
                    # streams: a TTY's stdin must survive a detach (dockerd closes it at the
                    # client's EOF only for StdinOnce without a TTY; see pyd.engine.streams).
                    leave_stdin_open=not s.process.stdin_once or s.process.tty,
                    log_path="" if plan.driver == "none" else log_path,
                    log_size_max=log_limit,
                    log_driver="none" if plan.driver == "none" else "k8s-file",
                )
            )
            run.pid = pid
            # the runtime made the container's own copies of its mounts: the staging points
            # of volume subpaths are not needed any more (dockerd drops its safe paths here too)
            await self._volumes.unstage(cid)
            if plan.rotates:
                self._watch_log(cid, log_path, plan)
            for hook in self.before_start:
                await hook(cid, self.runtime.attach_socket_path(cid, bundle))
            await self.runtime.start(cid)
        except RuntimeFailed as e:
            args = list(spec_input.args) if spec_input is not None else cc.command_of(c.config)
            if s.runtime.init and args[:2] == [oci.INIT_DEST, "--"]:
                args = args[2:]
            message, code = cc.start_error(args, e.message)
            await self._start_failed(c, run, net, message, code)
            raise InvalidParameter(message) from e
        except PydError as e:
            await self._start_failed(c, run, net, str(e), 128)
            raise
        except BaseException as e:
            await self._start_failed(c, run, net, f"{type(e).__name__}: {e}", 128)
            raise
        state = attrs.evolve(
            c.state,
            status="running",
            pid=run.pid,
            exit_code=0,
            error="",
            oom_killed=False,
            started_nano=_now_nano(self._clock),
            has_been_started=True,
            health_status="starting" if self._health_config(c) else "",
            health_failing_streak=0,
        )
        try:
            c = await self._save(
                attrs.evolve(c, state=state, network_settings=_settings_of(net, hc))
            )
            self._emit(c, "start")
        finally:
            run.ready.callback(None)
        self._schedule_health(cid, first=True)
        if run.finished.called:
            return
        # The process may have exited before we listened; the exit file tells.
        info = await self.runtime.read_exit(cid, bundle)
        if info is not None and not run.handling:
            self._spawn_exit(cid)

    async def _start_failed(
        self, c: Container, run: _Run, net: NetworkSetup | None, message: str, code: int
    ) -> None:
        cid = c.id
        self._runs.pop(cid, None)
        if not run.ready.called:
            run.ready.callback(None)
        try:
            await self.runtime.delete(cid, force=True)
        except RuntimeFailed:
            pass
        await self._volumes.unstage(cid)
        await self._stop_log_rotation(cid)
        if net is not None:
            try:
                await self._networks.teardown(cid)
            except PydError:
                pass
        if run.rootfs:
            try:
                await self._images.unmount_rw_layer(cid)
            except PydError:
                pass
        c = self._cache.get(cid, c)
        state = attrs.evolve(
            c.state,
            status="exited" if c.state.has_been_started else "created",
            pid=0,
            exit_code=code,
            error=message,
        )
        if c.state.has_been_started:
            state = attrs.evolve(state, finished_nano=_now_nano(self._clock))
        await self._save(attrs.evolve(c, state=state))
        for gone in self.on_gone:
            gone(cid)
        if self.spec_of(c).restart.auto_remove:
            self._clock.callLater(0, self._spawn_auto_remove, cid, code)

    def _pin_namespace_donors(self, hc: dict[str, Any]) -> None:
        """Turn C{container:X} (network, pid, ipc) into C{container:<X's full id>}, once.

        X is resolved here, at create, and never again: a name or id prefix could name another
        container by the time of a start (a decoy removed, a prefix now unique), and the rules
        that allowed the join were decided on the container X named at create. dockerd stores
        the id the same way (inspect shows C{container:<id>}).

        @raise InvalidParameter: C{No such container: X}.
        """
        for key in NAMESPACE_JOIN_KEYS:
            mode = hc.get(key)
            if not isinstance(mode, str) or not mode.startswith("container:"):
                continue
            ref = mode.split(":", 1)[1]
            if not ref:
                if key == "NetworkMode":
                    raise InvalidParameter(
                        "invalid network mode: container: needs a container name"
                    )
                raise InvalidParameter(f"invalid {key[:-4].upper()} mode: {mode}")
            try:
                donor = self.resolve(ref)
            except NotFound as e:
                # 400, not 404: the CLI takes a 404 from create for a missing image and pulls.
                raise InvalidParameter(str(e)) from e
            hc[key] = "container:" + donor.id

    def donor(self, ref: str) -> Container:
        """The container a stored C{container:<id>} names: by full id only.

        Values stored by a pyd older than the pinning (a name) are looked up by exact name,
        never by id prefix.

        @raise NotFound: it is gone.
        """
        c = self._cache.get(ref)
        if c is None and not is_full_id(ref):
            name = ref if ref.startswith("/") else "/" + ref
            c = next((x for x in self._cache.values() if x.name == name), None)
        if c is None:
            raise no_such_container(ref)
        return c

    def _namespace_joins(self, s: CreateSpec) -> tuple[str, str, str]:
        """The namespaces C{--pid container:X} and C{--ipc container:X} join (dockerd's checks
        and texts: the donor must exist and run; an IPC donor must be C{shareable})."""
        pid_path = ipc_path = shm_source = ""
        joins = s.namespaces.joins()
        if "pid" in joins:
            donor = self._running_donor(joins["pid"])
            pid_path = f"/proc/{donor.state.pid}/ns/pid"
        if "ipc" in joins:
            donor = self._running_donor(joins["ipc"])
            if self.spec_of(donor).namespaces.ipc != "shareable":
                raise InvalidParameter(
                    f"container {donor.id}: non-shareable IPC "
                    "(hint: use IpcMode:shareable for the donor container)"
                )
            ipc_path = f"/proc/{donor.state.pid}/ns/ipc"
            shm_source = os.path.join(self.bundle_dir(donor.id), "shm")
        return pid_path, ipc_path, shm_source

    def _running_donor(self, ref: str) -> Container:
        try:
            donor = self.donor(ref)
        except NotFound as e:
            raise InvalidParameter(str(e)) from e
        if not donor.state.running or not donor.state.pid:
            raise Conflict(f"container {donor.id} is not running")
        if donor.state.status == "restarting":
            raise Conflict(
                f"Container {donor.id} is restarting, wait until the container is running"
            )
        return donor

    def _prepare_spec(
        self, c: Container, s: CreateSpec, rootfs: str, net: NetworkSetup | None
    ) -> oci.RuntimeSpecInput:
        """Blocking part of a start: users, hosts files, spec input (runs in the io pool)."""
        uid, gid, groups, home = resolve_user(rootfs, s.process.user, list(s.security.group_add))
        hostname = s.process.hostname or c.id[:12]
        bundle = self.bundle_dir(c.id)
        mode = s.namespaces.network or "bridge"
        host_net = mode == "host"
        files = []
        hostname_path = os.path.join(bundle, "hostname")
        _write(hostname_path, hostname + "\n")
        files.append((hostname_path, "/etc/hostname"))
        hosts_path = os.path.join(bundle, "hosts")
        if net is not None and net.hosts_entries:
            # The network layer owns the whole file (base block, ExtraHosts, own address).
            hosts_text = "".join(f"{a}\t{n}\n" for a, n in net.hosts_entries)
        else:
            host_hosts = _read_or(self.settings.host_hosts, "") if host_net else None
            hosts_text = cc.render_hosts((), list(s.network.extra_hosts), host_hosts)
        _write(hosts_path, hosts_text)
        files.append((hosts_path, "/etc/hosts"))
        resolv_path = os.path.join(bundle, "resolv.conf")
        host_resolv = _read_or(self.settings.host_resolv_conf, "")
        # Networking already folded --dns in; on user networks it names its own resolver
        # (which forwards to the --dns servers), so its answer comes first.
        dns = list(net.dns_servers if net else ()) or list(s.network.dns) or list(self.settings.dns)
        search = (
            list(s.network.dns_search)
            or list(net.dns_search if net else ())
            or list(self.settings.dns_search)
        )
        opts = (
            list(s.network.dns_options)
            or list(net.dns_options if net else ())
            or list(self.settings.dns_options)
        )
        if net is not None and net.resolv_conf:
            # Networking rendered it as dockerd does (127.0.0.11 on user-defined networks).
            resolvconf.write_file(resolv_path, net.resolv_conf)
        else:
            _write(
                resolv_path,
                cc.render_resolv_conf(host_resolv, dns, search, opts, keep_localhost=host_net),
            )
        files.append((resolv_path, "/etc/resolv.conf"))
        env = list(s.process.env)
        keys = {e.split("=", 1)[0] for e in env}
        if "PATH" not in keys:
            env.insert(0, "PATH=" + cc.DEFAULT_PATH)
        if "HOSTNAME" not in keys:
            env.insert(1, "HOSTNAME=" + hostname)
        if s.process.tty and "TERM" not in keys:
            env.append("TERM=xterm")
        if "HOME" not in keys:
            env.append("HOME=" + (home or "/"))
        sec = s.security
        caps = oci.resolve_caps(
            list(sec.cap_add), list(sec.cap_drop), sec.privileged, self.settings.cap_bounding
        )
        apparmor = ""
        resources = _resources_of(s.resources)
        ulimits = tuple((u.name, u.soft, u.hard) for u in s.resources.ulimits)
        netns: str | None = ""
        if host_net:
            netns = None
        elif net is not None:
            netns = net.netns_path if net.netns_path is not None else None
        init_path = ""
        if s.runtime.init:
            init_path = self.settings.init_path
            if not init_path:
                raise InvalidParameter("--init requested but no init binary (tini) is installed")
        args = [*(s.process.entrypoint or ()), *(s.process.cmd or ())]
        return oci.RuntimeSpecInput(
            args=tuple(args),
            env=tuple(env),
            cwd=s.process.working_dir or "/",
            uid=uid,
            gid=gid,
            additional_gids=groups,
            terminal=s.process.tty,
            hostname=hostname,
            domainname=s.process.domainname,
            rootfs=rootfs,
            readonly_rootfs=sec.readonly_rootfs,
            mounts=tuple(c.mounts),
            bind_files=tuple(files),
            netns_path=netns,
            ipc_host=s.namespaces.ipc == "host",
            pid_host=s.namespaces.pid == "host",
            uts_host=s.namespaces.uts == "host",
            resources=resources,
            cgroups_path=cgroup_path(c.id),
            caps=caps,
            privileged=sec.privileged,
            ulimits=ulimits,
            sysctls=tuple(s.runtime.sysctls.items()),
            no_new_privileges=sec.no_new_privileges,
            init_path=init_path,
            shm_size=s.runtime.shm_size or cc.DEFAULT_SHM,
            seccomp=sec.seccomp != "unconfined",
            oom_score_adj=(s.runtime.oom_score_adj or None),
            apparmor_profile=apparmor,
        )

    # --- exits -----------------------------------------------------------------------------------

    def _on_exit_file(self, cid: str) -> None:
        run = self._runs.get(cid)
        if run is None or run.handling:
            return
        self._spawn_exit(cid)

    def _spawn_exit(self, cid: str) -> None:
        run = self._runs.get(cid)
        if run is None or run.handling:
            return
        run.handling = True

        async def go() -> None:
            info = await self.runtime.read_exit(cid, self.bundle_dir(cid))
            if info is None:
                run.handling = False
                return
            await self._handle_exit(cid, info)

        d = Deferred.fromCoroutine(go())
        d.addErrback(lambda f: log.failure("handling the exit of {cid} failed", f, cid=cid))

    async def _handle_exit(self, cid: str, info: ExitInfo) -> None:
        """Record an exit once: state, events, clean-up, waiters, then restart policy."""
        run = self._runs.get(cid)
        if run is None:
            return
        run.handling = True
        if not run.ready.called:
            gate: Deferred[None] = Deferred()

            def open_gate(r: Any) -> Any:
                gate.callback(None)
                return r

            run.ready.addBoth(open_gate)
            await gate
        c = self._cache.get(cid)
        if c is None:
            self._runs.pop(cid, None)
            return
        if run.health_call is not None and run.health_call.active():
            run.health_call.cancel()

        async def delete() -> None:
            try:
                await self.runtime.delete(cid, force=True)
            except RuntimeFailed as e:
                log.warn("crun delete {cid}: {err}", cid=cid, err=e)

        async def teardown() -> None:
            try:
                await self._networks.teardown(cid)
            except PydError as e:
                log.warn("network teardown {cid}: {err}", cid=cid, err=e)

        # crun's state and cgroup, and the namespace and veths, go at the same time.
        for ok, failure in await _settle(delete(), teardown()):
            if not ok:
                failure.raiseException()
        try:
            await self._images.unmount_rw_layer(cid)
        except PydError as e:
            log.warn("unmount {cid}: {err}", cid=cid, err=e)
        await self.runtime.clear_exit(cid, self.bundle_dir(cid))
        await self._blocking.run(unmount_shm, os.path.join(self.bundle_dir(cid), "shm"))
        await self._stop_log_rotation(cid)
        c = self._cache.get(cid, c)
        ran_for = self._clock.seconds() - run.started_at
        state = attrs.evolve(
            c.state,
            status="exited",
            pid=0,
            exit_code=info.code,
            oom_killed=info.oom_killed,
            finished_nano=info.finished_nano or _now_nano(self._clock),
        )
        ns = _clear_settings(c.network_settings)
        c = await self._save(attrs.evolve(c, state=state, network_settings=ns))
        self._runs.pop(cid, None)
        if info.oom_killed:
            self._emit(c, "oom")
        exec_duration = str(int(max(ran_for, 0)))
        self._emit(c, "die", exitCode=str(info.code), execDuration=exec_duration)
        if not run.finished.called:
            run.finished.callback(info)
        for d in self._exit_waiters.pop(cid, []):
            if not d.called:
                d.callback(WaitResult(info.code))
        self._wake_log_followers(cid)
        if self._stopping:
            return
        if self._policy_restarts(c, info.code):
            if ran_for >= RESTART_RESET_AFTER:
                self._backoff[cid] = 0.0
            delay = self._backoff.get(cid, 0.0)
            delay = RESTART_BASE if delay == 0 else min(delay * 2, RESTART_MAX)
            self._backoff[cid] = delay
            # dockerd counts the restart when it decides it (inspect shows it while restarting)
            c = await self._save(
                attrs.evolve(
                    c,
                    restart_count=c.restart_count + 1,
                    state=attrs.evolve(c.state, status="restarting"),
                )
            )
            self._restart_calls[cid] = self._clock.callLater(delay, self._policy_restart, cid)
        elif self.spec_of(c).restart.auto_remove:
            await self._auto_remove(cid, info.code)

    def _policy_restarts(self, c: Container, code: int, on_boot: bool = False) -> bool:
        rp = self.spec_of(c).restart
        name = rp.name
        if c.state.manually_stopped or name == "no":
            return False
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure":
            limit = rp.maximum_retry_count
            return code != 0 and (limit == 0 or c.restart_count < limit)
        return False

    def _policy_restart(self, cid: str) -> None:
        self._restart_calls.pop(cid, None)

        async def go() -> None:
            async with self._lock(cid):
                c = self._cache.get(cid)
                if c is None or c.state.status != "restarting" or c.state.manually_stopped:
                    return
                try:
                    await self._start(c)
                except PydError as e:
                    # dockerd (monitor.go): a restart that fails to start leaves the container
                    # stopped (_start_failed recorded it; --rm removes it), with no further try
                    log.warn("restart of {cid} failed: {err}", cid=cid, err=e)
                    c = self._cache.get(cid)
                    if c is not None and c.state.status == "restarting":
                        await self._save(
                            attrs.evolve(c, state=attrs.evolve(c.state, status="exited"))
                        )

        d = Deferred.fromCoroutine(go())
        d.addErrback(lambda f: log.failure("policy restart of {cid} failed", f, cid=cid))

    def _cancel_restart(self, cid: str) -> bool:
        call = self._restart_calls.pop(cid, None)
        if call is not None and call.active():
            call.cancel()
            return True
        return False

    def _spawn_auto_remove(self, cid: str, code: int) -> None:
        d = Deferred.fromCoroutine(self._auto_remove(cid, code))
        d.addErrback(lambda f: log.failure("auto-remove of {cid} failed", f, cid=cid))

    async def _auto_remove(self, cid: str, code: int) -> None:
        try:
            await self.remove(cid, force=True, volumes=True, _code=code)
        except NotFound:
            pass
        except PydError as e:
            log.warn("auto-remove of {cid} failed: {err}", cid=cid, err=e)

    # --- stop / kill / restart / pause -----------------------------------------------------------

    async def _wait_exit(self, cid: str, timeout: float | None) -> bool:
        run = self._runs.get(cid)
        if run is None:
            return True
        if run.finished.called:
            return True
        d: Deferred[Any] = Deferred()

        def fire(r: Any) -> Any:
            if not d.called:
                d.callback(True)
            return r

        run.finished.addBoth(fire)
        if timeout is not None:

            def expire() -> None:
                if not d.called:
                    d.callback(False)

            call = self._clock.callLater(max(timeout, 0), expire)
            result = bool(await d)
            if call.active():
                call.cancel()
            return result
        return bool(await d)

    async def _kill(self, c: Container, sig: int) -> None:
        try:
            await self.runtime.kill(c.id, sig)
        except RuntimeFailed as e:
            if self._runs.get(c.id) is None or "not running" in e.message or "stopped" in e.message:
                return
            raise SystemError_(f"Cannot kill container: {c.id}: {e.message}") from e

    async def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        """StopSignal, then SIGKILL after the timeout (C{Config.StopTimeout} or 10 s).

        @raise NotModified: it is not running.
        """
        c = self.resolve(ref)
        async with self._lock(c.id):
            c = self.resolve(c.id)
            if c.state.status == "restarting" or (
                c.state.status in ("exited", "created") and c.id in self._restart_calls
            ):
                self._cancel_restart(c.id)
                c = await self._save(
                    attrs.evolve(
                        c, state=attrs.evolve(c.state, status="exited", manually_stopped=True)
                    )
                )
                self._emit(c, "stop")
                return
            if not c.state.running:
                raise NotModified()
            await self._stop(c, timeout, signal)
            self._emit(self.resolve(c.id), "stop")

    async def _stop(self, c: Container, timeout: int | None, signal: str | None) -> None:
        c = await self._save(attrs.evolve(c, state=attrs.evolve(c.state, manually_stopped=True)))
        process = self.spec_of(c).process
        sig = cc.parse_signal(signal or process.stop_signal or None)
        if timeout is None:
            timeout = process.stop_timeout
            if timeout is None:
                timeout = 10
        paused = c.state.status == "paused"
        if sig != _signal.SIGKILL:
            self._emit(c, "kill", signal=str(sig))
            await self._kill(c, sig)
            if paused:
                await self._resume_quiet(c.id)
            if await self._wait_exit(c.id, None if timeout < 0 else float(timeout)):
                return
        self._emit(c, "kill", signal=str(int(_signal.SIGKILL)))
        await self._kill(c, _signal.SIGKILL)
        if paused:
            await self._resume_quiet(c.id)
        if not await self._wait_exit(c.id, 30.0):
            raise SystemError_(f"container {c.id} did not exit after SIGKILL")

    async def _resume_quiet(self, cid: str) -> None:
        try:
            await self.runtime.resume(cid)
        except RuntimeFailed:
            pass

    async def kill(self, ref: str, signal: str | None = None) -> None:
        """Send a signal (default SIGKILL).

        @raise Conflict: it is not running (dockerd's text).
        @raise InvalidParameter: unknown signal.
        """
        sig = cc.parse_signal(signal, default=_signal.SIGKILL)
        c = self.resolve(ref)
        if c.state.status == "restarting" and self._cancel_restart(c.id):
            c = await self._save(
                attrs.evolve(c, state=attrs.evolve(c.state, status="exited", manually_stopped=True))
            )
            self._emit(c, "kill", signal=str(sig))
            return
        if not c.state.running:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        stop_sig = cc.parse_signal(self.spec_of(c).process.stop_signal or None)
        if sig in (_signal.SIGKILL, stop_sig):
            c = await self._save(
                attrs.evolve(c, state=attrs.evolve(c.state, manually_stopped=True))
            )
        self._emit(c, "kill", signal=str(sig))
        await self._kill(c, sig)
        if c.state.status == "paused" and sig == _signal.SIGKILL:
            await self._resume_quiet(c.id)

    async def restart(
        self, ref: str, timeout: int | None = None, signal: str | None = None
    ) -> None:
        """Stop if running, then start; emits C{restart}."""
        c = self.resolve(ref)
        async with self._lock(c.id):
            c = self.resolve(c.id)
            self._cancel_restart(c.id)
            if c.state.running:
                await self._stop(c, timeout, signal)
                self._emit(self.resolve(c.id), "stop")
            c = self.resolve(c.id)
            c = attrs.evolve(c, state=attrs.evolve(c.state, manually_stopped=False))
            self._cache[c.id] = c
            await self._start(c)
            self._emit(self.resolve(c.id), "restart")

    async def pause(self, ref: str) -> None:
        """Freeze the container. @raise Conflict: not running or already paused."""
        c = self.resolve(ref)
        async with self._lock(c.id):
            c = self.resolve(c.id)
            if c.state.status == "paused":
                raise Conflict(f"Container {c.id} is already paused")
            if c.state.status != "running":
                raise Conflict(f"Container {c.id} is not running")
            try:
                await self.runtime.pause(c.id)
            except RuntimeFailed as e:
                raise SystemError_(f"Cannot pause container {c.id}: {e.message}") from e
            c = await self._save(attrs.evolve(c, state=attrs.evolve(c.state, status="paused")))
            self._emit(c, "pause")

    async def unpause(self, ref: str) -> None:
        """Thaw the container. @raise Conflict: not paused."""
        c = self.resolve(ref)
        async with self._lock(c.id):
            c = self.resolve(c.id)
            if c.state.status != "paused":
                raise Conflict(f"Container {c.id} is not paused")
            try:
                await self.runtime.resume(c.id)
            except RuntimeFailed as e:
                raise SystemError_(f"Cannot unpause container {c.id}: {e.message}") from e
            c = await self._save(attrs.evolve(c, state=attrs.evolve(c.state, status="running")))
            self._emit(c, "unpause")

    # --- wait ------------------------------------------------------------------------------------

    def wait(self, ref: str, condition: str = "not-running") -> Deferred[WaitResult]:
        """Resolve now (may raise NotFound), return a Deferred firing when the condition holds.

        C{not-running}: at once if not running, else at the next exit. C{next-exit}: the next
        exit. C{removed}: once the container is gone (with its last exit code).
        @raise InvalidParameter: unknown condition.
        """
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidParameter(f'invalid condition: "{condition}"')
        c = self.resolve(ref)
        d: Deferred[WaitResult] = Deferred()
        if condition == "removed":
            self._removed_waiters.setdefault(c.id, []).append(d)
            return d
        if (
            condition in ("", "not-running")
            and not c.state.running
            and c.state.status != "restarting"
        ):
            err = c.state.error or None
            return succeed(WaitResult(c.state.exit_code, err))
        self._exit_waiters.setdefault(c.id, []).append(d)
        return d

    # --- remove / rename / update / prune --------------------------------------------------------

    async def remove(
        self, ref: str, force: bool = False, volumes: bool = False, _code: int | None = None
    ) -> None:
        """C{docker rm}: refuse a running container unless forced; release everything.

        @raise Conflict: running (or paused) without force, or already being removed.
        """
        c = self.resolve(ref)
        cid_ = c.id
        async with self._lock(cid_):
            cur = self._cache.get(cid_)
            if cur is None:
                raise no_such_container(ref)
            c = cur
            if c.state.status == "removing":
                raise Conflict(f"removal of container {c.id[:12]} is already in progress")
            if c.state.running and not force:
                if c.state.status == "paused":
                    raise Conflict(
                        f'cannot remove container "{c.name}": container is paused and must be unpaused first'
                    )
                raise Conflict(
                    f'cannot remove container "{c.name}": container is running: stop the container before removing or force remove'
                )
            self._cancel_restart(c.id)
            if c.state.running:
                c = await self._save(
                    attrs.evolve(c, state=attrs.evolve(c.state, manually_stopped=True))
                )
                self._emit(c, "kill", signal=str(int(_signal.SIGKILL)))
                await self._kill(c, _signal.SIGKILL)
                if c.state.status == "paused":
                    await self._resume_quiet(c.id)
                await self._wait_exit(c.id, 30.0)
                c = self._cache.get(c.id, c)
            prev = c.state.status
            c = await self._save(attrs.evolve(c, state=attrs.evolve(c.state, status="removing")))
            try:
                try:
                    await self.runtime.delete(c.id, force=True)
                except RuntimeFailed:
                    pass
                for ok, failure in await _settle(
                    self._networks.release(c.id), self._images.remove_rw_layer(c.id)
                ):
                    if not ok:
                        failure.raiseException()
                await self._volumes.release(c.id, volumes)
                await self._repo.remove(c.id)
            except BaseException:
                await self._save(attrs.evolve(c, state=attrs.evolve(c.state, status=prev)))
                raise
            self._cache.pop(c.id, None)
            self._backoff.pop(c.id, None)
            self._unwatch_log(c.id)
            await self._blocking.run(unmount_shm, os.path.join(self.bundle_dir(c.id), "shm"))
            await self._blocking.run(shutil.rmtree, self.bundle_dir(c.id), True)
            self._emit(c, "destroy")
            for gone in self.on_gone:
                gone(c.id)
            self._wake_log_followers(c.id)
            code = c.state.exit_code if _code is None else _code
            for d in self._removed_waiters.pop(c.id, []) + self._exit_waiters.pop(c.id, []):
                if not d.called:
                    d.callback(WaitResult(code))
            if cid_ not in self._cache:
                self._locks.pop(cid_, None)

    async def rename(self, ref: str, new_name: str) -> None:
        """C{docker rename}. @raise Conflict: name taken. @raise InvalidParameter: bad name."""
        c = self.resolve(ref)
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        if not VALID_NAME.match(new_name):
            raise InvalidParameter(
                f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        name = new_name if new_name.startswith("/") else "/" + new_name
        if name == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        old = c.name
        c = attrs.evolve(c, name=name)
        await self._repo.save(c)
        self._cache[c.id] = c
        self._emit(c, "rename", oldName=old)

    async def update(self, ref: str, changes: dict[str, Any]) -> list[str]:
        """C{docker update}: resources and restart policy; live ones go to the runtime.

        @raise InvalidParameter: invalid values, mistyped JSON (dockerd's texts).
        """
        changes = parse_update(changes)
        c = self.resolve(ref)
        async with self._lock(c.id):
            c = self.resolve(c.id)
            hc = dict(c.host_config)
            keys = (
                "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota",
                "CpuPeriod", "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight", "KernelMemory",
                "CpuRealtimePeriod", "CpuRealtimeRuntime", "OomKillDisable",
            )  # fmt: skip
            for k in keys:
                v = changes.get(k)
                if v not in (None, 0, "") or (k == "PidsLimit" and v is not None and v != 0):
                    hc[k] = v
            if changes.get("NanoCpus"):
                hc["CpuQuota"] = 0
                hc["CpuPeriod"] = 0
            old_swap = c.host_config.get("MemorySwap") or 0
            if (
                hc.get("Memory")
                and changes.get("Memory")
                and not changes.get("MemorySwap")
                and old_swap > 0
                and hc["Memory"] > old_swap
            ):
                raise InvalidParameter(
                    "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
                )
            rp = changes.get("RestartPolicy")
            if (
                rp
                and rp.get("Name") is not None
                and (rp.get("Name") or rp.get("MaximumRetryCount"))
            ):
                cc.validate_restart_policy(rp, bool(hc.get("AutoRemove")))
                hc["RestartPolicy"] = {
                    "Name": rp.get("Name") or "no",
                    "MaximumRetryCount": rp.get("MaximumRetryCount") or 0,
                }
            warnings = cc.validate_resources(hc, self.settings.ncpu)
            if c.state.running:
                res = oci.build_spec(
                    oci.RuntimeSpecInput(
                        args=("x",),
                        env=(),
                        cwd="/",
                        uid=0,
                        gid=0,
                        additional_gids=(),
                        terminal=False,
                        hostname="",
                        rootfs="",
                        # OomKillDisable is stored, not applied live (as before the spec)
                        resources=attrs.evolve(
                            _resources_of(resources_of(hc)), oom_kill_disable=False
                        ),
                    )
                )["linux"]["resources"]
                res.pop("devices", None)
                try:
                    await self.runtime.update(c.id, res)
                except RuntimeFailed as e:
                    raise SystemError_(f"Cannot update container {c.id}: {e.message}") from e
            c = await self._save(attrs.evolve(c, host_config=hc))
            self._emit(c, "update")
            return warnings

    async def prune(self, until_nano: int | None, labels: Sequence[str]) -> PruneResult:
        """Remove every stopped container (optionally older than C{until}, matching labels)."""
        deleted: list[str] = []
        reclaimed = 0
        for c in list(self._cache.values()):
            if c.state.running or c.state.status in ("restarting", "removing"):
                continue
            if until_nano is not None and c.created_nano >= until_nano:
                continue
            if not _labels_match(c.config.get("Labels") or {}, labels):
                continue
            # dockerd counts the writable layer, measured before the removal
            rw, _ = await self.sizes(c)
            try:
                await self.remove(c.id)
            except PydError as e:
                log.warn("prune: {cid}: {err}", cid=c.id, err=e)
                continue
            deleted.append(c.id)
            reclaimed += max(rw, 0)
        return PruneResult(tuple(deleted), reclaimed)

    # --- logs ------------------------------------------------------------------------------------

    def _log_config(self, lc: LogConfig) -> dict[str, Any]:
        """dockerd's C{mergeAndVerifyLogConfig}: the daemon's driver when none is given, and its
        options under those of the container when the driver is the daemon's."""
        ltype = lc.type or self.settings.log_driver or "json-file"
        cfg = dict(lc.config)
        if ltype == (self.settings.log_driver or "json-file"):
            for k, v in self.settings.log_opts.items():
                cfg.setdefault(k, v)
        return {"Type": ltype, "Config": cfg}

    def _watch_log(self, cid: str, log_path: str, plan: cc.LogPlan) -> None:
        """Rotate C{cid}'s log as it grows (see pyd.engine.containers.logfiles)."""
        if cid in self._log_watches:
            return
        ctl = self.runtime.ctl_path(os.path.dirname(log_path))
        w = _LogWatch(log_path, plan.max_size, plan.max_files, ctl)
        self._log_watches[cid] = w
        base = os.path.basename(log_path)

        def changed(name: str) -> None:
            if name == base:
                self._rotate_log(cid)

        if self.log_watcher is not None:
            w.cancel = self.log_watcher.watch(os.path.dirname(log_path), changed)

    def _rotate_log(self, cid: str) -> None:
        """One L{rotate_log_files} at a time per container; a rotation seen meanwhile reruns it."""
        w = self._log_watches.get(cid)
        if w is None:
            return
        if w.busy:
            w.again = True
            return
        w.busy = True

        now = self._clock.seconds()
        resend = bool(w.requested) and now - w.requested_at > ROTATION_RESEND

        def stepped(result: tuple[int, int]) -> None:
            requested, w.known = result
            if requested and (requested != w.requested or resend):
                w.requested_at = now
            w.requested = requested

        def done(_: object) -> None:
            w.busy = False
            if w.again:
                w.again = False
                self._rotate_log(cid)

        d = self._blocking.run(
            rotation_step, w.path, w.max_files, w.max_size, w.ctl, w.requested, resend, w.known
        )
        d.addCallback(stepped)
        d.addErrback(lambda f: log.failure("log rotation of {cid} failed", f, cid=cid))
        d.addBoth(done)

    def _unwatch_log(self, cid: str) -> _LogWatch | None:
        w = self._log_watches.pop(cid, None)
        if w is not None and w.cancel is not None:
            w.cancel()
        return w

    async def _stop_log_rotation(self, cid: str) -> None:
        """The container stopped: stop watching, name and prune its last rotations."""
        w = self._unwatch_log(cid)
        if w is None:
            return
        try:
            await self._blocking.run(rotate_log_files, w.path, w.max_files)
        except OSError as e:
            log.warn("log rotation of {cid}: {err}", cid=cid, err=e)

    async def _resume_log_rotation(self, c: Container) -> None:
        """Daemon start, container still running: catch up with rotations, watch again."""
        try:
            plan = cc.log_plan(self.spec_of(c).logging)
        except PydError:
            return
        if not plan.rotates:
            return
        log_path = c.extra.get("log_path") or os.path.join(self.bundle_dir(c.id), "ctr.log")
        self._watch_log(c.id, log_path, plan)
        self._rotate_log(c.id)

    async def read_logs(
        self, ref: str, req: LogsRequest
    ) -> tuple[Container, list[LogEntry], LogTail]:
        """Everything logged so far that matches C{req}, and the open log to follow it with.

        With C{req.follow} the caller hands the tail to L{follow_logs}, which closes it;
        without, the tail comes back closed.
        """
        c = self.resolve(ref)
        ltype = self.spec_of(c).logging.type or "json-file"
        if ltype == "none":
            raise InvalidParameter("configured logging driver does not support reading")
        tail = LogTail(c.extra.get("log_path") or os.path.join(self.bundle_dir(c.id), "ctr.log"))
        try:
            got = await self._blocking.run(tail.read)
        finally:
            if not req.follow:
                tail.close()
        entries = select_entries(
            got, req.stdout, req.stderr, req.since_nano, req.until_nano, req.tail
        )
        return c, entries, tail

    async def follow_logs(
        self,
        c: Container,
        req: LogsRequest,
        tail: LogTail,
        write: Callable[[list[LogEntry]], None],
        closed: Callable[[], bool],
    ) -> None:
        """Keep writing new entries until the container stops (or the client goes away).

        The tail's open descriptor keeps the log readable after the container is removed
        (docker-py's C{run(remove=True)} removes before it reads the stream). The follower
        polls, and is woken at once when the container exits or is removed.
        """
        interval = 0.05
        # Once the exit is seen one last read takes the rest: conmon drains the container's
        # stdio and syncs the log before it writes the exit file (conmon.c: drain_stdio,
        # sync_logs, then the exit file), so nothing is written after it.
        try:
            while not closed():
                cur = self._cache.get(c.id)
                alive = cur is not None and (cur.state.running or cur.state.status == "restarting")
                got = await self._blocking.run(tail.read)
                write(
                    select_entries(
                        got, req.stdout, req.stderr, req.since_nano, req.until_nano, None
                    )
                )
                if req.until_nano is not None and _now_nano(self._clock) > req.until_nano:
                    return
                if not alive:
                    return
                interval = 0.05 if got else min(interval * 1.5, 0.25)
                await self._sleep_or_wake(c.id, interval)
        finally:
            tail.close()

    async def _sleep_or_wake(self, cid: str, delay: float) -> None:
        """Sleep C{delay} seconds, or less if the container's state changes meanwhile."""
        d: Deferred[None] = Deferred()

        def fire() -> None:
            if not d.called:
                d.callback(None)

        call = self._clock.callLater(delay, fire)
        wakers = self._log_wakers.setdefault(cid, [])
        wakers.append(fire)
        try:
            await d
        finally:
            if call.active():
                call.cancel()
            if fire in wakers:
                wakers.remove(fire)
            if not wakers:
                self._log_wakers.pop(cid, None)

    def _wake_log_followers(self, cid: str) -> None:
        for fire in list(self._log_wakers.get(cid, ())):
            fire()

    # --- health checks ---------------------------------------------------------------------------

    def _health_config(self, c: Container) -> Health | None:
        hc = self.spec_of(c).process.healthcheck
        if hc is None or not hc.test or hc.test[0] == "NONE":
            return None
        return hc

    def _schedule_health(self, cid: str, first: bool = False) -> None:
        c = self._cache.get(cid)
        run = self._runs.get(cid)
        if c is None or run is None:
            return
        hc = self._health_config(c)
        if hc is None:
            return
        interval = (hc.interval or cc.HEALTH_DEFAULTS["Interval"]) / 1e9
        start_period = hc.start_period / 1e9
        start_interval = (hc.start_interval or cc.HEALTH_DEFAULTS["StartInterval"]) / 1e9
        in_start = self._clock.seconds() - run.started_at < start_period
        delay = start_interval if (in_start and c.state.health_status == "starting") else interval
        run.health_call = self._clock.callLater(delay, self._probe, cid)

    def _probe(self, cid: str) -> None:
        async def go() -> None:
            c = self._cache.get(cid)
            run = self._runs.get(cid)
            if c is None or run is None or c.state.status != "running":
                if c is not None and c.state.status == "paused":
                    self._schedule_health(cid)
                return
            spec = self.spec_of(c)
            hc = self._health_config(c)
            if hc is None:
                return
            test = list(hc.test)
            if test[0] == "CMD-SHELL":
                args = ["/bin/sh", "-c", " ".join(test[1:])]
            elif test[0] == "CMD":
                args = test[1:]
            else:
                args = test
            timeout = (hc.timeout or cc.HEALTH_DEFAULTS["Timeout"]) / 1e9
            retries = hc.retries or cc.HEALTH_DEFAULTS["Retries"]
            start_period = hc.start_period / 1e9
            t0 = _now_nano(self._clock)
            try:
                code, output = await self.runtime.exec_sync(
                    cid,
                    args,
                    env=list(spec.process.env),
                    user=spec.process.user,
                    timeout=timeout,
                )
            except RuntimeFailed as e:
                code, output = -1, e.message.encode()
            t1 = _now_nano(self._clock)
            c = self._cache.get(cid)
            if c is None or self._runs.get(cid) is not run:
                return
            st = c.state
            entry = HealthLogEntry(t0, t1, code, output.decode("utf-8", "replace")[:4096])
            log_entries = (*st.health_log, entry)[-5:]
            status = st.health_status
            streak = st.health_failing_streak
            if code == 0:
                status, streak = "healthy", 0
            else:
                in_start = (self._clock.seconds() - run.started_at) < start_period
                if not in_start or status != "starting":
                    streak += 1
                    if streak >= retries:
                        status = "unhealthy"
            changed = status != st.health_status
            c = await self._save(
                attrs.evolve(
                    c,
                    state=attrs.evolve(
                        st,
                        health_status=status,
                        health_failing_streak=streak,
                        health_log=log_entries,
                    ),
                )
            )
            if changed:
                self._emit(c, f"health_status: {status}")
            self._schedule_health(cid)

        d = Deferred.fromCoroutine(go())
        d.addErrback(lambda f: log.failure("health check of {cid} failed", f, cid=cid))

    # --- system contributor ----------------------------------------------------------------------

    def info_counts(self) -> Deferred[dict[str, Any]]:
        """Counts for C{/info}."""
        cs = list(self._cache.values())
        running = sum(1 for c in cs if c.state.status in ("running", "restarting"))
        paused = sum(1 for c in cs if c.state.status == "paused")
        return succeed(
            {
                "Containers": len(cs),
                "ContainersRunning": running,
                "ContainersPaused": paused,
                "ContainersStopped": len(cs) - running - paused,
            }
        )

    def disk_usage(self) -> Deferred[dict[str, Any]]:
        """Nothing here: the API's adapter renders the df rows (wire JSON lives there)."""
        return succeed({})

    async def sizes(self, c: Container) -> tuple[int, int]:
        """(SizeRw, SizeRootFs): bytes written by the container, and that plus its image."""
        rw = 0
        if self.rw_size is not None:
            try:
                rw = await self.rw_size(c.id)
            except (PydError, OSError):
                rw = 0
        try:
            image_size = (await self._images.resolve(c.image_id)).size
        except PydError:
            image_size = 0
        return rw, rw + image_size

    async def graph_paths(self, c: Container) -> dict[str, str] | None:
        """The overlay directories (inspect's C{GraphDriver.Data}), when the store tells."""
        if self.rw_paths is None:
            return None
        try:
            return await self.rw_paths(c.id)
        except (PydError, OSError):
            return None


async def _settle(*steps: Any) -> list[tuple[bool, Any]]:
    """Run independent steps at the same time and wait for all of them, even when one fails:
    [(True, result) or (False, Failure)] in the order given."""
    results: list[tuple[bool, Any]] = await DeferredList(
        [ensureDeferred(s) for s in steps], consumeErrors=True
    )
    return [(bool(ok), value) for ok, value in results]


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _read_or(path: str, default: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def _normalise_ports(ports: dict[str, Any] | None) -> dict[str, Any] | None:
    if not ports:
        return None
    out: dict[str, Any] = {}
    for p in ports:
        key = p if "/" in p else p + "/tcp"
        port, _, proto = key.partition("/")
        if not port.replace("-", "").isdigit() or proto not in ("tcp", "udp", "sctp"):
            raise InvalidParameter(f'invalid port specification: "{p}"')
        out[key] = {}
    return out


def _labels_match(labels: dict[str, Any], wanted: Sequence[str]) -> bool:
    for w in wanted:
        neg = False
        if "!=" in w:
            k, _, v = w.partition("!=")
            neg = True
        else:
            k, _, v = w.partition("=")
        has = k in labels and ("=" not in w or str(labels[k]) == v)
        if neg:
            has = k in labels and str(labels[k]) != v
        if not has:
            return False
    return True


def _resources_of(r: Resources) -> oci.Resources:
    """The spec's resources as OCI resources (create and live update)."""
    quota, period = r.cpu_quota, r.cpu_period
    if r.nano_cpus:
        period = 100_000
        quota = r.nano_cpus * period // 1_000_000_000
    return oci.Resources(
        memory=r.memory,
        memory_swap=r.memory_swap,
        memory_reservation=r.memory_reservation,
        cpu_shares=r.cpu_shares,
        cpu_quota=quota,
        cpu_period=period,
        cpuset_cpus=r.cpuset_cpus,
        cpuset_mems=r.cpuset_mems,
        pids_limit=r.pids_limit or 0,
        blkio_weight=r.blkio_weight,
        oom_kill_disable=bool(r.oom_kill_disable),
    )


def _settings_of(net: NetworkSetup | None, hc: dict[str, Any]) -> dict[str, Any]:
    if net is None:
        return {}
    return {
        "sandbox_key": net.netns_path or "",
        "endpoints": [attrs.asdict(e) for e in net.endpoints],
        "ports": [attrs.asdict(p) for p in net.ports],
    }


def _clear_settings(ns: dict[str, Any]) -> dict[str, Any]:
    """After a stop: keep the network names, forget addresses and ports (as dockerd shows)."""
    eps = []
    for raw in ns.get("endpoints") or []:
        e = dict(raw)
        e.update(ipv4="", prefixlen=0, gateway="", mac="", endpoint_id="")
        eps.append(e)
    return {"sandbox_key": "", "endpoints": eps, "ports": []}


def endpoints_of(c: Container) -> list[Endpoint]:
    """The container's endpoints as records."""
    out = []
    for raw in c.network_settings.get("endpoints") or []:
        e = dict(raw)
        e["aliases"] = tuple(e.get("aliases") or ())
        e["dns_names"] = tuple(e.get("dns_names") or ())
        out.append(Endpoint(**e))
    return out


def ports_of(c: Container) -> list[PortMapping]:
    """The container's published ports as records."""
    return [PortMapping(**p) for p in c.network_settings.get("ports") or []]


def mounts_listed(c: Container) -> list[MountSpec]:
    """The mounts inspect shows."""
    return [m for m in c.mounts if getattr(m, "listed", True)]
