"""What every part of networking shares (layer: engine): the driver seams, the daemon options
(L{NetworkConfig}), request and view records, and the core of the service (state, lock, events,
network lookup, the firewall ruleset rendered from state).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import attrs
from twisted.internet.defer import Deferred, DeferredLock
from twisted.logger import Logger

from pyd.core.errors import (
    InvalidParameter,
    NotFound,
    SystemError_,
)
from pyd.core.ids import line_safe, short_id
from pyd.core.locks import SharedLock
from pyd.core.records import (
    Attachment,
    Endpoint,
    IpamPool,
    Network,
)
from pyd.core.seams import Blocking, EventSink
from pyd.drivers.network.hostfw import chain_names
from pyd.drivers.network.netlink import Interface, LinkInfo, NetworkDriverError
from pyd.drivers.network.nft import BridgeRules, LinkRule, NftError, PortRule, Ruleset
from pyd.engine.spec.records import EndpointRequest
from pyd.state.networks import NetworkRepository

log = Logger()


_DIGITS = re.compile(r"^[0-9]+\Z")


T = TypeVar("T")


PREDEFINED = ("bridge", "host", "none")


BRIDGE_NAME_OPT = "com.docker.network.bridge.name"


ICC_OPT = "com.docker.network.bridge.enable_icc"


MASQ_OPT = "com.docker.network.bridge.enable_ip_masquerade"


MTU_OPT = "com.docker.network.driver.mtu"


HOSTS_BASE = (
    ("127.0.0.1", "localhost"),
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
)


EPHEMERAL = (32768, 60999)


# --- seams ---------------------------------------------------------------------------------


class NetlinkOps(Protocol):
    """What the service needs from L{pyd.drivers.network.netlink.NetlinkDriver} (blocking)."""

    def links(self) -> list[LinkInfo]: ...
    def link_exists(self, name: str) -> bool: ...
    def ensure_bridge(
        self,
        name: str,
        gateway: str | None,
        prefixlen: int,
        mtu: int,
        gateway6: str | None = None,
        prefixlen6: int = 0,
    ) -> bool: ...
    def delete_link(self, name: str) -> bool: ...
    def enable_ip_forwarding(self) -> bool: ...
    def enable_ipv6_forwarding(self) -> bool: ...
    def routes(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]: ...
    def create_netns(self, path: str) -> None: ...
    def remove_netns(self, path: str) -> bool: ...
    def release_netns(self, path: str, host_ifnames: Sequence[str]) -> None: ...
    def netns_in_use(self, path: str) -> bool: ...
    def netns_links(self, path: str) -> list[str]: ...
    def attach(self, netns_path: str, iface: Interface) -> None: ...
    def detach(self, netns_path: str, ifname: str, host_ifname: str) -> None: ...
    def dns_sockets(
        self, netns_path: str, address: str, udp_port: int = 0, tcp_port: int = 0
    ) -> tuple[socket.socket, socket.socket]: ...


class FirewallOps(Protocol):
    """What the service needs from L{pyd.drivers.network.nft.FirewallDriver}."""

    table: str

    async def apply(self, rules: Ruleset) -> None: ...
    async def apply_dns(
        self, netns_path: str, address: str, udp_port: int, tcp_port: int
    ) -> None: ...
    async def remove(self) -> None: ...
    async def host_forward(self, family: str, bridges: Sequence[str]) -> bool: ...


class ProxyOps(Protocol):
    """What the service needs from L{pyd.drivers.network.proxy.LoopbackProxy}."""

    available: bool  # the host has IPv6 sockets (else there is nothing to serve)

    def sync(self, wanted: Mapping[tuple[str, int], tuple[str, int]]) -> list[tuple[str, int]]: ...


class ResolverOps(Protocol):
    """What the service needs from L{pyd.drivers.network.dns.DnsServer}."""

    def serve(self, key: str, udp: socket.socket, tcp: socket.socket) -> tuple[int, int]: ...
    def ports(self, key: str) -> tuple[int, int] | None: ...
    def stop(self, key: str) -> Deferred[Any]: ...
    def stop_all(self) -> Deferred[Any]: ...


@attrs.frozen
class ContainerRef:
    """What networking needs to know about a container named in a request."""

    id: str
    name: str  # without the leading "/"
    running: bool
    network_mode: str = "default"
    # its create-time EndpointsConfig, typed (network name, id or prefix -> settings)
    endpoints: Mapping[str, EndpointRequest] = attrs.field(factory=dict)
    networks_materialized: bool = False  # create-time networks already turned into endpoints


class ContainerLookup(Protocol):
    """Resolves container references (given by the container service)."""

    async def network_container(self, ref: str) -> ContainerRef:
        """The container C{ref} names. @raise NotFound: C{No such container: <ref>}."""
        ...

    async def networks_materialized(self, container_id: str) -> None:
        """Record that the container's create-time networks are now endpoint rows."""
        ...

    async def endpoint_config_changed(
        self, container_id: str, network: str, endpoint: EndpointRequest | None
    ) -> None:
        """A container was connected to C{network} with C{endpoint} (None: it left it): what
        inspect shows, as dockerd keeps C{NetworkSettings.Networks}."""
        ...


@attrs.frozen
class NetworkConfig:
    """The daemon options networking uses (from L{pyd.config.DaemonConfig})."""

    exec_root: str = "/run/pyd"
    bridge: str = ""  # default bridge device name ("" = pyd0)
    bip: str = ""  # "10.200.0.1/24"
    fixed_cidr: str = ""
    default_address_pools: tuple[tuple[str, int], ...] = ()
    icc: bool = True
    ip_masq: bool = False
    # dockerd's ip-forward and iptables (both on by default in a daemon; off in this record so
    # unit tests touch nothing).
    ip_forward: bool = False
    iptables: bool = True
    ip6tables: bool = True  # IPv6 rules in pyd's tables (with iptables; dockerd 28's default)
    # dockerd's userland-proxy: pyd's serves published TCP ports on [::1] (see
    # pyd.drivers.network.proxy); off in this record so tests open no listeners.
    userland_proxy: bool = False
    # pyd's accept rules in the host's filter FORWARD (with iptables; dockerd's DOCKER-FORWARD):
    # on in a daemon, off in this record so unit and integration tests leave the host alone.
    host_forward: bool = False
    ipv6: bool = False  # the default bridge is dual-stack
    fixed_cidr_v6: str = ""  # the default bridge's IPv6 subnet ("" = from the default pools)
    bip6: str = ""  # the default bridge's IPv6 address/prefix ("fd00:1::1/64")
    mtu: int = 1500
    dns: tuple[str, ...] = ()
    dns_opts: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    resolv_conf: str = "/etc/resolv.conf"

    @classmethod
    def from_daemon(cls, cfg: Any) -> NetworkConfig:
        """Pick the networking options out of a DaemonConfig."""
        return cls(
            exec_root=cfg.exec_root,
            bridge=cfg.bridge,
            bip=cfg.bip,
            fixed_cidr=cfg.fixed_cidr,
            default_address_pools=tuple(cfg.default_address_pools),
            icc=cfg.icc,
            ip_masq=cfg.ip_masq,
            ip_forward=cfg.ip_forward,
            iptables=cfg.iptables,
            ip6tables=cfg.ip6tables,
            host_forward=True,
            userland_proxy=cfg.userland_proxy,
            ipv6=cfg.ipv6,
            fixed_cidr_v6=cfg.fixed_cidr_v6,
            bip6=cfg.bip6,
            mtu=cfg.mtu,
            dns=tuple(cfg.dns),
            dns_opts=tuple(cfg.dns_opts),
            dns_search=tuple(cfg.dns_search),
        )


@attrs.frozen
class NetworkView:
    """A network and its active endpoints, for inspect and list."""

    network: Network
    endpoints: tuple[tuple[Attachment, str], ...]  # (attachment, container name)


@attrs.frozen
class CreateRequest:
    """C{POST /networks/create}, parsed."""

    name: str
    driver: str = "bridge"
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    scope: str = ""  # as asked ("" when not given)
    config_only: bool = False  # --config-only: store the configuration, create nothing
    config_from: str = ""  # --config-from: the configuration network's name
    enable_ipv4: bool = True  # False: an IPv6-only network (API 1.48)
    enable_ipv6: bool = False
    ipam_driver: str = "default"
    # None when the create request gave no IPAM options: inspect shows null, as dockerd
    ipam_options: dict[str, str] | None = None
    pools: tuple[IpamPool, ...] = ()
    options: dict[str, str] = attrs.field(factory=dict)
    labels: dict[str, str] = attrs.field(factory=dict)


# --- helpers -------------------------------------------------------------------------------


def is_v6(pool: IpamPool) -> bool:
    """Whether C{pool} is an IPv6 one (a network's IPv6 pools follow its IPv4 ones)."""
    return ":" in pool.subnet


def v4_pool(n: Network) -> IpamPool | None:
    """The IPv4 pool of a network with IPv4, else None (an IPv6-only network)."""
    if not n.enable_ipv4:
        return None
    return next((p for p in n.pools if not is_v6(p)), None)


def v6_pool(n: Network) -> IpamPool | None:
    """The IPv6 pool of a network with IPv6, else None."""
    if not n.enable_ipv6:
        return None
    return next((p for p in n.pools if is_v6(p)), None)


def default_bridge_name(exec_root: str) -> str:
    """C{pyd0} for the default exec-root; C{pyd<hash>} otherwise, so daemons never share one."""
    root = exec_root.rstrip("/")
    if root in ("/run/pyd", "/var/run/pyd"):
        return "pyd0"
    return "pyd" + hashlib.sha256(root.encode()).hexdigest()[:8]


def _veth_name(container_id: str, network_id: str) -> str:
    return "veth" + hashlib.sha256((container_id + network_id).encode()).hexdigest()[:7]


def _valid_ifname(name: str) -> bool:
    """The kernel's rule for an interface name (dev_valid_name), checked before netlink or nft
    ever sees it: the name is also written, quoted, into the firewall script."""
    if not name or name in (".", "..") or "/" in name or ":" in name:
        return False
    return line_safe(name) and name.isascii()


def _remove_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _port_number(text: str) -> int:
    """Go's C{strconv.ParseUint(text, 10, 16)} as go-connections' nat package uses it: decimal
    digits only (C{+22}, C{ 22}, C{8_1} are not numbers, as Python's C{int} would take them).

    @raise ValueError: not a port number.
    """
    if not _DIGITS.match(text) or int(text) > 65535:
        raise ValueError(text)
    return int(text)


def host_port_range(value: str) -> tuple[int, int]:
    """A binding's C{HostPort} (C{""}, C{N} or C{N-M}) as (low, high); (0, 0): ephemeral.

    The authorization rules read host ports with this same function.

    @raise InvalidParameter: C{invalid hostPort: <value>}.
    """
    if not value:
        return 0, 0
    lo, sep, hi = value.partition("-")
    try:
        a = _port_number(lo)
        b = _port_number(hi) if sep else a
    except ValueError as e:
        raise InvalidParameter(f"invalid hostPort: {value}") from e
    if not a <= b:
        raise InvalidParameter(f"invalid hostPort: {value}")
    return a, b


def _can_bind(host_ip: str, port: int, proto: str) -> bool:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    if proto == "sctp":
        return True
    v6 = ":" in host_ip
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host_ip, port, 0, 0) if v6 else (host_ip or "0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class NetworkBase:
    """State, lock, events and lookups shared by the parts of L{pyd.engine.networks.NetworkService}."""

    def __init__(
        self,
        repo: NetworkRepository,
        netlink: NetlinkOps,
        firewall: FirewallOps,
        resolver: ResolverOps | None,
        blocking: Blocking,
        events: EventSink,
        config: NetworkConfig,
        lookup: ContainerLookup | None = None,
        can_bind: Callable[[str, int, str], bool] = _can_bind,
        on_endpoints_changed: Sequence[
            Callable[[str, list[Endpoint], str | None], Awaitable[None]]
        ] = (),
        host_id: Callable[[], str] = lambda: "",
        proxy: ProxyOps | None = None,
    ) -> None:
        self._repo = repo
        self._proxy = proxy
        self._nl = netlink
        self._fw = firewall
        self._dns = resolver
        self._io = blocking
        self._events = events
        self.config = config
        self.lookup = lookup
        self._can_bind = can_bind
        # Shared: one container's set-up or tear-down (its own rows, addresses, namespace);
        # exclusive: everything else (networks, connect, picking host ports). See _locked.
        self._lock = SharedLock()
        # _refresh reads the endpoints and renders the firewall from them: one at a time, so
        # that the last render is of the last state (shared holders refresh concurrently).
        self._render_lock = DeferredLock()
        self._networks: dict[str, Network] = {}
        self._active: list[Attachment] = []
        self._next_ephemeral = EPHEMERAL[0]
        self._applied: Ruleset | None = None
        # Host ends of released veths being deleted in the background (name -> the deletion):
        # a new attach of the same name waits for it.
        self._reaping: dict[str, Deferred[object]] = {}
        # A starting container's interfaces, plugged in the background while the runtime
        # creates the container (L{Endpoints.plugged}); its process starts once they are.
        self._plugging: dict[str, Deferred[None]] = {}
        # The bridges opened in the host's filter FORWARD, per family, as last applied.
        self._host_open: dict[str, tuple[str, ...]] = {}
        # Called with (container id, its endpoints now) after a live connect or disconnect, so
        # the container service can refresh what inspect shows.
        # The third argument, when not None, is the resolv.conf text the container should now
        # have (joining its first user-defined network switches it to the embedded resolver).
        self.on_endpoints_changed = list(on_endpoints_changed)
        # The daemon's id (known once the database is open): dockerd derives the host's IPv6
        # ULA base pool from it.
        self.host_id = host_id

    # -- small utilities -----------------------------------------------------------------

    def netns_path(self, container_id: str) -> str:
        """Where a container's network namespace is pinned."""
        return os.path.join(self.config.exec_root, "netns", container_id)

    def _dns_marker(self, container_id: str) -> str:
        """Where the resolver ports of a served container namespace are recorded."""
        return os.path.join(self.config.exec_root, "dns", container_id)

    async def _locked(
        self,
        fn: Callable[[], Any],
        shared: bool = False,
        until: Callable[[], Deferred[Any] | None] | None = None,
    ) -> Any:
        """Run C{fn} holding the service's lock: alone, or (C{shared}) beside other shared
        holders, which must touch only their own container's rows, addresses and interfaces
        (the database's UNIQUE constraints decide addresses) and never choose host ports.

        C{until}, asked once C{fn} returned, may name work C{fn} left running (a set-up's
        background plugging): the lock is then held until it ends, as if C{fn} had waited."""
        exclusive = not shared
        await self._lock.acquire(exclusive)
        pending: Deferred[Any] | None = None
        try:
            result = await fn()
            pending = until() if until is not None else None
            return result
        finally:
            if pending is None:
                self._lock.release(exclusive)
            else:

                def release(outcome: object) -> object:
                    self._lock.release(exclusive)
                    return outcome

                pending.addBoth(release)

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self._io.run(fn, *args)
        except NetworkDriverError as e:
            raise SystemError_(str(e)) from e

    def _emit(self, action: str, network: Network, **extra: str) -> None:
        attrs_ = {"name": network.name, "type": network.driver, **extra}
        d = self._events.emit("network", action, network.id, attrs_)
        d.addErrback(lambda f: log.failure("storing a network event failed", f))

    def _by_name(self, name: str) -> Network | None:
        for n in self._networks.values():
            if n.name == name:
                return n
        return None

    def resolve(self, ref: str) -> Network:
        """A network by full id, name, or unique id prefix (dockerd's order).

        @raise NotFound: C{network <ref> not found}.
        """
        if ref in self._networks:
            return self._networks[ref]
        n = self._by_name(ref)
        if n is not None:
            return n
        matches = [x for x in self._networks.values() if ref and x.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NotFound(
                f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)"
            )
        raise NotFound(f"network {ref} not found")

    def canonical_mode(self, network_mode: str) -> str:
        """C{host}/C{none} for those networks named by id or prefix (as dockerd runs a container
        given C{--network <host network id>} in the host's namespace); else unchanged."""
        if network_mode in ("", "default", "host", "none", "bridge") or ":" in network_mode:
            return network_mode
        try:
            net = self.resolve(network_mode)
        except NotFound:
            return network_mode
        if net.config_only:  # driver "null" too, but not the none network
            return network_mode
        return {"host": "host", "null": "none"}.get(net.driver, network_mode)

    def _network_for_mode(self, mode: str) -> Network:
        if mode in ("", "default"):
            mode = "bridge"
        return self.resolve(mode)

    async def stop(self) -> None:
        """Daemon shutdown: stop the resolver (bridges and rules stay for live containers;
        the next start listens again on the recorded ports)."""
        if self._dns is not None:
            await self._dns.stop_all()
        self._sync_proxy(stopping=True)
        if self.config.iptables and not self._active:
            # Nothing runs on our bridges: take our rules out of the host's FORWARD. With
            # containers running they stay, as the table does, so published ports and outbound
            # traffic keep working while the daemon is down; the next start replaces them.
            await self._open_host_forward({"ip": (), "ip6": ()})

    def _own_route(self, route: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
        for n in self._networks.values():
            for p in n.pools if not n.config_only else ():
                if p.subnet and ipaddress.ip_network(p.subnet) == route:
                    return True
        return False

    async def _ensure_bridge(self, n: Network) -> None:
        assert n.bridge is not None
        pool = v4_pool(n)
        mtu = int(n.options.get(MTU_OPT) or self.config.mtu)
        p6 = v6_pool(n)
        await self._blocking(
            self._nl.ensure_bridge,
            n.bridge,
            (pool.gateway or None) if pool else None,
            ipaddress.IPv4Network(pool.subnet).prefixlen if pool else 0,
            mtu,
            (p6.gateway or None) if p6 else None,
            ipaddress.IPv6Network(p6.subnet).prefixlen if p6 else 0,
        )
        if p6 is not None and self.config.ip_forward:
            await self._ipv6_forwarding()

    async def _ipv6_forwarding(self) -> None:
        """dockerd's ip-forward for a network with IPv6: the namespace forwards IPv6 too."""
        if await self._blocking(self._nl.enable_ipv6_forwarding):
            log.info(
                "ip-forward: turned on net.ipv6.conf.all.forwarding for IPv6 networks "
                "(as dockerd does; the host no longer accepts router advertisements)"
            )

    # -- state -> kernel -----------------------------------------------------------------

    def _is_user(self, n: Network) -> bool:
        return n.driver == "bridge" and n.name != "bridge"

    async def _refresh(self) -> None:
        """Reload active endpoints (the resolver's names); render the firewall table."""
        await self._render_lock.acquire()
        try:
            await self._refresh_now()
        finally:
            self._render_lock.release()

    async def _refresh_now(self) -> None:
        self._active = [a for a in await self._repo.endpoints() if a.plugged]
        bridges = []
        ports = []
        for n in self._networks.values():
            if n.driver != "bridge" or not n.bridge or not n.pools:
                continue
            masq = self.config.ip_masq and n.options.get(MASQ_OPT, "true") != "false"
            icc = n.options.get(ICC_OPT, "true") != "false"
            p4, p6 = v4_pool(n), v6_pool(n)
            bridges.append(
                BridgeRules(
                    bridge=n.bridge,
                    subnet=p4.subnet if p4 else "",
                    internal=n.internal,
                    icc=icc,
                    masquerade=masq,
                    subnet6=p6.subnet if p6 else "",
                )
            )
        for a in self._active:
            for p in a.config.get("ports") or []:
                ports.append(
                    PortRule(
                        protocol=p["proto"],
                        host_ip=p["host_ip"],
                        host_port=int(p["host_port"]),
                        container_ip=a.ipv4 or "",
                        container_port=int(p["container_port"]),
                        container_ip6=a.ipv6 or "",
                    )
                )
        links = []
        for a in self._active:
            net = self._networks.get(a.network_id)
            for child_ip, proto, port in a.config.get("link_ports") or []:
                if net is not None and net.bridge and a.ipv4:
                    links.append(LinkRule(net.bridge, str(a.ipv4), child_ip, proto, int(port)))
        self._sync_proxy()
        rules = Ruleset(
            bridges=tuple(bridges),
            ports=tuple(ports),
            links=tuple(links),
            ipv6=self.config.ip6tables,
        )
        if not self.config.iptables:
            return  # iptables=false: as dockerd, no firewall rules at all (the operator's job)
        v6 = self.config.ip6tables
        await self._open_host_forward(
            {
                "ip": tuple(b.bridge for b in bridges),
                "ip6": tuple(b.bridge for b in bridges if b.subnet6 and v6),
            }
        )
        if rules == self._applied:
            return  # nothing changed for the table (a container without ports, say)
        try:
            await self._fw.apply(rules)
        except Exception as e:
            self._applied = None
            raise SystemError_(f"programming the firewall failed: {e}") from e
        self._applied = rules

    @property
    def proxies_ipv6(self) -> bool:
        """Whether the userland proxy carries IPv6 to IPv4-only containers (dockerd's
        userland-proxy: their C{-p 8080:80} is then bound on C{::} too)."""
        return self._proxy is not None and self._proxy.available and self.config.userland_proxy

    def _sync_proxy(self, stopping: bool = False) -> None:
        """The userland proxy serves what NAT cannot carry of the published TCP ports bound on
        every address, C{::} or C{::1}: C{[::1]:port} (to the container's IPv6 address, or its
        IPv4 one), and for a container without an IPv6 address C{[::]:port} as a whole (as
        docker-proxy carries IPv6 to an IPv4-only container)."""
        if not self.proxies_ipv6:
            return
        assert self._proxy is not None
        wanted: dict[tuple[str, int], tuple[str, int]] = {}
        for a in [] if stopping else self._active:
            for p in a.config.get("ports") or []:
                if p["proto"] != "tcp" or p["host_ip"] not in ("", "::", "::1"):
                    continue
                at = "::1" if a.ipv6 or p["host_ip"] == "::1" else "::"
                target = (a.ipv6 or str(a.ipv4), int(p["container_port"]))
                wanted[(at, int(p["host_port"]))] = target
        self._proxy.sync(wanted)

    async def _open_host_forward(self, want: Mapping[str, tuple[str, ...]]) -> None:
        """Keep pyd's accepts in the host's filter FORWARD for C{want} (family -> bridges; none:
        remove them), so a host policy of drop does not drop what pyd's table lets through.

        Called at start (its first call replaces the rules a crashed run left) and when the
        set of bridges changes. A failure is logged, not raised: the containers' own traffic
        may not need the host's chain, and the next change tries again.
        """
        if not self.config.host_forward:
            return
        for family, names in want.items():
            if self._host_open.get(family) == names:
                continue
            try:
                present = await self._fw.host_forward(family, names)
            except NftError as e:
                self._host_open.pop(family, None)
                log.error(
                    "opening the host's {family} filter FORWARD for pyd's bridges failed: {e}",
                    family=family,
                    e=e,
                )
                continue
            self._host_open[family] = names
            if present and names:
                log.info(
                    "host {family} filter FORWARD: accepting the traffic of {names} "
                    "(chain {chain}, operator's hook {user})",
                    family=family,
                    names=", ".join(names),
                    chain=chain_names(self._fw.table)[0],
                    user=chain_names(self._fw.table)[1],
                )

    async def teardown_all(self) -> None:
        """Remove the table (used by tests and by an operator's full cleanup)."""
        await self._fw.remove()

    async def _view(self, n: Network) -> NetworkView:
        eps = [a for a in self._active if a.network_id == n.id]
        return NetworkView(network=n, endpoints=tuple((a, a.config.get("name", "")) for a in eps))

    def _endpoint(self, net: Network, att: Attachment, ip: str, mac: str) -> Endpoint:
        pool = v4_pool(net)
        prefix = ipaddress.IPv4Network(pool.subnet).prefixlen if pool and ip else 0
        p6 = v6_pool(net)
        names: tuple[str, ...] = ()
        if self._is_user(net):
            names = (att.config.get("name", ""), *att.aliases, short_id(att.container_id))
        return Endpoint(
            network_name=net.name,
            network_id=net.id,
            endpoint_id=att.id,
            ipv4=ip,
            prefixlen=prefix,
            gateway="" if net.internal or not pool or not ip else pool.gateway,
            mac=mac,
            aliases=att.aliases,
            dns_names=tuple(n for n in names if n),
            ipv6=(att.ipv6 or "") if p6 else "",
            ipv6_prefixlen=ipaddress.IPv6Network(p6.subnet).prefixlen if p6 and att.ipv6 else 0,
            ipv6_gateway=p6.gateway if p6 and att.ipv6 and not net.internal else "",
        )
