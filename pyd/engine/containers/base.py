"""What every part of the container service shares (layer: engine): settings and records, the
cache of containers and its lookups, per-container locks, saving and events, the views other
areas read (stream targets, network and commit sources, disk usage).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    DeferredLock,
    DeferredSemaphore,
    ensureDeferred,
    gatherResults,
    succeed,
)
from twisted.logger import Logger

from pyd.core.errors import (
    Conflict,
    InvalidParameter,
    PydError,
    no_such_container,
)
from pyd.core.records import (
    CommitSource,
    Container,
    Endpoint,
    MountSpec,
    NetworkSetup,
    PortMapping,
)
from pyd.core.seams import Blocking, Clock, EventSink
from pyd.drivers.runtime import spec as oci
from pyd.drivers.runtime.cgroups import CgroupStats
from pyd.drivers.runtime.conmon import (
    ExitInfo,
    RuntimeDriver,
    cgroup_path,
)
from pyd.drivers.runtime.oci import OciRuntime, RuntimeSet
from pyd.engine import resolvconf
from pyd.engine.confinement import Confinement
from pyd.engine.containers.logspace import LogSpaceGuard
from pyd.engine.contracts import ContainerImages, NetworkProvider, VolumeProvider
from pyd.engine.honoured import HostLimits
from pyd.engine.networks import ContainerRef
from pyd.engine.spec import (
    CreateSpec,
    EndpointRequest,
    endpoint_settings,
    parse_create,
)
from pyd.engine.spec.records import Resources
from pyd.engine.spec.remembered import RememberedSpecs
from pyd.engine.streams import StreamTarget
from pyd.state.containers import ContainerRepository

log = Logger()

# Key of a container's C{extra} while its create is under way (see ContainerCreate.create).
CREATING = "creating"
# Writable layers measured at once by C{sizes_of} (each a directory walk in the io pool).
RW_SIZES_AT_ONCE = 4
RW_SIZES_CHUNK = 32


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
    # the journald log driver's socket (tests give one of their own)
    journal_socket: str = "/run/systemd/journal/socket"
    host_resolv_conf: str = "/etc/resolv.conf"
    host_hosts: str = "/etc/hosts"
    # seccomp profiles, no-new-privileges default, AppArmor/SELinux presence
    confinement: Confinement = attrs.field(factory=Confinement)
    cgroup_v2: bool = False  # containers get a private cgroup namespace by default (dockerd)
    limits: HostLimits = attrs.field(
        factory=HostLimits
    )  # what the kernel lets pyd apply (refusals, discards)
    # the OCI runtimes containers may name (None: the runtime driver's own crun for all)
    runtimes: RuntimeSet | None = None
    # daemon-wide defaults of what a container leaves unset (dockerd's cgroup-parent,
    # default-ulimits, default-shm-size, init)
    cgroup_parent: str = ""
    default_ulimits: tuple[tuple[str, int, int], ...] = ()
    default_shm_size: int = 64 * 1024 * 1024
    init: bool = False
    # min-free-space in bytes: container log writing stops below it (0: never)
    log_keep_free: int = 0


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
        self.forwarder: Any = None  # a LogForwarder when the driver is syslog


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
        # the syslog connection made at start (dockerd dials then), until forwarding takes it
        self.syslog: Any = None


def _now_nano(clock: Clock) -> int:
    return int(clock.seconds() * 1_000_000_000)


class ContainerBase:
    """State, locks, lookups and views shared by the parts of L{pyd.engine.containers.ContainerService}."""

    def __init__(
        self,
        repo: ContainerRepository,
        runtime: RuntimeDriver,
        images: ContainerImages,
        networks: NetworkProvider,
        volumes: VolumeProvider,
        events: EventSink,
        blocking: Blocking,
        clock: Clock,
        settings: ContainerSettings,
        *,
        before_start: Sequence[Callable[[str, str], Awaitable[None]]] = (),
        on_gone: Sequence[Callable[[str], None]] = (),
        rw_sizes: Callable[[Sequence[str]], Awaitable[list[int]]] | None = None,
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
        self._specs = RememberedSpecs()
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
        self.rw_sizes = rw_sizes
        self.rw_paths = rw_paths
        # The exec service's sessions of a container (inspect's ExecIDs).
        self.exec_ids = exec_ids
        self.on_gone = list(on_gone)
        # Called with each health probe run: False when the probe could not run at all (dockerd's
        # engine_daemon_health_checks_total / _failed_total).
        self.on_health_probe: list[Callable[[bool], None]] = []
        # How rotations of ctr.log are noticed (polling when None).
        self.log_watcher = log_watcher
        self._log_watches: dict[str, _LogWatch] = {}
        # Stops log writing below the free-space reserve; a resumed log may be due a rotation.
        self.log_space = LogSpaceGuard(
            settings.log_keep_free,
            settings.containers_dir,
            blocking,
            clock,
            on_resume=self._log_resumed,
        )

    def _log_resumed(self, cid: str) -> None:
        """Log writing of C{cid} resumed (overridden where logs rotate)."""

    # --- start-up and shutdown -------------------------------------------------------------------

    async def load(self) -> None:
        """Read every container into the cache (before restore)."""
        for c in await self._repo.all():
            self._cache[c.id] = c

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
        if name.count("/") > 1:
            # A legacy link name (/parent/alias) names the linked container, as in dockerd.
            for c in self._cache.values():
                for child_id, full in c.extra.get("links") or []:
                    if full == name and child_id in self._cache:
                        return self._cache[child_id]
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
            runtime=self.oci_runtime(c),
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

    def container_image_ids(self) -> dict[str, str]:
        """Every container's image id, by container id (the image store counts its users for
        C{system df} from it, all images at once)."""
        return {cid: c.image_id for cid, c in self._cache.items()}

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
            endpoints=self.spec_of(c).network.endpoints,
            networks_materialized=bool(c.extra.get("networks_materialized")),
        )

    async def endpoint_config_changed(
        self, container_id: str, network: str, endpoint: EndpointRequest | None
    ) -> None:
        """A container joined (C{config}) or left (None) C{network}: its C{EndpointsConfig},
        whose settings inspect shows (L{ContainerLookup}); once the container has started,
        its endpoint rows, not these, decide its networks."""
        c = self._cache.get(container_id)
        if c is None:
            return
        eps = dict(c.networking_config.get("EndpointsConfig") or {})
        if endpoint is None:
            eps.pop(network, None)
        else:
            eps[network] = endpoint_settings(endpoint)
        nc = {**c.networking_config, "EndpointsConfig": eps}
        await self._save(attrs.evolve(c, networking_config=nc))

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
        return await self.runtime.stats(c.id, self.cgroup_path_of(c))

    def ulimits_of(self, c: Container) -> list[tuple[str, int, int]]:
        """(name, soft, hard) of the container's rlimits: its own C{--ulimit}s, then the
        daemon's C{default-ulimits} it does not name (dockerd's mergeUlimits; inspect shows
        the same)."""
        own = [(u.name, u.soft, u.hard) for u in self.spec_of(c).resources.ulimits]
        names = {n for n, _, _ in own}
        return own + [u for u in self.settings.default_ulimits if u[0] not in names]

    @property
    def default_runtime(self) -> str:
        """The name a container that asks for no runtime gets (stored in its HostConfig)."""
        rts = self.settings.runtimes
        return rts.default if rts is not None else "crun"

    def oci_runtime(self, c: Container) -> OciRuntime | None:
        """The runtime of C{c}'s current (or last) run: the one recorded when it started, so
        a daemon restarted with other runtimes still signals, execs in and deletes it with
        the binary and state root it runs under; before any start, the one its
        C{HostConfig.Runtime} names (None: the runtime driver's default). A container of a
        pyd that recorded neither ran under crun, whatever the default is now."""
        rec = c.extra.get("oci_runtime")
        if isinstance(rec, dict) and rec.get("path") and rec.get("root"):
            return OciRuntime(
                str(rec.get("name") or ""),
                str(rec["path"]),
                str(rec["root"]),
                tuple(str(a) for a in rec.get("args") or ()),
            )
        rts = self.settings.runtimes
        name = str(c.host_config.get("Runtime") or "crun")
        return rts.get(name) if rts is not None else None

    def runtime_for_start(self, c: Container) -> OciRuntime | None:
        """The runtime C{HostConfig.Runtime} names now (a start re-reads the daemon's set).

        @raise InvalidParameter: dockerd's C{unknown or invalid runtime name: X} (the runtime
            was removed from the daemon's configuration since the container was created).
        """
        rts = self.settings.runtimes
        if rts is None:
            return None
        name = str(c.host_config.get("Runtime") or "")
        rt = rts.get(name)
        if rt is None:
            raise InvalidParameter(f"unknown or invalid runtime name: {name}")
        return rt

    @staticmethod
    def cgroup_path_of(c: Container) -> str:
        """The container's cgroups path: C{<cgroup parent>/<id>}, by default C{/pyd/<id>}."""
        return str(c.extra.get("cgroup_path") or "") or cgroup_path(c.id)

    def cgroup_path_of_ref(self, ref: str) -> str:
        """L{cgroup_path_of} a container named by id or name (docker top)."""
        return self.cgroup_path_of(self.resolve(ref))

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

    async def _save_state(self, c: Container) -> Container:
        """L{_save} for a record that differs from the stored one in its state (and restart
        count) only: the one row's state columns are written, not the whole row."""
        await self._repo.save_state(c)
        if c.id in self._cache:
            self._cache[c.id] = c
        return c

    def _attrs(self, c: Container, **more: str) -> dict[str, str]:
        # Every event reads the labels and image: straight from the stored config when they are
        # well typed (always, since the typed door), without decoding the whole spec again.
        labels = c.config.get("Labels") or {}
        image = c.config.get("Image") or ""
        if (
            isinstance(image, str)
            and isinstance(labels, dict)
            and all(
                isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in labels.items()
            )
        ):
            out = {k: v or "" for k, v in labels.items()}
        else:
            process = self.spec_of(c).process
            out, image = dict(process.labels), process.image
        out["image"] = image or c.image_ref
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
        return self._specs.spec(c.id, c.config, c.host_config, c.networking_config)

    def _cancel_restart(self, cid: str) -> bool:
        call = self._restart_calls.pop(cid, None)
        if call is not None and call.active():
            call.cancel()
            return True
        return False

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
        return (await self.sizes_of([c]))[0]

    async def sizes_of(self, cs: Sequence[Container]) -> list[tuple[int, int]]:
        """L{sizes} of each container, in order: the image sizes in one read, the writable
        layers measured at the same time (C{system df} and C{ps -s} of a thousand containers
        made a database round trip and a thread hop after another for each)."""
        image_sizes = await self._images.image_sizes() if cs else {}
        # a chunk of layers per io call, a few calls at a time: the io pool's other users
        # (starts, copies) are not queued behind all, and a thousand layers are not a thousand
        # thread hops and Deferreds
        gate = DeferredSemaphore(RW_SIZES_AT_ONCE)
        ids = [c.id for c in cs]

        async def chunk(part: Sequence[str]) -> list[int]:
            if self.rw_sizes is None:
                return [0] * len(part)
            await gate.acquire()
            try:
                return await self.rw_sizes(part)
            except (PydError, OSError):
                return [0] * len(part)
            finally:
                gate.release()

        parts = [ids[i : i + RW_SIZES_CHUNK] for i in range(0, len(ids), RW_SIZES_CHUNK)]
        results = [
            rw
            for sizes in await gatherResults(
                [Deferred.fromCoroutine(chunk(p)) for p in parts], consumeErrors=True
            )
            for rw in sizes
        ]
        return [
            (rw, rw + image_sizes.get(c.image_id, 0)) for c, rw in zip(cs, results, strict=True)
        ]

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
        memory_swappiness=r.memory_swappiness,
        kernel_memory_tcp=r.kernel_memory_tcp,
        cpu_realtime_period=r.cpu_realtime_period,
        cpu_realtime_runtime=r.cpu_realtime_runtime,
    )


# What a live docker update writes into a running container's cgroups: as moby 28's
# daemon/update_linux.go toContainerdResources, CPU (shares, quota, period, cpuset), memory
# (limit, reservation, swap), pids and the blkio weight. The others (real-time CPU, the OOM
# killer, swappiness, kernel TCP) are stored and take effect at the next start: the kernel
# refuses a real-time budget for a child its parent has none for (a 500 before).
_LIVE = {
    "cpu": ("shares", "quota", "period", "cpus", "mems"),
    "memory": ("limit", "reservation", "swap"),
    "pids": ("limit",),
    "blockIO": ("weight",),
}


def live_update_resources(res: dict[str, Any]) -> dict[str, Any]:
    """The part of an OCI C{linux.resources} a live update applies (see L{_LIVE})."""
    out: dict[str, Any] = {}
    for section, keys in _LIVE.items():
        kept = {k: v for k, v in (res.get(section) or {}).items() if k in keys}
        if kept:
            out[section] = kept
    return out


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
        e.update(ipv6="", ipv6_prefixlen=0, ipv6_gateway="")
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
