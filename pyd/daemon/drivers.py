"""The daemon's outer ring (layer: daemon): everything that touches the kernel, the network,
threads or child processes, built in one place and handed to L{pyd.daemon.wiring.build_service}.

Tests hand the wiring fakes instead (see tests/component/test_daemon_wiring.py); the real set is
L{real_drivers}. The drivers are made after the data-root lock is held: some of them create or
sweep directories under the data and exec roots.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
from twisted.application.service import IService
from twisted.internet.defer import Deferred, succeed

from pyd.config import DaemonConfig
from pyd.config.limits import free_reserve_bytes
from pyd.config.runtimes import table as runtime_table
from pyd.core.seams import Blocking, IDaemonReactor
from pyd.daemon.pidlock import StartupError
from pyd.daemon.tree import PoolService
from pyd.drivers.fswatch import DirWatcher
from pyd.drivers.helpers import ForkServerRunner
from pyd.drivers.network.netlink import NetlinkDriver
from pyd.drivers.network.nft import FirewallDriver, table_name
from pyd.drivers.network.proxy import LoopbackProxy
from pyd.drivers.process import ProcessRunner, ReactorProcessRunner
from pyd.drivers.registry import HTTPClients
from pyd.drivers.registry.proxy import ProxySettings
from pyd.drivers.runtime.cgroups import CgroupPaths
from pyd.drivers.runtime.conmon import ConmonRuntime, RuntimeDriver
from pyd.drivers.runtime.oci import RuntimeSet, RuntimeUnavailable
from pyd.drivers.runtime.spec import cap_bounding_set
from pyd.drivers.storage.fetch import UrlFetcher
from pyd.drivers.storage.layers import HelperExtractor, LayerStore
from pyd.drivers.streams.execs import ConmonExecDriver
from pyd.drivers.volumes.local import LocalVolumeDriver
from pyd.engine.networks import FirewallOps, NetlinkOps, ProxyOps, ResolverOps
from pyd.engine.system import HostFacts

if TYPE_CHECKING:
    from pyd.drivers.network.dns import DnsServer, NameTable


@attrs.frozen
class Drivers:
    """The driver of every seam, and the host facts the engine is configured from."""

    # Thread pools to start first and stop last (services of the tree), and the seams over them.
    pools: tuple[IService, ...]
    db_blocking: Blocking
    io: Blocking
    runner: ProcessRunner
    # Runs pyd's sealed helpers (the docker cp view, the layer untar): forked from a server
    # that has imported them (pyd.drivers.helpers), the rest through runner.
    helpers: ProcessRunner
    host: HostFacts
    # Capabilities this daemon may hand on (None: unknown) and the init binary for --init.
    cap_bounding: frozenset[str] | None
    init_path: str
    runtime: RuntimeDriver
    # The OCI runtimes containers may name (HostConfig.Runtime) and the default one.
    runtimes: RuntimeSet
    exec_driver: ConmonExecDriver
    # The pids in a container's cgroup, by its cgroups path (docker top).
    container_pids: Callable[[str], Awaitable[list[int]]]
    layers: LayerStore
    # Downloads a URL to a file (docker import <url>).
    fetcher: Callable[[str, str], Awaitable[None]]
    netlink: NetlinkOps
    firewall: FirewallOps
    # The embedded DNS resolver over the name table networking keeps.
    resolver: Callable[[NameTable], ResolverOps]
    volumes: LocalVolumeDriver
    registry: HTTPClients
    log_watcher: DirWatcher
    # The userland proxy for published ports on [::1] (None: none, as in tests).
    proxy: ProxyOps | None = None


DriverFactory = Callable[[DaemonConfig, Any], Drivers]

# Threads of the io pool (see real_drivers).
IO_THREADS = 8


def real_drivers(config: DaemonConfig, reactor: IDaemonReactor) -> Drivers:
    """The drivers of a real daemon: crun + conmon, overlayfs, netlink + nftables, the local
    volume driver, the registry client on twisted.web (blocking reads of /proc allowed: the
    reactor is not running yet)."""
    db_pool = PoolService(reactor, "pyd-db", 1)
    # Eight: much of the io pool's work waits on the kernel (netlink under the RTNL lock, a
    # veth coming up, unmounts, directory removals), so with four threads a hundred concurrent
    # `docker run` queued their mounts and namespaces behind each other's waits (100 runs:
    # 37 s with four, 28 s with eight, load 20-30; see docs/performance.md).
    io_pool = PoolService(reactor, "pyd-io", IO_THREADS)
    io = io_pool.workers
    runner = ReactorProcessRunner(reactor)
    helpers = ForkServerRunner(reactor, runner)
    # registry traffic and URL imports go through the same proxies (dockerd: one environment)
    proxies = ProxySettings.resolve(config.http_proxy, config.https_proxy, config.no_proxy)
    runtimes = resolve_runtimes(config)
    runtime = ConmonRuntime(
        reactor,
        runner,
        io,
        config.exec_root,
        data_root=config.data_root,
        default=runtimes.get(""),
    )
    try:
        with open("/proc/self/status") as f:
            bounding: frozenset[str] | None = cap_bounding_set(f.read())
    except OSError:
        bounding = None
    init_path = _init_path(config.init_path)

    async def pids(cgroups_path: str) -> list[int]:
        return await io.run(CgroupPaths(cgroups_path, runtime.cgroup_root).pids)

    return Drivers(
        pools=(db_pool, io_pool),
        db_blocking=db_pool.workers,
        io=io,
        runner=runner,
        helpers=helpers,
        # docker info's InitBinary: init-path as configured (dockerd), else the init found
        host=HostFacts.read(config.data_root, config.init_path or os.path.basename(init_path)),
        cap_bounding=bounding,
        init_path=init_path,
        runtime=runtime,
        runtimes=runtimes,
        exec_driver=ConmonExecDriver(
            reactor, io, crun_root=runtime.crun_root, host_roots=runtime.host_roots
        ),
        container_pids=pids,
        layers=LayerStore(
            os.path.join(config.data_root, "storage"),
            HelperExtractor(
                helpers, max_size=config.max_layer_size, keep_free=keep_free_bytes(config)
            ),
            runner,
        ),
        fetcher=UrlFetcher(reactor, io, proxies).fetch,
        netlink=NetlinkDriver(),
        firewall=FirewallDriver(runner, table_name(config.exec_root)),
        resolver=lambda table: LazyResolver(table, reactor),
        volumes=LocalVolumeDriver(
            config.data_root,
            io,
            runner,
            staging_root=os.path.join(config.exec_root, "mounts"),
        ),
        # dockerd's per-registry CA/client certs
        registry=HTTPClients(reactor, "/etc/docker/certs.d", proxies),
        log_watcher=DirWatcher(reactor),
        proxy=LoopbackProxy(reactor),
    )


class LazyResolver:
    """The embedded DNS resolver (L{pyd.drivers.network.dns.DnsServer}), made when a container
    first needs it: it is on twisted.names (~0.7 MB resident), which a daemon whose containers
    use only the default bridge never loads. Until then it serves nothing, so it has no ports
    and nothing to stop."""

    def __init__(self, table: NameTable, reactor: IDaemonReactor) -> None:
        self._table = table
        self._reactor = reactor
        self._server: DnsServer | None = None

    def _made(self) -> DnsServer:
        if self._server is None:
            from pyd.drivers.network.dns import DnsServer

            self._server = DnsServer(self._table, self._reactor)
        return self._server

    def serve(self, key: str, udp: socket.socket, tcp: socket.socket) -> tuple[int, int]:
        """L{DnsServer.serve}."""
        return self._made().serve(key, udp, tcp)

    def ports(self, key: str) -> tuple[int, int] | None:
        """L{DnsServer.ports}."""
        return None if self._server is None else self._server.ports(key)

    def stop(self, key: str) -> Deferred[Any]:
        """L{DnsServer.stop}."""
        return succeed(None) if self._server is None else self._server.stop(key)

    def stop_all(self) -> Deferred[Any]:
        """L{DnsServer.stop_all}."""
        return succeed(None) if self._server is None else self._server.stop_all()


# Static inits a container can run whatever its libc (Debian's tini, docker.io's docker-init
# link to it, catatonit).
_INITS = ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/bin/catatonit")


def _init_path(configured: str) -> str:
    """The init binary for --init (and the daemon's init): init-path, else the first found.

    @raise StartupError: init-path names no executable file.
    """
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise StartupError(f"init-path: {configured} is not an executable file")
        return os.path.abspath(configured)
    return next((p for p in _INITS if os.path.exists(p)), "")


def resolve_runtimes(config: DaemonConfig) -> RuntimeSet:
    """The runtimes found on this host (stock ones installed, daemon.json's by path); at start,
    and again at each SIGHUP (blocking: looks binaries up on PATH).

    @raise StartupError: a configured runtime or the default one is not installed.
    """
    try:
        return RuntimeSet.resolve(
            runtime_table(config.runtimes),
            frozenset(config.runtimes),
            config.default_runtime,
            config.exec_root,
        )
    except RuntimeUnavailable as e:
        raise StartupError(str(e)) from None


def keep_free_bytes(config: DaemonConfig) -> int:
    """The free-space reserve in bytes for the data root's filesystem (min-free-space)."""
    st = os.statvfs(config.data_root)
    return free_reserve_bytes(config.min_free_space, st.f_blocks * st.f_frsize)
