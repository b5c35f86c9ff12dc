"""The daemon's service tree (layer: daemon): start and stop order, schema upgrade before anything
listens, and SIGHUP reload.

Start order: thread pools, database (schema upgraded, in a child process for a database file),
the areas' start hooks in the order the wiring lists them (reconcile volumes, images, networks,
containers...), then the listeners. Stop runs in reverse: listeners first, then the areas' stop
hooks, the pools and the database last.
"""

from __future__ import annotations

import grp
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from twisted.application.service import IService, MultiService, Service
from twisted.internet import defer
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.web import server

from pyd import config as cfgmod
from pyd.config import DaemonConfig
from pyd.core.seams import Blocking, IDaemonReactor
from pyd.core.telemetry import Telemetry
from pyd.core.workers import Workers
from pyd.daemon.logs import LogLevelControl, StallWatchdog
from pyd.daemon.memory import (
    Settler,
    fix_malloc_thresholds,
    limit_malloc_arenas,
    settle_start_up,
)
from pyd.daemon.systemd import sd_notify
from pyd.drivers.process import ProcessRunner
from pyd.state import migrate
from pyd.state.db import Database

log = Logger()


class PoolService(Service):
    """A named pool of worker threads, started and stopped with the tree."""

    def __init__(self, reactor: Any, name: str, size: int) -> None:
        self.workers = Workers(reactor, name, size)

    def startService(self) -> None:
        """Start running work."""
        super().startService()
        self.workers.start()

    def stopService(self) -> None:
        """Join the threads (after the services above have stopped using them)."""
        super().stopService()
        self.workers.stop()


@attrs.define
class Lifecycle:
    """What the wiring collects for the tree: the areas' start and stop hooks, files to remove
    at exit, and what a SIGHUP re-checks and applies."""

    # Awaited in order once the schema is at head, before anything listens.
    start: list[Callable[[], Deferred[Any]]] = attrs.Factory(list)
    # Run in reverse order after the listeners stopped.
    stop: list[Callable[[], Deferred[Any] | None]] = attrs.Factory(list)
    # Run in reverse order last (lock, pidfile, socket files).
    cleanup: list[Callable[[], None]] = attrs.Factory(list)
    # SIGHUP: each check gets the new config and may raise ConfigError to refuse it; each hook
    # gets (old, new) once every check passed.
    reload_checks: list[Callable[[DaemonConfig], Any]] = attrs.Factory(list)
    reload_hooks: list[Callable[[DaemonConfig, DaemonConfig], None]] = attrs.Factory(list)
    # Unix API sockets this daemon created (chowned to --group once listening).
    unix_sockets: list[str] = attrs.Factory(list)


class PydService(MultiService):
    """The daemon: pools and DB as children; listeners started only once the engine is ready."""

    def __init__(
        self,
        config: DaemonConfig,
        reactor: IDaemonReactor,
        *,
        db: Database,
        io: Blocking,
        runner: ProcessRunner,
        pools: Sequence[IService],
        lifecycle: Lifecycle,
        listeners: MultiService,
        site: server.Site,
        telemetry: Telemetry,
        log_control: LogLevelControl,
        config_loader: Callable[[], DaemonConfig] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.db = db
        self.io = io
        self._runner = runner
        for pool in pools:
            pool.setServiceParent(self)
        self.lifecycle = lifecycle
        self.listeners = listeners
        # The API site every listener serves (tests drive it in memory).
        self.site = site
        # Prometheus metrics; areas record through it (see pyd.core.telemetry).
        self.telemetry = telemetry
        self.log_control = log_control
        # SIGHUP re-reads flags + daemon.json through it (see reload()).
        self.config_loader = config_loader
        self.ready: Deferred[None] = Deferred()
        self.reloading: Deferred[list[str]] | None = None
        self._old_sighup: Any = None

    def startService(self) -> None:
        """Start pools and DB, then upgrade, run start hooks, then listen."""
        self.log_control.install()
        source = self.config.config_source
        log.info(
            "configuration file: {source}",
            source=source or f"none ({self.config.config_file} does not exist)",
        )
        for notice in self.config.notices:
            log.warn("configuration: {notice}", notice=notice)
        if self.config.effective_log_level() == "debug":
            watchdog = StallWatchdog(self.reactor)
            watchdog.start()
            self.lifecycle.cleanup.append(watchdog.stop)
        limit_malloc_arenas()  # before the thread pools (below) allocate
        fix_malloc_thresholds()
        super().startService()
        d = ensureDeferred(self._start())
        d.addErrback(self._start_failed)

    async def _start(self) -> None:
        backup_dir = os.path.join(self.config.data_root, "backups")
        saved = await self.db.run(lambda conn: migrate.backup_before_upgrade(conn, backup_dir))
        if saved:
            log.info("schema upgrade ahead: database saved to {path}", path=saved)
        await self._upgrade_schema()
        for hook in self.lifecycle.start:
            await hook()
        settle_start_up()
        self.listeners.startService()
        self._chown_sockets()
        self._install_sighup()
        log.info("pyd ready, API listening on {hosts}", hosts=",".join(self.config.default_hosts()))
        sd_notify(
            f"READY=1\nSTATUS=serving on {','.join(self.config.default_hosts())}\nMAINPID={os.getpid()}"
        )
        self.ready.callback(None)
        settler = Settler(self.reactor, releases=[self.db.release_memory])
        settler.start()
        self.lifecycle.cleanup.append(settler.stop)

    async def _upgrade_schema(self) -> None:
        """Bring the schema to head. For a database file Alembic runs in a child process, so
        its imports (~10 MB resident) never stay in the daemon; at head nothing runs at all."""
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
        result = await self._runner.run([sys.executable, "-m", "pyd.state.migrate", path], env=env)
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
        gid = socket_group_id(group)
        if gid is None:
            log.warn("group {group} not found; the API socket stays root-only", group=group)
            return
        for path in self.lifecycle.unix_sockets:
            try:
                os.chown(path, 0, gid)
            except OSError as e:
                log.warn("could not chown {path}: {err}", path=path, err=e)

    def _install_sighup(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # tests driving the service from a thread: no signals there
        self._old_sighup = signal.getsignal(signal.SIGHUP)

        def on_hup(_signum: int, _frame: Any) -> None:
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
            loaded = await self.io.run(self.config_loader)
            for check in self.lifecycle.reload_checks:
                r = check(loaded)
                if isinstance(r, Deferred):
                    await r
        except (cfgmod.ConfigError, OSError, ValueError) as e:
            log.error(
                "SIGHUP: refusing the new configuration, keeping the old one: {err}", err=str(e)
            )
            sd_notify("READY=1\nSTATUS=serving (reload refused: see log)")
            self.telemetry.count_reload("refused")
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
        for hook in self.lifecycle.reload_hooks:
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
        self.telemetry.count_reload("applied")
        return [cfgmod.BY_ATTR[a].key for a in changed]

    def stopService(self) -> Deferred[None]:
        """Stop listening first, then the engine, then DB and pools; remove socket and pidfile."""
        return ensureDeferred(self._stop())

    async def _drain(self) -> None:
        if self.listeners.running:
            await self.listeners.stopService()
        for hook in reversed(self.lifecycle.stop):
            r = hook()
            if r is not None:
                await r

    async def _stop(self) -> None:
        sd_notify("STOPPING=1\nSTATUS=shutting down")
        self._uninstall_sighup()
        # shutdown-timeout bounds the drain (listeners, in-flight requests, the areas' stop
        # hooks); what is left then is abandoned so the daemon always exits. Containers keep
        # running either way (live restore).
        timeout = int(self.config.shutdown_timeout)
        drain = ensureDeferred(self._drain())
        if timeout >= 0:
            drain.addTimeout(timeout, self.reactor)
        try:
            await drain
        except defer.TimeoutError:
            log.warn(
                "shutdown-timeout: shutdown still waiting after {n}s; stopping anyway", n=timeout
            )
        await super().stopService()
        self.db.close()
        for fn in reversed(self.lifecycle.cleanup):
            fn()
        self.log_control.uninstall()


def socket_group_id(group: str, default: str = "pyd", fallback: str = "docker") -> int | None:
    """The gid owning the Unix sockets: C{group}; when that is pyd's default and the host has no
    such group, dockerd's C{docker} group (a host moving from dockerd keeps who may use the
    socket). None when neither exists."""
    names = [group, fallback] if group == default else [group]
    for name in names:
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    return None
