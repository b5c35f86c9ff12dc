"""The composition root: wires every area by construction and builds the service tree (layer:
daemon).

L{build_service} takes the drivers (L{pyd.daemon.drivers}) and builds each object once, with all
it needs passed to its constructor: nothing is completed by setting attributes afterwards. Where
two areas need each other (images and containers, networking and containers, the DNS resolver
and networking, containers and the attach/exec services), the one built first is given a narrow
callable or adapter that reaches the other when it is called, which is only once the daemon runs.

Fail-fast checks (data-root lock, pidfile, stale socket, TLS files) run here, before the reactor
runs, so they may block.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import attrs
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel

from pyd.api.authz import Authorizer, Policy, ServiceLookup
from pyd.api.build import BuildRouter
from pyd.api.cluster import ClusterRouter
from pyd.api.container_streams import ContainerStreamsRouter
from pyd.api.containers import ContainersDiskUsage, ContainersRouter
from pyd.api.distribution import DistributionHandlers, DistributionRouter
from pyd.api.exec import ExecRouter
from pyd.api.images import ImagesDiskUsage, ImagesRouter
from pyd.api.metrics import MetricsRouter
from pyd.api.networks import NetworksRouter
from pyd.api.root import ENGINE_VERSION, ApiRoot, ApiSite
from pyd.api.system import SystemRouter
from pyd.api.volumes import VolumesDiskUsage, VolumesRouter
from pyd.config import ConfigError, DaemonConfig
from pyd.config.dockerd import builder_allows_host_network, builder_allows_insecure
from pyd.core.seams import Blocking, IDaemonReactor
from pyd.core.telemetry import Telemetry
from pyd.daemon.drivers import DriverFactory, Drivers, keep_free_bytes, resolve_runtimes
from pyd.daemon.guard import raise_fd_limit
from pyd.daemon.listeners import build_listeners
from pyd.daemon.logs import LogLevelControl
from pyd.daemon.pidlock import StartupError, lock_data_root, remove_file, write_pidfile
from pyd.daemon.tree import Lifecycle, PydService
from pyd.drivers.process import ProcessRunner
from pyd.drivers.registry import HTTPClients
from pyd.drivers.runtime.oci import RuntimeSet
from pyd.engine.archive import ArchiveService
from pyd.engine.builder import scratch as build_scratch
from pyd.engine.builder.adapters import ContainersAdapter, DistributionPuller
from pyd.engine.builder.builder import BuildService
from pyd.engine.commit import CommitService
from pyd.engine.components import ComponentVersions
from pyd.engine.confinement import Confinement
from pyd.engine.containers import ContainerService, ContainerSettings, LogsRequest
from pyd.engine.distribution.lazy import LazyDistribution
from pyd.engine.events import EventService
from pyd.engine.exec import ExecService
from pyd.engine.honoured import HostLimits
from pyd.engine.images import ImageService
from pyd.engine.metrics import StatsService, TopService
from pyd.engine.networks import ContainerRef, NetworkConfig, NetworkService, ServiceNameTable
from pyd.engine.spec import EndpointRequest
from pyd.engine.streams import AttachService
from pyd.engine.system import SystemService
from pyd.engine.users import resolve_user
from pyd.engine.volumes import VolumeService
from pyd.state import meta
from pyd.state.containers import ContainerRepository
from pyd.state.db import Database, make_engine
from pyd.state.events import EventRepository
from pyd.state.images import ImageRepository
from pyd.state.networks import NetworkRepository
from pyd.state.volumes import VolumeRepository

if TYPE_CHECKING:
    from pyd.engine.distribution import DistributionService, DistributionSettings

log = Logger()

__all__ = ["StartupError", "build_service"]


def build_service(
    config: DaemonConfig,
    reactor: IDaemonReactor,
    drivers: DriverFactory,
    config_loader: Callable[[], DaemonConfig] | None = None,
) -> PydService:
    """Wire the whole daemon (blocking checks allowed: the reactor is not running yet).

    @param drivers: makes the drivers once the data root is locked (L{real_drivers} in a daemon).
    @param config_loader: re-reads the configuration on SIGHUP (None: SIGHUP changes nothing).
    """
    for d in (config.data_root, config.exec_root):
        os.makedirs(d, mode=0o711, exist_ok=True)
    lock_fd = lock_data_root(config.data_root)
    raise_fd_limit()
    life = Lifecycle()
    life.cleanup.append(lambda: os.close(lock_fd))
    if config.pidfile:
        write_pidfile(config.pidfile)
        life.cleanup.append(remove_file(config.pidfile))
    try:
        confine = Confinement.from_option(config.seccomp_profile, config.no_new_privileges)
    except ValueError as e:
        raise StartupError(str(e)) from None
    drv = drivers(config, reactor)
    io = drv.io
    db = Database(make_engine(os.path.join(config.data_root, "pyd.db")), drv.db_blocking)
    telemetry = Telemetry()
    log_control = LogLevelControl(config.effective_log_level())
    events = EventService(EventRepository(db, config.events_retention), reactor)

    # Volumes: their mounts are released when a container dies.
    volumes = VolumeService(VolumeRepository(db), drv.volumes, events)

    def on_event(ev: Any) -> None:
        telemetry.count_event()
        if ev.type == "container" and ev.action == "die":
            d = ensureDeferred(volumes.container_stopped(ev.actor_id))
            d.addErrback(lambda f: log.failure("unmounting volumes after die", f))

    events.subscribe(on_event)

    # Images need the container service (which needs them) for the removal rules.
    images = ImageService(
        ImageRepository(db, later=lambda fn: reactor.callLater(0, fn)),
        drv.layers,
        io,
        events,
        reactor,
        lambda image_id: containers.containers_using(image_id),
        container_image_ids=lambda: containers.container_image_ids(),
        fetcher=drv.fetcher,
        docker_version=ENGINE_VERSION,
        on_action=telemetry.observe_image_action,
    )
    dist, dist_settings = _distribution(config, reactor, drv.registry, io, images, telemetry)
    life.reload_hooks.append(dist_settings)

    # Networking: netlink, one nft table of ours, the resolver for user networks. It asks the
    # container service (built next, over it) about containers.
    networks = NetworkService(
        NetworkRepository(db),
        drv.netlink,
        drv.firewall,
        drv.resolver(ServiceNameTable(lambda: networks)),
        io,
        events,
        NetworkConfig.from_daemon(config),
        lookup=_ContainersForNetworks(lambda: containers),
        on_endpoints_changed=[
            lambda cid, eps, resolv: containers.endpoints_changed(cid, eps, resolv)
        ],
        # The daemon's id is read before networks start (life.start's order).
        host_id=lambda: system.daemon_id,
        proxy=drv.proxy,
    )

    settings = ContainerSettings(
        containers_dir=os.path.join(config.data_root, "containers"),
        ncpu=drv.host.ncpu,
        cap_bounding=drv.cap_bounding,
        init_path=drv.init_path,
        dns=tuple(config.dns),
        dns_search=tuple(config.dns_search),
        dns_options=tuple(config.dns_opts),
        log_driver=config.log_driver,
        log_opts=dict(config.log_opts),
        host_hostname=drv.host.hostname,
        confinement=confine,
        cgroup_v2=drv.host.cgroup_version == "2",
        limits=HostLimits.of(drv.host.features, runtimes=drv.runtimes.names),
        runtimes=drv.runtimes,
        cgroup_parent=config.cgroup_parent,
        default_ulimits=tuple((n, s, h) for n, (s, h) in sorted(config.default_ulimits.items())),
        default_shm_size=config.default_shm_size,
        init=config.init,
        log_keep_free=keep_free_bytes(config),
    )
    os.makedirs(settings.containers_dir, mode=0o700, exist_ok=True)
    # The attach and exec services are built over the container service; it calls them back.
    containers = ContainerService(
        ContainerRepository(db),
        drv.runtime,
        images,
        networks,
        volumes,
        events,
        io,
        reactor,
        settings,
        before_start=[lambda cid, sock: attach.before_start(cid, sock)],
        on_gone=[lambda cid: attach.container_gone(cid), lambda cid: execs.container_gone(cid)],
        rw_sizes=images.rw_layer_sizes,
        rw_paths=images.rw_layer_paths,
        exec_ids=lambda cid: execs.container_execs(cid),
        log_watcher=drv.log_watcher,
    )
    containers.on_health_probe.append(telemetry.count_health_check)
    telemetry.set_container_state_source(
        lambda: collections.Counter(c.state.status for c in containers.list_all())
    )
    attach = AttachService(containers, events, reactor, io, log_reader=_log_reader(containers))
    execs = ExecService(
        containers,
        drv.exec_driver,
        events,
        io,
        reactor,
        os.path.join(config.exec_root, "exec"),
        resolve_user=resolve_user,
    )
    archive = ArchiveService(
        containers,
        images,
        drv.helpers,
        io,
        os.path.join(config.data_root, "tmp", "streams"),
        events=events,
    )
    # The classic builder: scratch space under <data-root>/builder; RUN steps go through the
    # container service, layers through the image service, FROM pulls through distribution.
    builds = BuildService(
        images,
        ContainersAdapter(containers, lambda: LogsRequest(follow=True, stdout=True, stderr=True)),
        io,
        os.path.join(config.data_root, "builder"),
        reactor,
        puller=DistributionPuller(lambda: dist, images),
        docker_version=ENGINE_VERSION,
        allow_insecure=builder_allows_insecure(config.builder),
        allow_host_network=builder_allows_host_network(config.builder),
        max_context_size=config.max_build_context_size,
        max_layer_size=config.max_layer_size,
        keep_free=keep_free_bytes(config),
        # small contexts are unpacked in /dev/shm when it is a tmpfs (docs/build.md)
        memory_root=build_scratch.memory_root(config.data_root),
        experimental=bool(config.experimental),
    )
    builds.on_build.append(telemetry.count_build)
    system = SystemService(
        "",
        drv.host,
        config,
        runtimes=drv.runtimes,
        contributors=[
            VolumesDiskUsage(volumes),
            ImagesDiskUsage(images),
            ContainersDiskUsage(containers, reactor),
            builds,
        ],
        blocking=io,
        security_options=confine.security_options(drv.host.cgroup_version == "2"),
    )

    async def load_identity() -> None:
        system.daemon_id = await db.transaction(
            lambda conn: meta.get_or_create(conn, "daemon_id", _new_daemon_id())
        )

    routers: list[Any] = [
        SystemRouter(
            system,
            events,
            reactor,
            ComponentVersions(drv.runner, _default_runtime(drv), drv.init_path),
        ),
        ClusterRouter(),
        VolumesRouter(volumes),
        NetworksRouter(networks),
        ImagesRouter(
            images,
            commits=CommitService(containers, images, events),
            distribution=DistributionHandlers(dist),
        ),
        ContainersRouter(containers, reactor),
        ContainerStreamsRouter(attach, archive),
        ExecRouter(execs),
        MetricsRouter(
            TopService(
                containers,
                drv.runner,
                lambda cid: drv.container_pids(containers.cgroup_path_of_ref(cid)),
            ),
            StatsService(
                containers,
                lambda cid: drv.runtime.stats(cid, containers.cgroup_path_of_ref(cid)),
                io,
            ),
            reactor,
        ),
        BuildRouter(builds),
        DistributionRouter(dist),
    ]
    authorizer = Authorizer(
        Policy.from_config(config), ServiceLookup(containers, volumes, execs, networks)
    )
    site = ApiSite(
        ApiRoot(routers, guard=authorizer),
        observers=[_request_metrics(telemetry)],
        debug_enabled=lambda: log_control.predicate.defaultLogLevel <= LogLevel.debug,
        header_timeout=config.header_timeout,
        # idle keep-alive connections close after dockerd's 5 minutes (Go: IdleTimeout falls
        # back to its ReadHeaderTimeout), not twisted.web's 12 hours
        timeout=300,
    )
    telemetry.set_gauge_source(
        "pyd_event_subscribers", "Clients following /events", lambda: events.subscriber_count
    )
    telemetry.set_gauge_source(
        "engine_daemon_events_subscribers_total",
        "The number of current subscribers to events",
        lambda: events.subscriber_count,
    )
    h = drv.host
    telemetry.set_engine_info(
        {
            "architecture": h.arch,
            "commit": "",
            "daemon_id": "",
            "graphdriver": "overlay2",
            "kernel": h.kernel,
            "os": h.os_name,
            "os_type": "linux",
            "os_version": h.features.os_version,
            "version": ENGINE_VERSION,
        },
        h.ncpu,
        h.mem_total,
    )

    # Start in this order once the schema is at head; stop hooks run in reverse.
    life.start += [
        lambda: ensureDeferred(load_identity()),
        lambda: ensureDeferred(volumes.start()),
        lambda: ensureDeferred(images.start()),
        lambda: ensureDeferred(networks.start()),
        lambda: ensureDeferred(containers.startup()),
        lambda: ensureDeferred(dist.clean_staging()),
        lambda: ensureDeferred(builds.start()),
    ]
    life.stop += [
        lambda: ensureDeferred(builds.stop()),
        lambda: ensureDeferred(networks.stop()),
        containers.shutdown,
        drv.log_watcher.close,
        drv.registry.close,
    ]

    def apply(old: DaemonConfig, new: DaemonConfig) -> None:
        """What SIGHUP changes in the core wiring: log level, /info's view of config, roles."""
        log_control.set_level(new.effective_log_level())
        system.config = new
        authorizer.policy = Policy.from_config(new)

    life.reload_hooks.append(apply)
    _reload_runtimes(life, io, drv.runner, containers, system)
    life.start.append(lambda: ensureDeferred(_set_runtime_status(system, drv.runner, drv.runtimes)))
    listeners = build_listeners(config, reactor, site, telemetry, life)
    return PydService(
        config,
        reactor,
        db=db,
        io=io,
        runner=drv.runner,
        pools=drv.pools,
        lifecycle=life,
        listeners=listeners,
        site=site,
        telemetry=telemetry,
        log_control=log_control,
        config_loader=config_loader,
    )


class _ContainersForNetworks:
    """L{pyd.engine.networks.ContainerLookup} over the container service, which is built after
    networking (it needs it): reached through C{service} when networking asks."""

    def __init__(self, service: Callable[[], ContainerService]) -> None:
        self._service = service

    async def network_container(self, ref: str) -> ContainerRef:
        """The container C{ref} names. @raise NotFound: no such container."""
        return await self._service().network_container(ref)

    async def networks_materialized(self, container_id: str) -> None:
        """Record that the container's create-time networks are endpoint rows now."""
        await self._service().networks_materialized(container_id)

    async def endpoint_config_changed(
        self, container_id: str, network: str, endpoint: EndpointRequest | None
    ) -> None:
        """A never-started container joined or left C{network} (what inspect shows)."""
        await self._service().endpoint_config_changed(container_id, network, endpoint)


def _distribution(
    config: DaemonConfig,
    reactor: IReactorTime,
    http: HTTPClients,
    io: Blocking,
    images: ImageService,
    telemetry: Telemetry,
) -> tuple[DistributionService, Callable[[DaemonConfig, DaemonConfig], None]]:
    """Pull/push/login over the registry client, built on first use (L{LazyDistribution}); its
    settings and certs.d follow SIGHUP (the returned reload hook)."""
    current = [config]
    staging = os.path.join(config.data_root, "tmp", "distribution")

    def settings() -> DistributionSettings:
        from pyd.engine.distribution import DistributionSettings

        c = current[0]
        return DistributionSettings(
            tuple(c.insecure_registries),
            tuple(c.registry_mirrors),
            c.max_concurrent_downloads,
            c.max_concurrent_uploads,
        )

    def build() -> DistributionService:
        from pyd.engine.distribution import DistributionService

        return DistributionService(
            images,  # the image store (RegistryImages)
            http,
            io,
            staging,
            settings,
            reactor,
            on_pull_bytes=telemetry.add_pull_bytes,
            on_action=telemetry.observe_image_action,
        )

    def apply(old: DaemonConfig, new: DaemonConfig) -> None:
        current[0] = new
        http.reload_certs()

    # the handlers call it as the service it stands for
    return cast("DistributionService", LazyDistribution(build, io, staging)), apply


FEATURES_KEY = "org.opencontainers.runtime-spec.features"


async def runtime_status(runner: ProcessRunner, rts: RuntimeSet) -> dict[str, dict[str, str]]:
    """dockerd's C{Runtimes[name].status}: C{<path> features} of each runtime (its OCI features,
    as compact JSON under L{FEATURES_KEY}); a runtime without that command (crun 1.8) gets
    none, as in dockerd, which logs the failure."""
    out: dict[str, dict[str, str]] = {}
    by_path: dict[str, dict[str, str]] = {}
    for name in rts.shown:
        rt = rts.get(name)
        if rt is None:
            continue
        if rt.path not in by_path:
            result = await runner.run([rt.path, "features"])
            status: dict[str, str] = {}
            if result.rc == 0:
                try:
                    features = json.loads(result.stdout)
                except ValueError:
                    features = None
                if isinstance(features, dict):
                    status[FEATURES_KEY] = json.dumps(features, separators=(",", ":"))
            if not status:
                log.info(
                    "runtime {name}: no OCI features ({path} features)", name=name, path=rt.path
                )
            by_path[rt.path] = status
        if by_path[rt.path]:
            out[name] = by_path[rt.path]
    return out


async def _set_runtime_status(
    system: SystemService, runner: ProcessRunner, rts: RuntimeSet
) -> None:
    system.runtime_status = await runtime_status(runner, rts)


def _reload_runtimes(
    life: Lifecycle,
    io: Blocking,
    runner: ProcessRunner,
    containers: ContainerService,
    system: SystemService,
) -> None:
    """SIGHUP re-reads C{runtimes} and C{default-runtime}, as dockerd's reloadPlatform: the new
    set is resolved first (a binary that is not installed refuses the whole reload, naming it),
    then containers started from now on and C{docker info} use it; running ones keep the
    runtime they started under (it is recorded with their run)."""
    resolved: list[tuple[RuntimeSet, dict[str, dict[str, str]]]] = []

    async def check(new: DaemonConfig) -> None:
        resolved.clear()
        try:
            rts = await io.run(resolve_runtimes, new)
        except StartupError as e:
            raise ConfigError(str(e)) from None
        resolved.append((rts, await runtime_status(runner, rts)))

    def apply(old: DaemonConfig, new: DaemonConfig) -> None:
        if not resolved or (old.runtimes, old.default_runtime) == (
            new.runtimes,
            new.default_runtime,
        ):
            return
        rts, status = resolved[0]
        settings = containers.settings
        containers.settings = attrs.evolve(
            settings, runtimes=rts, limits=attrs.evolve(settings.limits, runtimes=rts.names)
        )
        system.runtimes = dict(rts.shown)
        system.default_runtime = rts.default
        system.runtime_status = status
        log.info(
            "SIGHUP: runtimes now {names}, default {default}",
            names=", ".join(sorted(rts.shown)),
            default=rts.default,
        )

    life.reload_checks.append(lambda new: ensureDeferred(check(new)))
    life.reload_hooks.append(apply)


def _request_metrics(telemetry: Telemetry) -> Callable[[str, str, int, float], None]:
    """Feed the request metrics from the API site."""

    def on_request(path: str, method: str, status: int, seconds: float) -> None:
        telemetry.observe_request(path, method, status, seconds)
        telemetry.observe_action(path, method, status, seconds)
        if status == 204 and method == "POST" and path.endswith("/start"):
            telemetry.observe_container_start(seconds)

    return on_request


class _LogReplay:
    """C{attach?logs=1}: a container's log read in bounded batches (the logs endpoint's reader)."""

    def __init__(self, containers: ContainerService, tail: Any, req: LogsRequest) -> None:
        self._containers = containers
        self._tail = tail
        self._req = req

    async def next_batch(self) -> tuple[list[tuple[int, bytes]], bool]:
        entries, more = await self._containers.next_logs(self._tail, self._req)
        return [(2 if e.stream == "stderr" else 1, e.data) for e in entries], more

    def close(self) -> None:
        self._tail.close()


def _log_reader(containers: ContainerService) -> Any:
    """C{attach?logs=1}: the container's log, opened (a refusal comes before the hijack)."""

    async def open_(cid: str) -> _LogReplay:
        req = LogsRequest(stdout=True, stderr=True)
        _, tail = await containers.open_logs(cid, req)
        return _LogReplay(containers, tail, req)

    return open_


def _default_runtime(drv: Drivers) -> tuple[str, str] | None:
    """(name, binary) of the default OCI runtime, for docker version's components."""
    rt = drv.runtimes.get("")
    return (drv.runtimes.default, rt.path) if rt is not None else None


def _new_daemon_id() -> str:
    import uuid

    return str(uuid.uuid4()).upper()
