"""The daemon's listeners (layer: daemon): one endpoint service per C{-H} (Unix socket, TCP wrapped
in mutual TLS, or sockets inherited from systemd), and the Prometheus endpoint of
C{--metrics-addr}. They start last, once the engine is ready, and stop first."""

from __future__ import annotations

import socket
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from twisted.web import server

from pyd.config import DaemonConfig, ListenSpec, parse_host
from pyd.core import tlsstack
from pyd.core.seams import IDaemonReactor
from pyd.core.telemetry import Telemetry
from pyd.daemon.eager import AdoptedTCPEndpoint, TCPEndpoint, UnixEndpoint
from pyd.daemon.guard import ConnectionGuard, GuardState
from pyd.daemon.pidlock import StartupError, clear_stale_socket, remove_file
from pyd.daemon.systemd import AdoptedUnixEndpoint, select_sockets, systemd_sockets
from pyd.daemon.tls import ServerTLS
from pyd.daemon.tree import Lifecycle

log = Logger()


class _QuietSite(server.Site):
    """The metrics site: no access log, no factory start/stop lines."""

    noisy = False

    def log(self, request: Any) -> None:
        """Scrapes are not logged."""


def _listener(endpoint: IStreamServerEndpoint, factory: Any) -> StreamServerEndpointService:
    svc = StreamServerEndpointService(endpoint, factory)
    # Make a failed listen() raise (and fail the start) instead of only being logged.
    svc._raiseSynchronously = True
    return svc


def build_listeners(
    config: DaemonConfig,
    reactor: IDaemonReactor,
    site: Any,
    telemetry: Telemetry,
    lifecycle: Lifecycle,
) -> MultiService:
    """The metrics listener, then one endpoint service per C{-H}.

    Runs the fail-fast checks (stale socket, plain TCP without TLS, TLS files) now.
    """
    listeners = MultiService()
    metrics = _metrics_listener(config, reactor, telemetry)
    if metrics is not None:
        metrics.setServiceParent(listeners)
    for svc in _api_listeners(config, reactor, site, lifecycle):
        svc.setServiceParent(listeners)
    return listeners


def _metrics_listener(
    config: DaemonConfig, reactor: IDaemonReactor, telemetry: Telemetry
) -> StreamServerEndpointService | None:
    """Serve the metrics on C{--metrics-addr} (HOST:PORT, loopback by default)."""
    if not config.metrics_addr:
        return None
    host, _, port = config.metrics_addr.rpartition(":")
    if not port.isdigit():
        raise StartupError(f"invalid --metrics-addr {config.metrics_addr!r} (want HOST:PORT)")
    desc = f"tcp:{port}:interface={(host or '127.0.0.1').strip('[]').replace(':', chr(92) + ':')}"
    # prometheus_client only when metrics are served (pyd.core.telemetry keeps plain numbers)
    from pyd.api.prometheus import MetricsRoot

    return _listener(serverFromString(reactor, desc), _QuietSite(MetricsRoot(telemetry)))


def _endpoint(reactor: IDaemonReactor, spec: ListenSpec) -> IStreamServerEndpoint:
    """The endpoint of a C{unix://} or C{tcp://} address: Twisted's, with connections that
    send a read's answer in the same reactor turn (L{pyd.daemon.eager})."""
    if spec.kind == "unix":
        return UnixEndpoint(reactor, spec.address, 0o660)
    return TCPEndpoint(reactor, spec.port, spec.host or "0.0.0.0")


def _api_listeners(
    config: DaemonConfig, reactor: IDaemonReactor, site: Any, lifecycle: Lifecycle
) -> list[StreamServerEndpointService]:
    """One endpoint service per C{-H}; TCP is wrapped in TLS unless explicitly insecure."""
    tls: list[ServerTLS] = []
    out: list[StreamServerEndpointService] = []
    # One set of counters for every listener: a peer's connections count wherever they land.
    guard = GuardState(
        config.max_connections_per_peer,
        config.max_handshaking_connections,
        config.handshake_timeout,
        reactor.callLater,
    )

    def tcp_factory(address: str) -> Any:
        if config.tls or config.tlsverify:
            tlsstack.load()
            from twisted.protocols.tls import TLSMemoryBIOFactory

            if not tls:
                tls.append(ServerTLS(config))
                lifecycle.reload_checks.append(tls[0].prepare)
                lifecycle.reload_hooks.append(tls[0].commit)
            return ConnectionGuard(TLSMemoryBIOFactory(tls[0], False, site), guard, tls=True)
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
        return ConnectionGuard(site, guard)

    inherited: list[tuple[int, int, str]] | None = None
    for host in config.default_hosts():
        spec = parse_host(host)
        if spec.kind == "fd":
            if inherited is None:
                inherited = systemd_sockets()
            for fd, family, name in select_sockets(inherited, spec.address, host):
                endpoint: IStreamServerEndpoint = (
                    AdoptedUnixEndpoint(reactor, fd)
                    if family == socket.AF_UNIX
                    else AdoptedTCPEndpoint(reactor, fd, family)
                )
                factory = (
                    ConnectionGuard(site, guard)
                    if family == socket.AF_UNIX
                    else tcp_factory(f"fd {fd} ({name})")
                )
                out.append(_listener(endpoint, factory))
            continue
        if spec.kind == "unix":
            clear_stale_socket(spec.address)
            lifecycle.unix_sockets.append(spec.address)
            lifecycle.cleanup.append(remove_file(spec.address))
        endpoint = _endpoint(reactor, spec)
        factory = tcp_factory(spec.address) if spec.kind == "tcp" else ConnectionGuard(site, guard)
        out.append(_listener(endpoint, factory))
    return out
