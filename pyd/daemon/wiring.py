"""The composition root: builds the service tree and wires every area (layer: service).

Start order: thread pools, database (schema upgraded in the DB thread), engine start hooks
(reconcile containers, networks...), then the listeners. Stop runs in reverse: listeners first,
the database last. Fail-fast checks (data-root lock, pidfile, stale socket) run in
L{build_service}, before the reactor runs, so they may block.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import grp
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import attrs
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet import tcp, unix
from twisted.internet.defer import Deferred, ensureDeferred, execute
from twisted.internet.endpoints import AdoptedStreamServerEndpoint, serverFromString
from twisted.internet.interfaces import IOpenSSLContextFactory, IStreamServerEndpoint
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.threadpool import ThreadPool
from twisted.web import server
from zope.interface import implementer

from pyd import config as cfgmod
from pyd.api.authz import Authorizer, Policy, ServiceLookup
from pyd.api.build import BuildRouter
from pyd.api.cluster import ClusterRouter
from pyd.api.container_streams import ContainerStreamsRouter
from pyd.api.containers import ContainersRouter
from pyd.api.exec import ExecRouter
from pyd.api.images import ImagesDiskUsage, ImagesRouter
from pyd.api.networks import NetworksRouter
from pyd.api.prometheus import MetricsRoot
from pyd.api.root import ENGINE_VERSION, ApiRoot, ApiSite
from pyd.api.system import SystemRouter
from pyd.api.volumes import VolumesDiskUsage, VolumesRouter
from pyd.config import DaemonConfig, ListenSpec, parse_host
from pyd.core.seams import ThreadPoolBlocking
from pyd.core.telemetry import Telemetry
from pyd.drivers.fswatch import DirWatcher
from pyd.drivers.network.dns import DnsServer
from pyd.drivers.network.netlink import NetlinkDriver
from pyd.drivers.network.nft import FirewallDriver, table_name
from pyd.drivers.process import ReactorProcessRunner
from pyd.drivers.runtime.conmon import ConmonRuntime
from pyd.drivers.runtime.spec import cap_bounding_set
from pyd.drivers.storage.fetch import UrlFetcher
from pyd.drivers.storage.layers import HelperExtractor, LayerStore
from pyd.drivers.streams.execs import ConmonExecDriver
from pyd.drivers.volumes.local import LocalVolumeDriver
from pyd.engine.archive import ArchiveService
from pyd.engine.build.adapters import (
    ContainersAdapter,
    DistributionPuller,
    ImageStoreAdapter,
)
from pyd.engine.build.builder import BuildService
from pyd.engine.containers import ContainerService, ContainerSettings, LogsRequest
from pyd.engine.contracts import ImageProvider, VolumeProvider
from pyd.engine.events import EventService
from pyd.engine.exec import ExecService
from pyd.engine.images import ImageService
from pyd.engine.networks import NetworkConfig, NetworkService, ServiceNameTable
from pyd.engine.streams import AttachService
from pyd.engine.system import HostFacts, SystemService
from pyd.engine.users import resolve_user
from pyd.engine.volumes import VolumeService
from pyd.state import meta, migrate
from pyd.state.containers import ContainerRepository
from pyd.state.db import Database, make_engine
from pyd.state.events import EventRepository
from pyd.state.images import ImageRepository
from pyd.state.networks import NetworkRepository
from pyd.state.volumes import VolumeRepository

log = Logger()

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "fatal": LogLevel.critical,
}


class StartupError(Exception):
    """The daemon cannot start; the message says why (printed by twistd)."""


class PoolService(Service):
    """A named thread pool, started and stopped with the tree."""

    def __init__(self, name: str, size: int) -> None:
        self.pool = ThreadPool(minthreads=1, maxthreads=size, name=name)

    def startService(self) -> None:
        """Start the threads."""
        super().startService()
        self.pool.start()

    def stopService(self) -> None:
        """Join the threads (after the services above have stopped using them)."""
        super().stopService()
        self.pool.stop()


class LogLevelControl:
    """Puts a level filter in front of twistd's observers; the level can change at run time."""

    def __init__(self, level: str) -> None:
        self.predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS[level])
        self._installed: list[tuple[ILogObserver, ILogObserver]] = []

    def set_level(self, level: str) -> None:
        """Apply a new level to every namespace."""
        self.predicate.defaultLogLevel = LEVELS[level]
        self.predicate.clearLogLevels()

    def install(self) -> None:
        """Wrap the observers twistd installed (they exist once the reactor runs)."""
        # LogPublisher keeps its observers private; this is the one place we reach in.
        observers = list(getattr(globalLogPublisher, "_observers", []))
        for obs in observers:
            if isinstance(obs, FilteringLogObserver):
                continue
            wrapped = FilteringLogObserver(obs, [self.predicate])
            globalLogPublisher.removeObserver(obs)
            globalLogPublisher.addObserver(wrapped)
            self._installed.append((obs, wrapped))

    def uninstall(self) -> None:
        """Put twistd's observers back as they were."""
        for obs, wrapped in self._installed:
            globalLogPublisher.removeObserver(wrapped)
            globalLogPublisher.addObserver(obs)
        self._installed.clear()


class StallWatchdog:
    """In debug mode, logs reactor stalls: a 50 ms tick that arrives over 100 ms late."""

    def __init__(self, clock: Any, interval: float = 0.05, threshold: float = 0.1) -> None:
        from twisted.internet.task import LoopingCall

        self._clock = clock
        self.interval = interval
        self.threshold = threshold
        self._last = 0.0
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock

    def _tick(self) -> None:
        now = self._clock.seconds()
        late = now - self._last - self.interval
        if self._last and late > self.threshold:
            log.warn("reactor stalled for {ms:.0f} ms", ms=late * 1000)
        self._last = now

    def start(self) -> None:
        """Begin ticking."""
        self._last = 0.0
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        """Stop ticking."""
        if self._loop.running:
            self._loop.stop()


def _release_free_memory() -> None:
    """Give the heap freed during start-up (imports, schema checks, reconciliation) back to the
    system: glibc keeps it otherwise, and it shows as resident memory for the daemon's life."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


class PydService(MultiService):
    """The daemon: pools and DB as children; listeners started only once the engine is ready."""

    def __init__(self, config: DaemonConfig, reactor: Any) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.listeners = MultiService()
        self.start_hooks: list[Callable[[], Deferred[Any]]] = []
        self.stop_hooks: list[Callable[[], Deferred[Any] | None]] = []
        self.cleanup: list[Callable[[], None]] = []
        self.ready: Deferred[None] = Deferred()
        self.log_control = LogLevelControl(config.effective_log_level())
        self.db: Database | None = None
        self.unix_sockets: list[tuple[str, ListenSpec]] = []
        # SIGHUP: config_loader re-reads flags + daemon.json; reload_hooks apply a new config
        # (each gets (old, new) and may raise ConfigError to refuse it; see reload()).
        self.config_loader: Callable[[], DaemonConfig] | None = None
        self.reload_checks: list[Callable[[DaemonConfig], Any]] = []
        self.reload_hooks: list[Callable[[DaemonConfig, DaemonConfig], None]] = []
        self.reloading: Deferred[list[str]] | None = None
        self.io: ThreadPoolBlocking | None = None
        # Prometheus metrics; areas record through it (see pyd.core.telemetry).
        self.telemetry = Telemetry()
        self.distribution: Any = None  # pull/push/login (pyd.engine.distribution)
        self._old_sighup: Any = None

    def startService(self) -> None:
        """Start pools and DB, then upgrade, run start hooks, then listen."""
        self.log_control.install()
        if self.config.effective_log_level() == "debug":
            self.watchdog = StallWatchdog(self.reactor)
            self.watchdog.start()
            self.cleanup.append(self.watchdog.stop)
        super().startService()
        d = ensureDeferred(self._start())
        d.addErrback(self._start_failed)

    async def _start(self) -> None:
        assert self.db is not None
        backup_dir = os.path.join(self.config.data_root, "backups")
        saved = await self.db.run(lambda conn: migrate.backup_before_upgrade(conn, backup_dir))
        if saved:
            log.info("schema upgrade ahead: database saved to {path}", path=saved)
        await self._upgrade_schema()
        for hook in self.start_hooks:
            await hook()
        for svc in self.listeners:
            # Make a failed listen() raise here (and fail the start) instead of only being logged.
            svc._raiseSynchronously = True  # type: ignore[attr-defined]
        self.listeners.startService()
        self._chown_sockets()
        self._install_sighup()
        log.info("pyd ready, API listening on {hosts}", hosts=",".join(self.config.default_hosts()))
        sd_notify(
            f"READY=1\nSTATUS=serving on {','.join(self.config.default_hosts())}\nMAINPID={os.getpid()}"
        )
        self.ready.callback(None)
        _release_free_memory()

    async def _upgrade_schema(self) -> None:
        """Bring the schema to head. For a database file Alembic runs in a child process, so
        its imports (~10 MB resident) never stay in the daemon; at head nothing runs at all."""
        assert self.db is not None
        at_head = await self.db.run(
            lambda conn: migrate.current_revision(conn) == migrate.head_revision()
        )
        if at_head:
            return
        path = self.db.engine.url.database
        if not path or path == ":memory:":
            await self.db.transaction(migrate.upgrade)
            return
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        result = await ReactorProcessRunner(self.reactor).run(
            [sys.executable, "-m", "pyd.state.migrate", path], env=env
        )
        if result.rc != 0:
            raise RuntimeError(
                "schema upgrade failed: " + result.stderr.decode("utf-8", "replace").strip()
            )

    def _start_failed(self, failure: Any) -> None:
        log.failure("pyd failed to start", failure)
        self.ready.errback(failure)
        self.reactor.stop()

    def _chown_sockets(self) -> None:
        group = self.config.group
        if not group:
            return
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            log.warn("group {group} not found; the API socket stays root-only", group=group)
            return
        for path, _spec in self.unix_sockets:
            try:
                os.chown(path, 0, gid)
            except OSError as e:
                log.warn("could not chown {path}: {err}", path=path, err=e)

    def _install_sighup(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # tests driving the service from a thread: no signals there
        self._old_sighup = signal.getsignal(signal.SIGHUP)

        def on_hup(signum: int, frame: Any) -> None:
            self.reactor.callFromThread(self.reload)

        signal.signal(signal.SIGHUP, on_hup)

    def _uninstall_sighup(self) -> None:
        old = getattr(self, "_old_sighup", None)
        if old is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, old)
            self._old_sighup = None

    def reload(self) -> Deferred[list[str]]:
        """Re-read the configuration and apply what may change at run time (SIGHUP).

        Like dockerd: the log level, labels, registry mirrors and insecure registries, the TLS
        material and role settings change; other keys that differ are reported as needing a
        restart. An invalid new configuration is refused as a whole and the old one kept.

        @return: the names of the keys that changed (empty when refused or unchanged).
        """
        if self.reloading is not None:
            return self.reloading
        d = ensureDeferred(self._reload())

        def done(result: list[str]) -> list[str]:
            self.reloading = None
            return result

        self.reloading = d.addBoth(done)
        return self.reloading

    async def _reload(self) -> list[str]:
        if self.config_loader is None:
            log.warn("SIGHUP: this daemon was not started with a reloadable configuration")
            return []
        sd_notify("RELOADING=1\nSTATUS=reloading configuration")
        old = self.config
        try:
            loaded = await self._io_run(self.config_loader)
            for check in self.reload_checks:
                r = check(loaded)
                if isinstance(r, Deferred):
                    await r
        except (cfgmod.ConfigError, OSError, ValueError) as e:
            log.error(
                "SIGHUP: refusing the new configuration, keeping the old one: {err}", err=str(e)
            )
            sd_notify("READY=1\nSTATUS=serving (reload refused: see log)")
            self.telemetry.reloads.labels("refused").inc()
            return []
        changed: dict[str, Any] = {}
        restart: list[str] = []
        for opt in cfgmod.OPTIONS:
            before, after = getattr(old, opt.attr), getattr(loaded, opt.attr)
            if before == after:
                continue
            if opt.reload:
                changed[opt.attr] = after
            else:
                restart.append(opt.key)
        new = attrs.evolve(old, **changed)  # type: ignore[misc]  # DaemonConfig is attrs-made at run time
        self.config = new
        for hook in self.reload_hooks:
            try:
                hook(old, new)
            except Exception:  # noqa: BLE001  # one failing area must not stop the others
                log.failure("SIGHUP: applying the new configuration failed in {hook}", hook=hook)
        for attr in changed:
            opt = cfgmod.BY_ATTR[attr]
            log.info(
                "SIGHUP: {key} changed: {before!r} -> {after!r}",
                key=opt.key,
                before=getattr(old, attr),
                after=getattr(new, attr),
            )
        if restart:
            log.warn("SIGHUP: changed but only applied at restart: {keys}", keys=", ".join(restart))
        log.info(
            "SIGHUP: configuration reloaded ({n} change(s): {keys})",
            n=len(changed),
            keys=", ".join(cfgmod.BY_ATTR[a].key for a in changed) or "none",
        )
        sd_notify("READY=1\nSTATUS=serving (configuration reloaded)")
        self.telemetry.reloads.labels("applied").inc()
        return [cfgmod.BY_ATTR[a].key for a in changed]

    async def _io_run(self, fn: Callable[[], Any]) -> Any:
        if self.io is None:
            return fn()
        return await self.io.run(fn)

    def stopService(self) -> Deferred[None]:
        """Stop listening first, then the engine, then DB and pools; remove socket and pidfile."""
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        sd_notify("STOPPING=1\nSTATUS=shutting down")
        self._uninstall_sighup()
        if self.listeners.running:
            await self.listeners.stopService()
        for hook in reversed(self.stop_hooks):
            r = hook()
            if r is not None:
                await r
        await super().stopService()
        if self.db is not None:
            self.db.close()
        for fn in reversed(self.cleanup):
            fn()
        self.log_control.uninstall()


def _lock_data_root(path: str) -> int:
    fd = os.open(os.path.join(path, "pyd.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StartupError(f"another pyd daemon is using the data root {path}") from e
        raise
    return fd


def _write_pidfile(path: str) -> None:
    try:
        with open(path) as f:
            old = int(f.read().strip() or "0")
    except (OSError, ValueError):
        old = 0
    if old and old != os.getpid():
        try:
            os.kill(old, 0)
        except ProcessLookupError:
            pass
        except PermissionError:
            raise StartupError(
                f"pid file found, ensure pyd is not running or delete {path}"
            ) from None
        else:
            raise StartupError(f"pid file found, ensure pyd is not running or delete {path}")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def _clear_stale_socket(path: str) -> None:
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1)
        s.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: a leftover of a killed daemon
    else:
        raise StartupError(f"another daemon is already serving {path}")
    finally:
        s.close()


def _remove(path: str) -> Callable[[], None]:
    def fn() -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    return fn


def build_service(config: DaemonConfig, reactor: Any) -> IService:
    """Wire the whole daemon (blocking checks allowed: the reactor is not running yet)."""
    for d in (config.data_root, config.exec_root):
        os.makedirs(d, mode=0o711, exist_ok=True)
    lock_fd = _lock_data_root(config.data_root)
    top = PydService(config, reactor)
    top.cleanup.append(lambda: os.close(lock_fd))
    if config.pidfile:
        _write_pidfile(config.pidfile)
        top.cleanup.append(_remove(config.pidfile))

    db_pool = PoolService("pyd-db", 1)
    io_pool = PoolService("pyd-io", 4)
    db_pool.setServiceParent(top)
    io_pool.setServiceParent(top)
    db = Database(
        make_engine(os.path.join(config.data_root, "pyd.db")),
        ThreadPoolBlocking(reactor, db_pool.pool),
    )
    top.db = db
    io = ThreadPoolBlocking(reactor, io_pool.pool)

    events = EventService(EventRepository(db, config.events_retention), reactor)
    system = SystemService("", HostFacts.read(), config)

    async def load_identity() -> None:
        system.daemon_id = await db.transaction(
            lambda conn: meta.get_or_create(conn, "daemon_id", _new_daemon_id())
        )

    top.start_hooks.append(lambda: ensureDeferred(load_identity()))
    _ = io  # handed to area services as they are wired in
    volumes, volumes_router = _wire_volumes(top, config, db, io, events, system, reactor)
    images, images_router = _wire_images(top, config, db, io, events, system, reactor)
    networks, networks_router = _wire_networks(top, config, db, io, events, reactor)
    containers, containers_routers = _wire_containers(
        top, config, db, io, events, system, reactor, images, volumes, networks
    )
    if containers is not None:
        images.containers_using = containers.containers_using
        containers.rw_size = images.rw_layer_size
        containers.rw_paths = images.rw_layer_paths
        images.commit_sources = containers.commit_source
        images.pause_container = containers.pause
        images.unpause_container = containers.unpause

    routers: list[Any] = [
        SystemRouter(system, events, reactor),
        ClusterRouter(),
        volumes_router,
        networks_router,
        images_router,
        *containers_routers,
        _wire_build(top, config, db, io, images, containers, reactor),
    ]
    routers += _wire_distribution(top, config, reactor, io, images, images_router)
    execs = next((r.execs for r in routers if isinstance(r, ExecRouter)), None)
    authorizer = Authorizer(
        Policy.from_config(config), ServiceLookup(containers, volumes, execs, networks)
    )
    site = ApiSite(ApiRoot(routers, guard=authorizer))
    top.io = io
    _wire_telemetry(top, config, reactor, site, events)
    _wire_reload(top, system, authorizer)
    _add_listeners(top, config, reactor, site)
    return top


def _wire_networks(
    top: PydService, config: DaemonConfig, db: Database, io: Any, events: Any, reactor: Any
) -> tuple[NetworkService, NetworksRouter]:
    """Networking: netlink + one nft table of ours + the resolver for user networks."""
    dns_names = ServiceNameTable()
    networks = NetworkService(
        NetworkRepository(db),
        NetlinkDriver(),
        FirewallDriver(ReactorProcessRunner(reactor), table_name(config.exec_root)),
        DnsServer(dns_names, reactor),
        io,
        events,
        NetworkConfig.from_daemon(config),
    )
    dns_names.service = networks
    top.start_hooks.append(lambda: ensureDeferred(networks.start()))
    top.stop_hooks.append(lambda: ensureDeferred(networks.stop()))
    return networks, NetworksRouter(networks)


def _wire_distribution(
    top: PydService,
    config: DaemonConfig,
    reactor: Any,
    io: ThreadPoolBlocking,
    images: ImageService,
    images_router: ImagesRouter,
) -> list[Any]:
    """Registry client and pull/push/login service; the images router's registry section and
    C{/distribution} are served by it (settings and certs.d follow SIGHUP)."""
    from pyd.api.distribution import DistributionHandlers, DistributionRouter
    from pyd.drivers.registry import HTTPClients
    from pyd.engine.distribution import DistributionService, DistributionSettings

    def settings_of(c: DaemonConfig) -> DistributionSettings:
        return DistributionSettings(
            tuple(c.insecure_registries),
            tuple(c.registry_mirrors),
            c.max_concurrent_downloads,
            c.max_concurrent_uploads,
        )

    current = [settings_of(config)]
    http = HTTPClients(reactor, "/etc/docker/certs.d")  # dockerd's per-registry CA/client certs
    dist = DistributionService(
        images,  # the image store (DistributionStore)
        http,
        io,
        os.path.join(config.data_root, "tmp", "distribution"),
        lambda: current[0],
        reactor,
    )
    top.distribution = dist
    dist.on_pull_bytes = top.telemetry.add_pull_bytes
    top.start_hooks.append(lambda: ensureDeferred(dist.clean_staging()))
    top.stop_hooks.append(http.close)

    def apply(old: DaemonConfig, new: DaemonConfig) -> None:
        current[0] = settings_of(new)
        http.reload_certs()

    top.reload_hooks.append(apply)
    images_router.distribution = DistributionHandlers(dist)
    return [DistributionRouter(dist)]


def _wire_reload(top: PydService, system: SystemService, authorizer: Authorizer) -> None:
    """What SIGHUP changes in the core wiring: log level, /info's view of config, roles."""

    def apply(old: DaemonConfig, new: DaemonConfig) -> None:
        top.log_control.set_level(new.effective_log_level())
        system.config = new
        authorizer.policy = Policy.from_config(new)

    top.reload_hooks.append(apply)


def _wire_telemetry(
    top: PydService, config: DaemonConfig, reactor: Any, site: ApiSite, events: EventService
) -> None:
    """Feed the metrics from the API site and serve them on C{--metrics-addr}."""
    telemetry = top.telemetry

    def on_request(path: str, method: str, status: int, seconds: float) -> None:
        telemetry.observe_request(path, method, status, seconds)
        if status == 204 and method == "POST" and path.endswith("/start"):
            telemetry.observe_container_start(seconds)

    site.observers.append(on_request)
    predicate = top.log_control.predicate
    site.debug_enabled = lambda: predicate.defaultLogLevel <= LogLevel.debug
    telemetry.set_gauge_source(
        "pyd_event_subscribers", "Clients following /events", lambda: events.subscriber_count
    )
    if not config.metrics_addr:
        return
    host, _, port = config.metrics_addr.rpartition(":")
    if not port.isdigit():
        raise StartupError(f"invalid --metrics-addr {config.metrics_addr!r} (want HOST:PORT)")
    desc = f"tcp:{port}:interface={(host or '127.0.0.1').strip('[]').replace(':', chr(92) + ':')}"
    metrics_site = server.Site(MetricsRoot(telemetry))
    metrics_site.noisy = False
    metrics_site.log = lambda request: None  # type: ignore[method-assign]  # no access log
    StreamServerEndpointService(serverFromString(reactor, desc), metrics_site).setServiceParent(
        top.listeners
    )


def _add_listeners(top: PydService, config: DaemonConfig, reactor: Any, site: Any) -> None:
    """One endpoint service per C{-H}; TCP is wrapped in TLS unless explicitly insecure."""
    tls: list[ServerTLS] = []

    def tcp_factory(address: str) -> Any:
        if config.tls or config.tlsverify:
            if not tls:
                tls.append(ServerTLS(config))
                top.reload_checks.append(tls[0].prepare)
                top.reload_hooks.append(tls[0].commit)
            return TLSMemoryBIOFactory(tls[0], False, site)
        if not config.insecure_plain_tcp:
            raise StartupError(
                f"refusing to serve the API on plain TCP ({address}) without TLS; pass "
                "--insecure-tcp-without-tls-gives-root-to-anyone if you really mean it"
            )
        log.warn(
            "API listening on plain TCP {address} WITHOUT TLS: anyone who can reach it "
            "is root on this host",
            address=address,
        )
        return site

    inherited: list[tuple[int, int, str]] | None = None
    for host in config.default_hosts():
        spec = parse_host(host)
        if spec.kind == "fd":
            if inherited is None:
                inherited = systemd_sockets()
            for fd, family, name in select_sockets(inherited, spec.address, host):
                endpoint = (
                    AdoptedUnixEndpoint(reactor, fd)
                    if family == socket.AF_UNIX
                    else AdoptedStreamServerEndpoint(reactor, fd, family)
                )
                factory = site if family == socket.AF_UNIX else tcp_factory(f"fd {fd} ({name})")
                StreamServerEndpointService(endpoint, factory).setServiceParent(top.listeners)
            continue
        if spec.kind == "unix":
            _clear_stale_socket(spec.address)
            top.unix_sockets.append((spec.address, spec))
            top.cleanup.append(_remove(spec.address))
        endpoint = serverFromString(reactor, spec.endpoint_description())
        factory = tcp_factory(spec.address) if spec.kind == "tcp" else site
        StreamServerEndpointService(endpoint, factory).setServiceParent(top.listeners)


class _KeepPathPort(unix.Port):
    """A Unix port on an adopted socket that leaves the socket file alone when it stops.

    Twisted's port unlinks its path on close; the file of an activated socket is systemd's
    (pyd.socket keeps it across restarts so clients queue instead of failing).
    """

    def connectionLost(self, reason: Any) -> None:
        """Close the socket without unlinking the path."""
        tcp.Port.connectionLost(self, reason)


@implementer(IStreamServerEndpoint)
class AdoptedUnixEndpoint:
    """Listen on an inherited, already-listening Unix socket (see L{_KeepPathPort})."""

    def __init__(self, reactor: Any, fd: int) -> None:
        self.reactor = reactor
        self.fd = fd

    def listen(self, factory: Any) -> Deferred[Any]:
        """Adopt the descriptor and start accepting."""

        def adopt() -> Any:
            os.set_blocking(self.fd, False)
            port = _KeepPathPort._fromListeningDescriptor(self.reactor, self.fd, factory)
            port.startListening()
            return port

        return execute(adopt)


def systemd_sockets() -> list[tuple[int, int, str]]:
    """The listening sockets systemd (or systemd-socket-activate) passed: (fd, family, name).

    Twisted's C{systemd:} endpoint cannot be used for C{fd://}: importing
    L{twisted.internet.endpoints} (twistd does, long before the plugin runs) consumes
    C{LISTEN_PID}/C{LISTEN_FDS} from the environment and keeps nothing when C{LISTEN_FDNAMES} is
    absent, as with C{systemd-socket-activate} without C{--fdname}. So the sockets are found the
    way C{sd_listen_fds(3)} numbers them: the run of listening sockets starting at fd 3. Names come
    from what Twisted parsed, or from the environment when it is still there.
    """
    names = _systemd_names()
    out = []
    fd = 3
    while True:
        try:
            probe = socket.socket(fileno=fd)  # detects family and type of the inherited fd
        except OSError:
            break
        try:
            listening = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            kind, family = probe.type, probe.family
        finally:
            probe.detach()
        if not listening or kind != socket.SOCK_STREAM:
            break
        os.set_inheritable(fd, False)  # containers and helpers must not inherit the API socket
        os.set_blocking(fd, False)  # the reactor adopts only non-blocking sockets
        out.append((fd, int(family), names.get(fd, f"fd{fd}")))
        fd += 1
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    return out


def _systemd_names() -> dict[int, str]:
    env_names = os.environ.get("LISTEN_FDNAMES")
    if env_names and os.environ.get("LISTEN_PID") == str(os.getpid()):
        return {3 + i: n for i, n in enumerate(env_names.split(":"))}
    from twisted.internet import endpoints

    # Where Twisted keeps what it parsed from the environment at import time.
    parsed = getattr(getattr(endpoints, "_SystemdParser", None), "_sddaemon", None)
    if parsed is None:
        return {}
    return {fd: name for name, fd in parsed.inheritedNamedDescriptors().items()}


def select_sockets(
    inherited: list[tuple[int, int, str]], which: str, host: str
) -> list[tuple[int, int, str]]:
    """C{fd://} takes every inherited socket; C{fd://N} the fd N; C{fd://NAME} those named so.

    @raise StartupError: nothing matches (dockerd refuses to start too).
    """
    if not which:
        chosen = inherited
    elif which.isdigit():
        chosen = [s for s in inherited if s[0] == int(which)]
    else:
        chosen = [s for s in inherited if s[2] == which]
    if not chosen:
        raise StartupError(
            f"no sockets found via socket activation for {host}: make sure the service was "
            "started by systemd (or systemd-socket-activate)"
        )
    return chosen


# ---- TLS (mutual TLS for remote management) ----------------------------------------------------

# TLS 1.2 minimum; forward-secret AEAD suites only (TLS 1.3 suites are all modern).
TLS_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise cfgmod.ConfigError(f"could not read {what} file {path}: {e.strerror}") from e


def build_tls_context(config: DaemonConfig) -> Any:
    """An OpenSSL context for the TCP listeners, from the config's TLS files (blocking).

    Client certificates are required and checked against C{tlscacert} with C{--tlsverify}; the
    C{tlscrl} CRL, when set, must be signed by that CA and revokes client certificates.

    @raise ConfigError: a file is missing or does not parse, or the key does not match.
    """
    from OpenSSL import SSL
    from OpenSSL.crypto import X509, PKey, X509StoreFlags
    from twisted.internet import ssl

    from pyd.core import certs

    cert_data = _read(config.tlscert, "tlscert")
    key_data = _read(config.tlskey, "tlskey")
    try:
        chain = [certs.load_cert(b) for b in _split_pem(cert_data)]
        if not chain:
            raise ValueError("no certificate found")
        key = certs.load_key(key_data)
    except ValueError as e:
        raise cfgmod.ConfigError(f"could not load the server certificate/key: {e}") from e
    kwargs: dict[str, Any] = {}
    ca_cert = None
    if config.tlsverify:
        ca_data = _read(config.tlscacert, "tlscacert")
        try:
            cas = [certs.load_cert(b) for b in _split_pem(ca_data)]
            if not cas:
                raise ValueError("no certificate found")
        except ValueError as e:
            raise cfgmod.ConfigError(f"could not load tlscacert {config.tlscacert}: {e}") from e
        ca_cert = cas[0]
        kwargs["trustRoot"] = ssl.trustRootFromCertificates(
            [ssl.Certificate(X509.from_cryptography(c)) for c in cas]
        )
    try:
        options = ssl.CertificateOptions(
            privateKey=PKey.from_cryptography_key(key),
            certificate=X509.from_cryptography(chain[0]),
            extraCertChain=[X509.from_cryptography(c) for c in chain[1:]] or None,
            raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
            acceptableCiphers=ssl.AcceptableCiphers.fromOpenSSLCipherString(TLS_CIPHERS),
            **kwargs,
        )
        ctx = options.getContext()
    except (SSL.Error, ValueError) as e:
        raise cfgmod.ConfigError(f"TLS configuration unusable: {e}") from e
    ctx.set_options(SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_COMPRESSION)
    if config.tlscrl:
        crl_data = _read(config.tlscrl, "tlscrl")
        try:
            crl = certs.load_crl(crl_data)
        except ValueError as e:
            raise cfgmod.ConfigError(f"could not load tlscrl {config.tlscrl}: {e}") from e
        if ca_cert is not None and (
            crl.issuer != ca_cert.subject or not crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
        ):
            raise cfgmod.ConfigError(f"tlscrl {config.tlscrl} is not signed by tlscacert")
        store = ctx.get_cert_store()
        assert store is not None
        store.add_crl(crl)
        store.set_flags(X509StoreFlags.CRL_CHECK)
    return ctx


def _split_pem(data: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    return [p + marker for p in data.split(marker) if b"-----BEGIN CERTIFICATE-----" in p]


@implementer(IOpenSSLContextFactory)
class ServerTLS:
    """The TLS context of the TCP listeners; SIGHUP swaps in a new one for new connections.

    L{TLSMemoryBIOFactory} asks C{getContext()} for every new connection, so replacing the context
    reloads the server certificate, key, CA and CRL without touching open connections, the Unix
    socket or containers.
    """

    def __init__(self, config: DaemonConfig) -> None:
        self._context = build_tls_context(config)
        self._pending: tuple[DaemonConfig, Any] | None = None
        if not config.tlsverify:
            log.warn(
                "TLS without --tlsverify: the server is authenticated but any client that "
                "connects is trusted (as {role})",
                role=config.tls_default_role,
            )

    def getContext(self) -> Any:
        """The current OpenSSL context (old-style context factory interface)."""
        return self._context

    def prepare(self, config: DaemonConfig) -> None:
        """Build the context of a new config (blocking, small files); raise to refuse it."""
        self._pending = (config, build_tls_context(config))

    def commit(self, old: DaemonConfig, new: DaemonConfig) -> None:
        """Switch to the context built by L{prepare}."""
        if self._pending is not None:
            self._context = self._pending[1]
            self._pending = None
            log.info("TLS material reloaded (certificate, key, CA and CRL)")


def sd_notify(message: str) -> bool:
    """Send C{message} to systemd's C{$NOTIFY_SOCKET} (READY=1, STOPPING=1, STATUS=...).

    @return: whether a message was sent (no socket, or an unreachable one, is not an error).
    """
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(message.encode())
    except OSError as e:
        log.warn("sd_notify to {addr} failed: {err}", addr=addr, err=e)
        return False
    return True


def _wire_volumes(
    top: PydService,
    config: DaemonConfig,
    db: Database,
    io: ThreadPoolBlocking,
    events: EventService,
    system: SystemService,
    reactor: Any,
) -> tuple[VolumeService, VolumesRouter]:
    """The volume service: start hook (crash recovery), df rows, unmount on container die."""
    driver = LocalVolumeDriver(config.data_root, io, ReactorProcessRunner(reactor))
    volumes = VolumeService(VolumeRepository(db), driver, events)
    top.start_hooks.append(lambda: ensureDeferred(volumes.start()))
    system.add_contributor(VolumesDiskUsage(volumes))

    def on_event(ev: Any) -> None:
        if ev.type == "container" and ev.action == "die":
            d = ensureDeferred(volumes.container_stopped(ev.actor_id))
            d.addErrback(lambda f: log.failure("unmounting volumes after die", f))

    events.subscribe(on_event)
    return volumes, VolumesRouter(volumes)


def _wire_images(
    top: PydService,
    config: DaemonConfig,
    db: Database,
    io: ThreadPoolBlocking,
    events: EventService,
    system: SystemService,
    reactor: Any,
) -> tuple[ImageService, ImagesRouter]:
    """The image store (issue 3): layer store under <data-root>/storage, service, router.

    Other areas inject C{images.containers_using} (container service) and
    C{images.commit_sources} (container service) and C{images_router.distribution} (registry).
    """
    runner = ReactorProcessRunner(reactor)
    store = LayerStore(os.path.join(config.data_root, "storage"), HelperExtractor(runner), runner)
    images = ImageService(ImageRepository(db), store, io, events, reactor)
    images.docker_version = ENGINE_VERSION
    images.fetcher = UrlFetcher(reactor, io).fetch
    top.start_hooks.append(lambda: ensureDeferred(images.start()))
    system.add_contributor(ImagesDiskUsage(images))
    return images, ImagesRouter(images)


def _wire_containers(
    top: PydService,
    config: DaemonConfig,
    db: Database,
    io: ThreadPoolBlocking,
    events: EventService,
    system: SystemService,
    reactor: Any,
    images: ImageProvider | None,
    volumes: VolumeProvider,
    networks: NetworkService,
) -> tuple[ContainerService | None, list[Any]]:
    """The container service on crun + conmon, and the attach/exec services built on it."""
    if images is None:
        return None, []
    runner = ReactorProcessRunner(reactor)
    runtime = ConmonRuntime(reactor, runner, io, config.exec_root)
    try:
        with open("/proc/self/status") as f:
            bounding: frozenset[str] | None = cap_bounding_set(f.read())
    except OSError:
        bounding = None
    init_path = next(
        (p for p in ("/usr/bin/tini-static", "/usr/bin/catatonit") if os.path.exists(p)), ""
    )
    settings = ContainerSettings(
        containers_dir=os.path.join(config.data_root, "containers"),
        ncpu=system.host.ncpu,
        cap_bounding=bounding,
        init_path=init_path,
        dns=tuple(config.dns),
        dns_search=tuple(config.dns_search),
        dns_options=tuple(config.dns_opts),
        log_driver=config.log_driver,
        log_opts=dict(config.log_opts),
        host_hostname=system.host.hostname,
    )
    os.makedirs(settings.containers_dir, mode=0o700, exist_ok=True)
    containers = ContainerService(
        ContainerRepository(db),
        runtime,
        images,
        networks,
        volumes,
        events,
        io,
        reactor,
        settings,
    )
    log_watcher = DirWatcher(reactor)
    containers.log_watcher = log_watcher
    system.add_contributor(containers)
    top.telemetry.set_container_state_source(
        lambda: collections.Counter(c.state.status for c in containers.list_all())
    )
    networks.lookup = containers
    networks.on_endpoints_changed.append(containers.endpoints_changed)
    top.start_hooks.append(lambda: ensureDeferred(containers.startup()))
    top.stop_hooks.append(containers.shutdown)
    top.stop_hooks.append(log_watcher.close)
    attach = AttachService(containers, events, reactor, io)
    attach.log_reader = _log_reader(containers)
    containers.before_start.append(attach.before_start)
    containers.on_gone.append(attach.container_gone)
    execs = ExecService(
        containers,
        ConmonExecDriver(reactor, io, crun_root=runtime.crun_root),
        events,
        io,
        reactor,
        os.path.join(config.exec_root, "exec"),
        resolve_user=resolve_user,
    )
    containers.exec_ids = execs.container_execs
    archive = ArchiveService(
        containers,
        images,
        runner,
        io,
        os.path.join(config.data_root, "tmp", "streams"),
        events=events,
    )
    return containers, [
        ContainersRouter(containers, reactor),
        ContainerStreamsRouter(attach, archive),
        ExecRouter(execs),
        _metrics_router(io, reactor, runner, runtime, containers),
    ]


def _log_reader(containers: ContainerService) -> Any:
    """C{attach?logs=1}: what the container logged so far, as (stream, bytes) (issue 4)."""
    from pyd.engine.containers import LogsRequest

    async def read(cid: str) -> list[tuple[int, bytes]]:
        _, entries, _ = await containers.read_logs(cid, LogsRequest(stdout=True, stderr=True))
        return [(2 if e.stream == "stderr" else 1, e.data) for e in entries]

    return read


def _metrics_router(
    io: ThreadPoolBlocking,
    reactor: Any,
    runner: ReactorProcessRunner,
    runtime: ConmonRuntime,
    containers: ContainerService,
) -> Any:
    """top and stats (issue 4): host C{ps} filtered by the cgroup's pids; cgroup counters."""
    from pyd.api.metrics import MetricsRouter
    from pyd.drivers.runtime.cgroups import CgroupPaths
    from pyd.drivers.runtime.conmon import cgroup_path
    from pyd.engine.metrics import StatsService, TopService

    async def pids(cid: str) -> list[int]:
        return await io.run(CgroupPaths(cgroup_path(cid), runtime.cgroup_root).pids)

    return MetricsRouter(
        TopService(containers, runner, pids), StatsService(containers, runtime.stats, io), reactor
    )


def _wire_build(
    top: PydService,
    config: DaemonConfig,
    db: Database,
    io: ThreadPoolBlocking,
    images: ImageService,
    containers: ContainerService | None,
    reactor: Any,
) -> BuildRouter:
    """The classic builder (issue 7): scratch space under <data-root>/builder; RUN steps go
    through the container service, layers through the image service."""
    runner = None
    if containers is not None:
        runner = ContainersAdapter(
            containers, lambda: LogsRequest(follow=True, stdout=True, stderr=True)
        )
    builds = BuildService(
        ImageStoreAdapter(images, ImageRepository(db)),
        runner,
        io,
        os.path.join(config.data_root, "builder"),
        reactor,
        puller=DistributionPuller(lambda: getattr(top, "distribution", None), images),
        docker_version=ENGINE_VERSION,
    )
    return BuildRouter(builds)


def _new_daemon_id() -> str:
    import uuid

    return str(uuid.uuid4()).upper()
