"""The composition root: builds the service tree and wires every area (layer: service).

Start order: thread pools, database (schema upgraded in the DB thread), engine start hooks
(reconcile containers, networks...), then the listeners. Stop runs in reverse: listeners first,
the database last. Fail-fast checks (data-root lock, pidfile, stale socket) run in
L{build_service}, before the reactor runs, so they may block.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import os
import socket
from collections.abc import Callable
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import serverFromString
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)
from twisted.python.threadpool import ThreadPool

from pyd.api.root import ApiRoot, ApiSite
from pyd.api.system import SystemRouter
from pyd.config import DaemonConfig, ListenSpec, parse_host
from pyd.core.seams import ThreadPoolBlocking
from pyd.engine.events import EventService
from pyd.engine.system import HostFacts, SystemService
from pyd.state import meta, migrate
from pyd.state.db import Database, make_engine
from pyd.state.events import EventRepository

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
        await self.db.transaction(migrate.upgrade)
        for hook in self.start_hooks:
            await hook()
        self.listeners.startService()
        self._chown_sockets()
        log.info("pyd ready, API listening on {hosts}", hosts=",".join(self.config.default_hosts()))
        self.ready.callback(None)

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

    def stopService(self) -> Deferred[None]:
        """Stop listening first, then the engine, then DB and pools; remove socket and pidfile."""
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
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

    routers: list[Any] = [SystemRouter(system, events, reactor)]
    site = ApiSite(ApiRoot(routers))

    for host in config.default_hosts():
        spec = parse_host(host)
        if spec.kind == "unix":
            _clear_stale_socket(spec.address)
            top.unix_sockets.append((spec.address, spec))
            top.cleanup.append(_remove(spec.address))
        elif spec.kind == "tcp" and (config.tls or config.tlsverify):
            raise StartupError("TLS listeners are not available yet")
        endpoint = serverFromString(reactor, spec.endpoint_description())
        StreamServerEndpointService(endpoint, site).setServiceParent(top.listeners)
    return top


def _new_daemon_id() -> str:
    import uuid

    return str(uuid.uuid4()).upper()
