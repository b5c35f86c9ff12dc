"""Networks: predefined and user bridge networks, IPAM, ports, DNS, connect (layer: engine).

L{NetworkService} implements L{pyd.engine.contracts.NetworkProvider} for the container service
and the operations behind C{/networks}. Docker's rules live here; the drivers only do as told:
L{pyd.drivers.network.netlink} (bridges, veths, namespaces), L{pyd.drivers.network.nft} (the one
firewall table, rendered whole from state after every change, and the small DNS table in each
served container's namespace) and L{pyd.drivers.network.dns} (the embedded resolver, answering
at C{127.0.0.11} inside every container attached to a user-defined network, as dockerd's).
State is in SQLite (L{pyd.state.networks}).

Mutations run one at a time under a lock: they are short, and it keeps IPAM, the firewall table
and the kernel in step without finer-grained reasoning.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import attrs
from twisted.internet.defer import Deferred, DeferredLock
from twisted.logger import Logger

from pyd.core.errors import (
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    SystemError_,
    Unsupported,
)
from pyd.core.ids import go_quote, is_full_id, line_safe, new_id, short_id
from pyd.core.records import (
    Attachment,
    Endpoint,
    IpamPool,
    Network,
    NetworkSetup,
    PortMapping,
)
from pyd.core.seams import Blocking, EventSink
from pyd.drivers.network.netlink import Interface, LinkInfo, NetworkDriverError
from pyd.drivers.network.nft import BridgeRules, PortRule, Ruleset
from pyd.engine import resolvconf
from pyd.engine.container_config import parse_extra_host
from pyd.engine.spec import NetworkRequest, PortBinding, network_request
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
# Candidate subnets for the default bridge when --bip is not given (dockerd's order).
DEFAULT_BRIDGE_CANDIDATES = tuple(f"172.{n}.0.0/16" for n in range(17, 32)) + tuple(
    f"192.168.{n}.0/20" for n in range(0, 256, 16)
)
DEFAULT_POOLS = (*tuple((f"172.{n}.0.0/16", 16) for n in range(17, 32)), ("192.168.0.0/16", 20))
EPHEMERAL = (32768, 60999)


# --- seams ---------------------------------------------------------------------------------


class NetlinkOps(Protocol):
    """What the service needs from L{pyd.drivers.network.netlink.NetlinkDriver} (blocking)."""

    def links(self) -> list[LinkInfo]: ...
    def link_exists(self, name: str) -> bool: ...
    def ensure_bridge(self, name: str, gateway: str | None, prefixlen: int, mtu: int) -> bool: ...
    def delete_link(self, name: str) -> bool: ...
    def routes(self) -> list[ipaddress.IPv4Network]: ...
    def create_netns(self, path: str) -> None: ...
    def remove_netns(self, path: str) -> bool: ...
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
    endpoints_config: dict[str, Any] = attrs.field(factory=dict)  # as given at create
    networks_materialized: bool = False  # create-time networks already turned into endpoints


class ContainerLookup(Protocol):
    """Resolves container references (given by the container service)."""

    async def network_container(self, ref: str) -> ContainerRef:
        """The container C{ref} names. @raise NotFound: C{No such container: <ref>}."""
        ...

    async def networks_materialized(self, container_id: str) -> None:
        """Record that the container's create-time networks are now endpoint rows."""
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
    enable_ipv6: bool = False
    ipam_driver: str = "default"
    ipam_options: dict[str, str] = attrs.field(factory=dict)
    pools: tuple[IpamPool, ...] = ()
    options: dict[str, str] = attrs.field(factory=dict)
    labels: dict[str, str] = attrs.field(factory=dict)


# --- helpers -------------------------------------------------------------------------------


def default_bridge_name(exec_root: str) -> str:
    """C{pyd0} for the default exec-root; C{pyd<hash>} otherwise, so daemons never share one."""
    root = exec_root.rstrip("/")
    if root in ("/run/pyd", "/var/run/pyd"):
        return "pyd0"
    return "pyd" + hashlib.sha256(root.encode()).hexdigest()[:8]


def _veth_name(container_id: str, network_id: str) -> str:
    return "veth" + hashlib.sha256((container_id + network_id).encode()).hexdigest()[:7]


def _mac_for(ip: str) -> str:
    b = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{x:02x}" for x in b)


def _valid_ifname(name: str) -> bool:
    """The kernel's rule for an interface name (dev_valid_name), checked before netlink or nft
    ever sees it: the name is also written, quoted, into the firewall script."""
    if not name or name in (".", "..") or "/" in name or ":" in name:
        return False
    return line_safe(name) and name.isascii()


def _valid_mac(mac: str) -> bool:
    parts = mac.split(":")
    return len(parts) == 6 and all(
        len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts
    )


def _read_resolv(path: str) -> tuple[list[str], list[str], list[str]]:
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    try:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if not fields or fields[0].startswith(("#", ";")):
                    continue
                if fields[0] == "nameserver" and len(fields) > 1:
                    servers.append(fields[1])
                elif fields[0] in ("search", "domain"):
                    search = fields[1:]
                elif fields[0] == "options":
                    options.extend(fields[1:])
    except OSError:
        pass
    return servers, search, options


def _read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _read_ports(path: str) -> tuple[int, int] | None:
    """The resolver ports recorded for a container namespace (see L{NetworkService._serve_dns})."""
    try:
        with open(path) as f:
            udp, tcp = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return None
    return udp, tcp


def _write_ports(path: str, ports: tuple[int, int]) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{ports[0]} {ports[1]}\n")
    os.replace(tmp, path)


def _remove_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _upstreams(rc: resolvconf.ResolvConf) -> list[str]:
    """The ExtServers the resolver forwards to, from the host's namespace.

    A loopback C{--dns} address means the container's own loopback (dockerd contacts it from
    inside the container); pyd's resolver forwards from the host, so it leaves those out rather
    than ask the host's loopback instead.
    """
    return [e.address for e in rc.ext_servers if e.host_loopback or not _is_loopback(e.address)]


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def _port_number(text: str) -> int:
    """Go's C{strconv.ParseUint(text, 10, 16)} as go-connections' nat package uses it: decimal
    digits only (C{+22}, C{ 22}, C{8_1} are not numbers, as Python's C{int} would take them).

    @raise ValueError: not a port number.
    """
    if not _DIGITS.match(text) or int(text) > 65535:
        raise ValueError(text)
    return int(text)


def _port_key(spec: str) -> tuple[int, str]:
    port, _, proto = spec.partition("/")
    try:
        n = _port_number(port)
    except ValueError as e:
        raise InvalidParameter(f"invalid port specification: {spec!r}") from e
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp") or not 0 < n < 65536:
        raise InvalidParameter(f"invalid port specification: {spec!r}")
    return n, proto


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


def _host_forwards() -> bool:
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def _can_bind(host_ip: str, port: int, proto: str) -> bool:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    if proto == "sctp":
        return True
    s = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host_ip or "0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# --- the service ---------------------------------------------------------------------------


class NetworkService:
    """Networks, endpoints, published ports and DNS for containers."""

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
    ) -> None:
        self._repo = repo
        self._nl = netlink
        self._fw = firewall
        self._dns = resolver
        self._io = blocking
        self._events = events
        self.config = config
        self.lookup = lookup
        self._can_bind = can_bind
        self._lock = DeferredLock()
        self._networks: dict[str, Network] = {}
        self._active: list[Attachment] = []
        self._next_ephemeral = EPHEMERAL[0]
        self._applied: Ruleset | None = None
        # Called with (container id, its endpoints now) after a live connect or disconnect, so
        # the container service can refresh what inspect shows.
        # The third argument, when not None, is the resolv.conf text the container should now
        # have (joining its first user-defined network switches it to the embedded resolver).
        self.on_endpoints_changed = list(on_endpoints_changed)

    # -- small utilities -----------------------------------------------------------------

    def netns_path(self, container_id: str) -> str:
        """Where a container's network namespace is pinned."""
        return os.path.join(self.config.exec_root, "netns", container_id)

    def _dns_marker(self, container_id: str) -> str:
        """Where the resolver ports of a served container namespace are recorded."""
        return os.path.join(self.config.exec_root, "dns", container_id)

    async def _locked(self, fn: Callable[[], Any]) -> Any:
        await self._lock.acquire()
        try:
            return await fn()
        finally:
            self._lock.release()

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
        return {"host": "host", "null": "none"}.get(net.driver, network_mode)

    def _network_for_mode(self, mode: str) -> Network:
        if mode in ("", "default"):
            mode = "bridge"
        return self.resolve(mode)

    # -- start and stop --------------------------------------------------------------------

    async def start(self) -> None:
        """Create the predefined networks, re-create bridges and rules, drop leftovers."""
        await self._locked(self._start)

    async def _start(self) -> None:
        for n in await self._repo.all():
            self._networks[n.id] = n
        await self._ensure_predefined()
        for n in list(self._networks.values()):
            if n.driver == "bridge" and n.bridge and n.pools:
                await self._ensure_bridge(n)
        # Endpoints whose container is gone (it exited while we were down): give them back.
        for att in await self._repo.endpoints():
            if att.ipv4 is None:
                continue
            path = self.netns_path(att.container_id)
            if not await self._blocking(self._nl.netns_in_use, path):
                log.info(
                    "releasing network resources of stopped container {cid}",
                    cid=att.container_id,
                )
                await self._repo.clear_container(att.container_id)
                await self._blocking(self._nl.remove_netns, path)
                if att.config.get("host_ifname"):
                    await self._blocking(self._nl.delete_link, att.config["host_ifname"])
        await self._blocking(self._sweep_netns)
        await self._refresh()
        await self._restore_dns()
        if self.config.ip_masq and not await self._blocking(_host_forwards):
            log.warn(
                "ip-masq is on but the host does not forward IPv4 (net.ipv4.ip_forward=0): "
                "replies to containers' outgoing traffic will not come back until an operator "
                "enables forwarding"
            )

    def _sweep_netns(self) -> None:
        d = os.path.join(self.config.exec_root, "netns")
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return
        for name in names:
            path = os.path.join(d, name)
            if not self._nl.netns_in_use(path):
                self._nl.remove_netns(path)
        markers = os.path.join(self.config.exec_root, "dns")
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(markers):
                if not os.path.lexists(os.path.join(d, name.removesuffix(".tmp"))):
                    _remove_file(os.path.join(markers, name))

    async def _restore_dns(self) -> None:
        """After a restart: answer again in every live namespace that was served.

        The listeners died with the old daemon; the nft rules in the namespaces did not. The
        new listeners take the recorded ports when they are free, so the rules stay valid;
        otherwise the namespace's table is replaced with the new ports.
        """
        if self._dns is None:
            return
        seen: set[str] = set()
        for att in self._active:
            cid = att.container_id
            if cid in seen:
                continue
            seen.add(cid)
            if not await self._blocking(os.path.exists, self._dns_marker(cid)):
                continue
            try:
                await self._serve_dns(cid, self.netns_path(cid))
            except (SystemError_, OSError) as e:
                log.warn("cannot serve DNS for container {cid}: {err}", cid=cid, err=e)

    async def stop(self) -> None:
        """Daemon shutdown: stop the resolver (bridges and rules stay for live containers;
        the next start listens again on the recorded ports)."""
        if self._dns is not None:
            await self._dns.stop_all()

    async def _ensure_predefined(self) -> None:
        for name, driver in (("host", "host"), ("none", "null")):
            if self._by_name(name) is None:
                n = Network(id=new_id(), name=name, driver=driver, created_nano=time.time_ns())
                self._networks[n.id] = await self._repo.add(n)
        await self._ensure_default_bridge()

    async def _ensure_default_bridge(self) -> None:
        cfg = self.config
        device = cfg.bridge or default_bridge_name(cfg.exec_root)
        existing = self._by_name("bridge")
        if device == "none":  # dockerd's `-b none`: no default bridge network at all
            if existing is not None:
                del self._networks[existing.id]
                await self._repo.remove(existing.id)
            return
        if cfg.bip:
            iface = ipaddress.IPv4Interface(cfg.bip)
            subnet, gateway = str(iface.network), str(iface.ip)
        elif existing is not None and existing.pools and existing.bridge == device:
            subnet, gateway = existing.pools[0].subnet, existing.pools[0].gateway
        else:
            routes = await self._blocking(self._nl.routes)
            taken = [r for r in routes if not self._own_route(r)]
            for cand in DEFAULT_BRIDGE_CANDIDATES:
                net = ipaddress.IPv4Network(cand)
                if not any(net.overlaps(r) for r in taken):
                    break
            else:
                raise SystemError_("no free subnet for the default bridge; set --bip")
            subnet, gateway = str(net), str(next(net.hosts()))
        if cfg.fixed_cidr:
            fixed = ipaddress.IPv4Network(cfg.fixed_cidr, strict=False)
            if not fixed.subnet_of(ipaddress.IPv4Network(subnet)):
                raise SystemError_(
                    f"fixed-cidr {cfg.fixed_cidr} is not inside the bridge subnet {subnet}"
                )
        pool = IpamPool(subnet=subnet, gateway=gateway, ip_range=cfg.fixed_cidr)
        options = {
            "com.docker.network.bridge.default_bridge": "true",
            ICC_OPT: "true" if cfg.icc else "false",
            MASQ_OPT: "true" if cfg.ip_masq else "false",
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            BRIDGE_NAME_OPT: device,
            MTU_OPT: str(cfg.mtu),
        }
        want = Network(
            id=existing.id if existing else new_id(),
            name="bridge",
            driver="bridge",
            created_nano=existing.created_nano if existing else time.time_ns(),
            pools=(pool,),
            options=options,
            bridge=device,
        )
        if existing == want:
            return
        if existing is not None:
            await self._repo.remove(existing.id)
            if existing.bridge and existing.bridge != device:
                await self._blocking(self._nl.delete_link, existing.bridge)
        self._networks[want.id] = await self._repo.add(want)

    def _own_route(self, route: ipaddress.IPv4Network) -> bool:
        for n in self._networks.values():
            for p in n.pools:
                if p.subnet and ipaddress.IPv4Network(p.subnet) == route:
                    return True
        return False

    async def _ensure_bridge(self, n: Network) -> None:
        assert n.bridge is not None
        pool = n.pools[0]
        prefix = ipaddress.IPv4Network(pool.subnet).prefixlen
        mtu = int(n.options.get(MTU_OPT) or self.config.mtu)
        await self._blocking(self._nl.ensure_bridge, n.bridge, pool.gateway or None, prefix, mtu)

    # -- state -> kernel -----------------------------------------------------------------

    def _is_user(self, n: Network) -> bool:
        return n.driver == "bridge" and n.name != "bridge"

    async def _refresh(self) -> None:
        """Reload active endpoints (the resolver's names); render the firewall table."""
        self._active = [a for a in await self._repo.endpoints() if a.ipv4 is not None]
        bridges = []
        ports = []
        for n in self._networks.values():
            if n.driver != "bridge" or not n.bridge or not n.pools:
                continue
            masq = self.config.ip_masq and n.options.get(MASQ_OPT, "true") != "false"
            icc = n.options.get(ICC_OPT, "true") != "false"
            bridges.append(
                BridgeRules(
                    bridge=n.bridge,
                    subnet=n.pools[0].subnet,
                    internal=n.internal,
                    icc=icc,
                    masquerade=masq,
                )
            )
        for a in self._active:
            for p in a.config.get("ports") or []:
                ports.append(
                    PortRule(
                        protocol=p["proto"],
                        host_ip=p["host_ip"],
                        host_port=int(p["host_port"]),
                        container_ip=str(a.ipv4),
                        container_port=int(p["container_port"]),
                    )
                )
        rules = Ruleset(bridges=tuple(bridges), ports=tuple(ports))
        if rules == self._applied:
            return  # nothing changed for the table (a container without ports, say)
        try:
            await self._fw.apply(rules)
        except Exception as e:
            self._applied = None
            raise SystemError_(f"programming the firewall failed: {e}") from e
        self._applied = rules

    async def teardown_all(self) -> None:
        """Remove the table (used by tests and by an operator's full cleanup)."""
        await self._fw.remove()

    # -- create / list / inspect / remove ------------------------------------------------

    async def create(self, req: CreateRequest) -> tuple[Network, str]:
        """C{docker network create}. @return: the network and a warning ("" if none)."""
        return await self._locked(lambda: self._create(req))  # type: ignore[no-any-return]

    async def _create(self, req: CreateRequest) -> tuple[Network, str]:
        name = req.name.strip()
        if not name:
            raise InvalidParameter("network name must not be empty")
        if not line_safe(name, spaces=True):
            raise InvalidParameter(
                f"invalid network name {go_quote(name)}: it must not contain control characters"
            )
        if self._by_name(name) is not None:
            raise Conflict(f"network with name {name} already exists")
        if name in PREDEFINED:
            raise Forbidden(f"{name} is a pre-defined network and cannot be created")
        driver = req.driver or "bridge"
        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        if req.ipam_driver not in ("", "default"):
            raise NotFound(f'plugin "{req.ipam_driver}" not found')
        if req.enable_ipv6:
            raise Unsupported("pyd does not support IPv6 networks yet")
        pools = await self._pools_for(req.pools)
        nid = new_id()
        device = req.options.get(BRIDGE_NAME_OPT) or "br-" + nid[:12]
        if not _valid_ifname(device):
            raise InvalidParameter(
                f"invalid bridge name {go_quote(device)}: an interface name has no whitespace, "
                "control characters, '/' or ':'"
            )
        if len(device) > 15:
            raise InvalidParameter(f"bridge name {device} is longer than 15 characters")
        for other in self._networks.values():
            if other.bridge == device:
                raise Conflict(f"bridge name {device} is already used by network {other.name}")
        exists = await self._blocking(self._nl.link_exists, device)
        if req.options.get(BRIDGE_NAME_OPT) and exists:
            raise Conflict(f"an interface named {device} already exists on the host")
        n = Network(
            id=nid,
            name=name,
            driver="bridge",
            created_nano=time.time_ns(),
            internal=req.internal,
            attachable=req.attachable,
            ipam_driver=req.ipam_driver or "default",
            ipam_options=dict(req.ipam_options),
            pools=pools,
            options=dict(req.options),
            labels=dict(req.labels),
            bridge=device,
        )
        await self._repo.add(n)
        self._networks[n.id] = n
        try:
            await self._ensure_bridge(n)
            await self._refresh()
        except BaseException:
            del self._networks[n.id]
            await self._repo.remove(n.id)
            await self._blocking(self._nl.delete_link, device)
            raise
        self._emit("create", n)
        return n, ""

    async def _pools_for(self, requested: Sequence[IpamPool]) -> tuple[IpamPool, ...]:
        used = [
            ipaddress.IPv4Network(p.subnet)
            for n in self._networks.values()
            for p in n.pools
            if p.subnet
        ]
        out = []
        for p in requested:
            if not p.subnet:
                raise InvalidParameter("IPAM config needs a subnet")
            try:
                net = ipaddress.ip_network(p.subnet, strict=False)
            except ValueError as e:
                raise InvalidParameter(f"invalid subnet {p.subnet}: {e}") from e
            if not isinstance(net, ipaddress.IPv4Network):
                raise Unsupported("pyd does not support IPv6 networks yet")
            if str(net) != p.subnet.strip():
                raise InvalidParameter(
                    f"invalid network config: subnet {p.subnet} has host bits set "
                    f"(the network address is {net})"
                )
            if any(net.overlaps(u) for u in used):
                raise Forbidden("Pool overlaps with other one on this address space")
            gateway = p.gateway or str(next(net.hosts()))
            if ipaddress.IPv4Address(gateway) not in net:
                raise InvalidParameter(
                    f"invalid gateway {gateway}: it is not inside the subnet {net}"
                )
            if p.ip_range:
                rng = ipaddress.IPv4Network(p.ip_range, strict=False)
                if not rng.subnet_of(net):
                    raise InvalidParameter(f"ip-range {p.ip_range} is not inside the subnet {net}")
            used.append(net)
            out.append(IpamPool(subnet=str(net), gateway=gateway, ip_range=p.ip_range))
        if out:
            return tuple(out)
        routes = await self._blocking(self._nl.routes)
        taken = used + [r for r in routes if not self._own_route(r)]
        for base, size in self.config.default_address_pools or DEFAULT_POOLS:
            for cand in ipaddress.IPv4Network(base, strict=False).subnets(new_prefix=size):
                if not any(cand.overlaps(t) for t in taken):
                    return (IpamPool(subnet=str(cand), gateway=str(next(cand.hosts()))),)
        raise Forbidden("all predefined address pools have been fully subnetted")

    async def list_networks(self, filters: dict[str, list[str]] | None = None) -> list[NetworkView]:
        """C{docker network ls} with dockerd's filters."""
        f = filters or {}
        allowed = {"driver", "id", "label", "name", "scope", "type", "dangling"}
        for key in f:
            if key not in allowed:
                raise InvalidParameter(f"invalid filter '{key}'")
        views = [await self._view(n) for n in self._networks.values()]
        out = []
        for v in views:
            n = v.network
            if f.get("driver") and n.driver not in f["driver"]:
                continue
            if f.get("id") and not any(n.id.startswith(x) for x in f["id"]):
                continue
            if f.get("name") and not any(x in n.name for x in f["name"]):
                continue
            if f.get("scope") and n.scope not in f["scope"]:
                continue
            if f.get("type"):
                for t in f["type"]:
                    if t not in ("custom", "builtin"):
                        raise InvalidParameter(f"invalid filter: 'type'='{t}'")
                kind = "builtin" if n.predefined else "custom"
                if kind not in f["type"]:
                    continue
            if f.get("label") and not all(_label_match(n.labels, x) for x in f["label"]):
                continue
            if f.get("dangling"):
                vals = {x.lower() for x in f["dangling"]}
                if not vals <= {"true", "false", "1", "0"}:
                    raise InvalidParameter(f"invalid filter 'dangling={f['dangling'][0]}'")
                want_dangling = bool(vals & {"true", "1"})
                dangling = not n.predefined and not v.endpoints
                if dangling != want_dangling:
                    continue
            out.append(v)
        return out

    async def inspect(self, ref: str) -> NetworkView:
        """C{docker network inspect}."""
        return await self._view(self.resolve(ref))

    async def _view(self, n: Network) -> NetworkView:
        eps = [a for a in self._active if a.network_id == n.id]
        return NetworkView(network=n, endpoints=tuple((a, a.config.get("name", "")) for a in eps))

    async def remove(self, ref: str) -> None:
        """C{docker network rm}. @raise Forbidden: predefined, or in use."""
        await self._locked(lambda: self._remove(ref))

    async def _remove(self, ref: str) -> None:
        n = self.resolve(ref)
        if n.predefined:
            raise Forbidden(f"{n.name} is a pre-defined network and cannot be removed")
        active = [a for a in self._active if a.network_id == n.id]
        if active:
            desc = ", ".join(
                f'name:"{a.config.get("name", "")}" id:"{short_id(a.container_id)}"' for a in active
            )
            raise Forbidden(
                f"error while removing network: network {n.name} has active endpoints ({desc})"
            )
        await self._drop(n)

    async def _drop(self, n: Network) -> None:
        del self._networks[n.id]
        await self._repo.remove(n.id)
        if n.bridge:
            await self._blocking(self._nl.delete_link, n.bridge)
        await self._refresh()
        self._emit("destroy", n)

    async def prune(self, filters: dict[str, list[str]] | None = None) -> list[str]:
        """C{docker network prune}: user networks without running containers."""
        f = filters or {}
        for key in f:
            if key not in ("until", "label", "label!"):
                raise InvalidParameter(f"invalid filter '{key}'")

        async def run() -> list[str]:
            gone = []
            for n in list(self._networks.values()):
                if n.predefined or any(a.network_id == n.id for a in self._active):
                    continue
                if f.get("label") and not all(_label_match(n.labels, x) for x in f["label"]):
                    continue
                if f.get("label!") and any(_label_match(n.labels, x) for x in f["label!"]):
                    continue
                if f.get("until") and not all(n.created_nano <= _until_nano(x) for x in f["until"]):
                    continue
                await self._drop(n)
                gone.append(n.name)
            return gone

        return await self._locked(run)  # type: ignore[no-any-return]

    # -- NetworkProvider -----------------------------------------------------------------

    async def validate(
        self,
        container_id: str,
        network_mode: str,
        endpoints_config: dict[str, Any],
        req: NetworkRequest,
    ) -> None:
        """Check a create request before the container exists."""
        mode = network_mode or "default"
        if req.links:
            raise InvalidParameter(
                "legacy container links (--link) are not supported by pyd: "
                "put the containers on a user-defined network and use their names"
            )
        eps = dict(endpoints_config or {})
        if mode == "host" or mode == "none":
            others = [k for k in eps if k not in (mode, "default")]
            if others:
                raise InvalidParameter(
                    "conflicting options: host type networking can't be used with links. "
                    "This would result in undefined behavior"
                    if mode == "host"
                    else "container cannot be connected to multiple networks with one of the "
                    "networks in private (none) mode"
                )
        elif mode.startswith("container:"):
            target = mode.split(":", 1)[1]
            if not target:
                raise InvalidParameter("invalid network mode: container: needs a container name")
            if req.port_bindings or req.publish_all:
                raise InvalidParameter(
                    "conflicting options: port publishing and the container type network mode"
                )
            if self.lookup is not None:
                await self.lookup.network_container(target)
        else:
            self._network_for_mode(mode)
            for key, ep in eps.items():
                net = self._network_for_mode(key)
                self._check_endpoint_config(net, ep or {})
        if mode not in ("host",) and not mode.startswith("container:"):
            self._parse_ports(req, ())
        for h in req.extra_hosts:
            parse_extra_host(h)

    def _check_endpoint_config(self, net: Network, ep: dict[str, Any]) -> None:
        ipam = ep.get("IPAMConfig") or {}
        ip = ipam.get("IPv4Address") or ""
        if ip:
            if not self._is_user(net):
                raise InvalidParameter(
                    "user specified IP address is supported on user defined networks only"
                )
            try:
                addr = ipaddress.IPv4Address(ip)
            except ValueError as e:
                raise InvalidParameter(f"invalid IPv4 address: {ip}") from e
            if not any(addr in ipaddress.IPv4Network(p.subnet) for p in net.pools):
                raise InvalidParameter(
                    f"no configured subnet or ip-range contain the IP address {ip}"
                )
        for alias in ep.get("Aliases") or []:
            if not isinstance(alias, str) or not line_safe(alias):
                raise InvalidParameter(
                    f"invalid alias {go_quote(str(alias))}: it must not contain whitespace or "
                    "control characters"
                )
        if ep.get("Aliases") and not self._is_user(net):
            raise InvalidParameter(
                "network-scoped alias is supported only for containers in user defined networks"
            )
        mac = ep.get("MacAddress") or ""
        if mac and not _valid_mac(mac):
            raise InvalidParameter(f"invalid MAC address: {mac}")

    def _parse_ports(
        self, req: NetworkRequest, exposed: Sequence[str]
    ) -> list[tuple[int, str, str, int, int]]:
        """(container_port, proto, host_ip, host_lo, host_hi) per requested binding."""
        out = []
        for spec, binds in req.port_bindings.items():
            port, proto = _port_key(spec)
            for b in binds or (PortBinding(),):
                host_ip = b.host_ip
                if host_ip:
                    try:
                        ipaddress.IPv4Address(host_ip)
                    except ValueError:
                        if ":" in host_ip:  # IPv6 host addresses: not served, skipped
                            continue
                        raise InvalidParameter(f"invalid host IP: {host_ip}") from None
                lo, hi = host_port_range(b.host_port)
                out.append((port, proto, host_ip, lo, hi))
        if req.publish_all:
            have = {(p, pr) for p, pr, *_ in out}
            for spec in exposed:
                port, proto = _port_key(spec)
                if (port, proto) not in have:
                    out.append((port, proto, "", 0, 0))
        return out

    async def setup(
        self,
        container_id: str,
        name: str,
        hostname: str,
        network_mode: str,
        endpoints_config: dict[str, Any],
        req: NetworkRequest,
        exposed_ports: Sequence[str],
    ) -> NetworkSetup:
        """Prepare the container's network before it starts."""

        async def run() -> NetworkSetup:
            return await self._setup(
                container_id,
                name.lstrip("/"),
                hostname,
                network_mode or "default",
                dict(endpoints_config or {}),
                req,
                exposed_ports,
            )

        return await self._locked(run)  # type: ignore[no-any-return]

    def _dns_settings(
        self, req: NetworkRequest, resolver: str | None
    ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], list[str]]:
        """(servers for resolv.conf, search, options, upstreams for our resolver)."""
        rc = self._resolv(req, "internal" if resolver else "legacy")
        return rc.nameservers, rc.search, rc.options, _upstreams(rc)

    def _resolv(self, req: NetworkRequest, kind: str) -> resolvconf.ResolvConf:
        """The container's resolv.conf as dockerd makes it.

        C{kind}: C{"internal"} (served by the embedded resolver at 127.0.0.11; the nameservers
        become its external servers), C{"legacy"} (the default bridge: no loopback servers) or
        C{"none"} (the host's file with the overrides applied, untransformed).
        """
        path = self.config.resolv_conf
        rc = resolvconf.with_overrides(
            resolvconf.parse(_read_text(path), path),
            list(req.dns or self.config.dns),
            list(req.dns_search or self.config.dns_search),
            list(req.dns_options or self.config.dns_opts),
        )
        if kind == "internal":
            return resolvconf.for_internal(rc)
        if kind == "legacy":
            return resolvconf.for_legacy(rc)
        return rc

    def _resolv_setup(self, req: NetworkRequest, kind: str) -> dict[str, Any]:
        """The NetworkSetup fields for resolv.conf, and the upstreams to record."""
        rc = self._resolv(req, kind)
        return {
            "dns_servers": rc.nameservers,
            "dns_search": rc.search,
            "dns_options": rc.options,
            "resolv_conf": resolvconf.generate(rc),
        }

    async def _serve_dns(self, cid: str, path: str) -> None:
        """Answer DNS at 127.0.0.11 inside the namespace at C{path} (once per namespace).

        The resolver's sockets are made inside the namespace on free ports, adopted by the
        reactor, and the namespace's C{pyd_dns} table sends port 53 there. The ports are
        recorded next to the namespace so a restarted daemon takes the same ones again.
        """
        dns = self._dns
        if dns is None or dns.ports(cid) is not None:
            return
        marker = self._dns_marker(cid)
        want = await self._blocking(_read_ports, marker)
        udp, tcp = await self._blocking(
            self._nl.dns_sockets, path, resolvconf.INTERNAL_NS, *(want or (0, 0))
        )
        ports = dns.serve(cid, udp, tcp)
        if ports == want:
            return
        try:
            await self._fw.apply_dns(path, resolvconf.INTERNAL_NS, *ports)
            await self._blocking(_write_ports, marker, ports)
        except Exception as e:
            await dns.stop(cid)
            raise SystemError_(f"setting up the container's DNS failed: {e}") from e

    async def _stop_dns(self, cid: str) -> None:
        if self._dns is not None:
            await self._dns.stop(cid)
        await self._blocking(_remove_file, self._dns_marker(cid))

    def _hosts(
        self, req: NetworkRequest, own: tuple[str, str] | None, gateway: str
    ) -> tuple[tuple[str, str], ...]:
        entries = list(HOSTS_BASE)
        for h in req.extra_hosts:
            host, addr = parse_extra_host(h)
            if addr == "host-gateway":
                addr = gateway or self._default_gateway()
            entries.append((addr, host))
        if own is not None:
            entries.append(own)
        return tuple(entries)

    def _default_gateway(self) -> str:
        b = self._by_name("bridge")
        return b.pools[0].gateway if b and b.pools else "127.0.0.1"

    async def _setup(
        self,
        cid: str,
        name: str,
        hostname: str,
        mode: str,
        eps_cfg: dict[str, Any],
        req: NetworkRequest,
        exposed: Sequence[str],
    ) -> NetworkSetup:
        if req.links:
            raise InvalidParameter(
                "legacy container links (--link) are not supported by pyd: "
                "put the containers on a user-defined network and use their names"
            )
        if mode == "host":
            _, search, opts, _ = self._dns_settings(req, None)
            h_servers, _, _ = _read_resolv(self.config.resolv_conf)
            return NetworkSetup(
                netns_path=None,
                endpoints=(),
                ports=(),
                hosts_entries=self._hosts(req, None, ""),
                dns_servers=tuple(req.dns or self.config.dns or h_servers),
                dns_search=search,
                dns_options=opts,
            )
        if mode.startswith("container:"):
            return await self._setup_joined(mode.split(":", 1)[1], req)
        path = self.netns_path(cid)
        await self._blocking(self._nl.remove_netns, path)
        await self._stop_dns(cid)
        if mode == "none":
            await self._blocking(self._nl.create_netns, path)
            return NetworkSetup(
                netns_path=path,
                endpoints=(),
                ports=(),
                hosts_entries=self._hosts(req, None, ""),
                **self._resolv_setup(req, "none"),
            )
        primary = self._network_for_mode(mode)
        atts = await self._materialize(cid, name, mode, eps_cfg)
        # The network named by the mode goes first: it gets eth0, the default route and ports.
        atts.sort(key=lambda a: (a.network_id != primary.id, a.config.get("order", 0)))
        await self._blocking(self._nl.create_netns, path)
        endpoints: list[Endpoint] = []
        ports: list[PortMapping] = []
        resolver = False
        try:
            gateway_set = False
            for i, att in enumerate(atts):
                found = self._networks.get(att.network_id)
                if found is None:
                    raise NotFound(f"network {att.network_id} not found")
                use_gw = not found.internal and not gateway_set
                ep = await self._plug(path, cid, name, found, att, f"eth{i}", use_gw)
                gateway_set = gateway_set or use_gw
                endpoints.append(ep)
                resolver = resolver or (self._is_user(found) and self._dns is not None)
            if resolver:
                await self._serve_dns(cid, path)
            kind = "internal" if resolver else "legacy"
            resolv = self._resolv_setup(req, kind)
            upstream = _upstreams(self._resolv(req, "internal"))
            first = atts[0]
            prim_net = self._networks[first.network_id]
            ip = endpoints[0].ipv4
            if not prim_net.internal:
                ports = await self._publish(first, name, ip, req, exposed)
            # One read: each update below touches only its own row.
            fresh = {f.id: f for f in await self._repo.endpoints(container_id=cid)}
            for att in atts:
                f = fresh.get(att.id)
                if f is not None:
                    cfg = dict(f.config)
                    cfg["dns_upstream"] = upstream
                    cfg["dns_config"] = {
                        "Dns": list(req.dns),
                        "DnsSearch": list(req.dns_search),
                        "DnsOptions": list(req.dns_options),
                    }
                    cfg["hostname"] = hostname
                    await self._repo.update_endpoint(f.id, config=cfg)
            await self._refresh()
        except BaseException:
            await self._stop_dns(cid)
            await self._blocking(self._nl.remove_netns, path)
            for att in atts:
                await self._blocking(self._nl.delete_link, _veth_name(cid, att.network_id))
            await self._repo.clear_container(cid)
            await self._refresh()
            raise
        for ep_, att in zip(endpoints, atts, strict=True):
            self._emit("connect", self._networks[att.network_id], container=cid)
            _ = ep_
        own = (endpoints[0].ipv4, hostname) if endpoints and hostname else None
        return NetworkSetup(
            netns_path=path,
            endpoints=tuple(endpoints),
            ports=tuple(ports),
            hosts_entries=self._hosts(req, own, endpoints[0].gateway if endpoints else ""),
            **resolv,
        )

    async def _materialize(
        self, cid: str, name: str, mode: str, eps_cfg: dict[str, Any]
    ) -> list[Attachment]:
        """The container's endpoint rows, with its create-time networks added if they never were.

        The create-time networks (the mode's network and C{EndpointsConfig}) become rows once:
        at the first start, or at the first C{network connect}/C{disconnect} of a never-started
        container (compose v1 disconnects and re-connects each network before the first start).
        Rows made by C{network connect} do not replace them.
        """
        atts = await self._repo.endpoints(container_id=cid)
        if mode in ("host", "none") or mode.startswith("container:"):
            return atts
        if any(a.config.get("initial") for a in atts):
            return atts
        if self.lookup is not None:
            try:
                ref = await self.lookup.network_container(cid)
            except NotFound:
                ref = None
            if ref is not None and ref.networks_materialized:
                return atts
        primary = self._network_for_mode(mode)
        have = {a.network_id for a in atts}
        # Keys may name a network by name, id or "default"; each network joins once.
        wanted: list[tuple[Network, dict[str, Any]]] = [(primary, {})]
        for key, ep in eps_cfg.items():
            net = self._network_for_mode(key)
            for i, (w, cfg) in enumerate(wanted):
                if w.id == net.id:
                    wanted[i] = (w, {**cfg, **{k: v for k, v in (ep or {}).items() if v}})
                    break
            else:
                wanted.append((net, dict(ep or {})))
        for net, ep in wanted:
            if net.id in have:
                continue
            self._check_endpoint_config(net, ep)
            att = self._new_attachment(cid, name, net, ep)
            att = attrs.evolve(att, config={**att.config, "initial": True})
            atts.append(await self._repo.add_endpoint(att))
        if self.lookup is not None:
            await self.lookup.networks_materialized(cid)
        return atts

    def _new_attachment(
        self, cid: str, name: str, net: Network, ep: dict[str, Any], order: int = 0
    ) -> Attachment:
        ipam = ep.get("IPAMConfig") or {}
        aliases = tuple(dict.fromkeys(a for a in (ep.get("Aliases") or []) if a))
        return Attachment(
            id=new_id(),
            network_id=net.id,
            container_id=cid,
            ipv4=None,
            mac=(ep.get("MacAddress") or None),
            aliases=aliases,
            config={
                "name": name,
                "requested_ipv4": ipam.get("IPv4Address") or "",
                "order": order,
                "host_ifname": _veth_name(cid, net.id),
            },
        )

    async def _plug(
        self,
        path: str,
        cid: str,
        name: str,
        net: Network,
        att: Attachment,
        ifname: str,
        use_gateway: bool,
    ) -> Endpoint:
        reserved = [p.gateway for p in net.pools]
        ip = await self._repo.allocate(
            att.id, net, att.config.get("requested_ipv4") or None, reserved
        )
        mac = att.mac or _mac_for(ip)
        pool = net.pools[0]
        prefix = ipaddress.IPv4Network(pool.subnet).prefixlen
        host_if = _veth_name(cid, net.id)
        cfg = dict(att.config)
        cfg.update({"name": name, "ifname": ifname, "host_ifname": host_if})
        await self._repo.update_endpoint(att.id, config=cfg)
        mtu = int(net.options.get(MTU_OPT) or self.config.mtu)
        await self._blocking(
            self._nl.attach,
            path,
            Interface(
                bridge=str(net.bridge),
                host_ifname=host_if,
                ifname=ifname,
                address=ip,
                prefixlen=prefix,
                mac=mac,
                gateway=pool.gateway if use_gateway else None,
                mtu=mtu,
            ),
        )
        return self._endpoint(net, att, ip, mac)

    def _endpoint(self, net: Network, att: Attachment, ip: str, mac: str) -> Endpoint:
        pool = net.pools[0]
        prefix = ipaddress.IPv4Network(pool.subnet).prefixlen
        names: tuple[str, ...] = ()
        if self._is_user(net):
            names = (att.config.get("name", ""), *att.aliases, short_id(att.container_id))
        return Endpoint(
            network_name=net.name,
            network_id=net.id,
            endpoint_id=att.id,
            ipv4=ip,
            prefixlen=prefix,
            gateway="" if net.internal else pool.gateway,
            mac=mac,
            aliases=att.aliases,
            dns_names=tuple(n for n in names if n),
        )

    async def _publish(
        self,
        att: Attachment,
        name: str,
        container_ip: str,
        req: NetworkRequest,
        exposed: Sequence[str],
    ) -> list[PortMapping]:
        wanted = self._parse_ports(req, exposed)
        if not wanted:
            return []
        taken = {
            (p["proto"], int(p["host_port"]), p["host_ip"])
            for a in self._active
            for p in a.config.get("ports") or []
        }

        def clash(proto: str, port: int, ip: str) -> bool:
            for tp, tport, tip in taken:
                if tp == proto and tport == port and (not tip or not ip or tip == ip):
                    return True
            return False

        chosen: list[dict[str, Any]] = []
        for cport, proto, host_ip, lo, hi in wanted:
            shown_ip = host_ip or "0.0.0.0"
            if lo == 0:
                port = await self._ephemeral(proto, host_ip, clash)
            else:
                port = 0
                for cand in range(lo, hi + 1):
                    if clash(proto, cand, host_ip):
                        continue
                    if not await self._io.run(self._can_bind, host_ip, cand, proto):
                        if lo == hi:
                            raise Conflict(
                                f"driver failed programming external connectivity on endpoint "
                                f"{name} ({att.id}): failed to bind host port for "
                                f"{shown_ip}:{cand}:{container_ip}:{cport}/{proto}: "
                                "address already in use"
                            )
                        continue
                    port = cand
                    break
                if not port:
                    raise Conflict(
                        f"Bind for {shown_ip}:{lo if lo == hi else f'{lo}-{hi}'} failed: "
                        "port is already allocated"
                    )
            taken.add((proto, port, host_ip))
            chosen.append(
                {"proto": proto, "host_ip": host_ip, "host_port": port, "container_port": cport}
            )
        fresh = [
            a for a in await self._repo.endpoints(container_id=att.container_id) if a.id == att.id
        ]
        cfg = dict(fresh[0].config if fresh else att.config)
        cfg["ports"] = chosen
        await self._repo.update_endpoint(att.id, config=cfg)
        return [
            PortMapping(
                container_port=c["container_port"],
                protocol=c["proto"],
                host_ip=c["host_ip"] or "0.0.0.0",
                host_port=c["host_port"],
            )
            for c in chosen
        ]

    async def _ephemeral(
        self, proto: str, host_ip: str, clash: Callable[[str, int, str], bool]
    ) -> int:
        lo, hi = EPHEMERAL
        span = hi - lo + 1
        start = self._next_ephemeral
        for i in range(span):
            cand = lo + (start - lo + i) % span
            if clash(proto, cand, host_ip):
                continue
            if await self._io.run(self._can_bind, host_ip, cand, proto):
                self._next_ephemeral = lo + (cand - lo + 1) % span
                return cand
        raise Conflict("no free host port in the ephemeral range")

    async def _setup_joined(self, target: str, req: NetworkRequest) -> NetworkSetup:
        if self.lookup is None:
            raise NotFound(f"No such container: {target}")
        other = await self.lookup.network_container(target)
        if other.id != target and (is_full_id(target) or other.name != target.lstrip("/")):
            # The container pinned at create (its full id) is gone; whatever else the value
            # now names (a container called by that id, an id prefix) is not what was allowed.
            raise NotFound(f"No such container: {target}")
        if not other.running:
            raise Conflict(
                f"cannot join network namespace of a non running container: {other.name}"
            )
        mode = other.network_mode or "default"
        if mode == "host":
            return await self._setup("", "", "", "host", {}, req, ())
        if mode.startswith("container:"):
            return await self._setup_joined(mode.split(":", 1)[1], req)
        path = self.netns_path(other.id)
        atts = [a for a in self._active if a.container_id == other.id]
        served = self._dns is not None and self._dns.ports(other.id) is not None
        own = None
        if atts and atts[0].ipv4 and atts[0].config.get("hostname"):
            own = (str(atts[0].ipv4), str(atts[0].config["hostname"]))
        return NetworkSetup(
            netns_path=path,
            endpoints=(),
            ports=(),
            hosts_entries=self._hosts(req, own, ""),
            **self._resolv_setup(req, "internal" if served else "legacy"),
        )

    async def teardown(self, container_id: str) -> None:
        """After the container stopped: ports, addresses, interfaces and the namespace go."""
        await self._locked(lambda: self._teardown(container_id))

    async def _teardown(self, cid: str) -> None:
        atts = await self._repo.endpoints(container_id=cid)
        await self._stop_dns(cid)
        await self._blocking(self._nl.remove_netns, self.netns_path(cid))
        for a in atts:
            await self._blocking(self._nl.delete_link, _veth_name(cid, a.network_id))
        was_active = [a for a in atts if a.ipv4 is not None]
        await self._repo.clear_container(cid)
        await self._refresh()
        for a in was_active:
            net = self._networks.get(a.network_id)
            if net is not None:
                self._emit("disconnect", net, container=cid)

    async def release(self, container_id: str) -> None:
        """On removal: drop the container's endpoints (addresses go back to the pool)."""

        async def run() -> None:
            await self._teardown(container_id)
            await self._repo.remove_endpoints(container_id)

        await self._locked(run)

    async def container_endpoints(self, container_id: str) -> list[Endpoint]:
        """The container's current endpoints (for container inspect after connect/disconnect).

        Stopped containers report their networks with empty addresses, as dockerd does.
        """
        out = []
        for a in await self._repo.endpoints(container_id=container_id):
            net = self._networks.get(a.network_id)
            if net is None:
                continue
            if a.ipv4:
                out.append(self._endpoint(net, a, a.ipv4, a.mac or _mac_for(a.ipv4)))
            else:
                out.append(
                    Endpoint(
                        network_name=net.name,
                        network_id=net.id,
                        endpoint_id="",
                        ipv4="",
                        prefixlen=0,
                        gateway="",
                        mac=a.mac or "",
                        aliases=a.aliases,
                    )
                )
        return out

    # -- connect / disconnect ------------------------------------------------------------

    async def connect(self, ref: str, container: str, endpoint_config: dict[str, Any]) -> None:
        """C{docker network connect}: live when the container runs, recorded otherwise."""
        net = self.resolve(ref)
        if self.lookup is None:
            raise NotFound(f"No such container: {container}")
        c = await self.lookup.network_container(container)

        async def run() -> None:
            await self._connect(net, c, dict(endpoint_config or {}))

        await self._locked(run)

    async def _connect(self, net: Network, c: ContainerRef, ep: dict[str, Any]) -> None:
        mode = c.network_mode or "default"
        if net.driver == "host" or mode == "host":
            raise Forbidden(
                "container cannot be disconnected from host network or connected to host network"
            )
        if net.driver == "null" or mode == "none":
            raise Forbidden(
                "container cannot be connected to multiple networks with one of the networks "
                "in private (none) mode"
            )
        if mode.startswith("container:"):
            raise Forbidden(
                "container sharing network namespace with another container or host cannot be connected to any other network"
            )
        self._check_endpoint_config(net, ep)
        atts = await self._materialize(c.id, c.name, mode, dict(c.endpoints_config))
        if any(a.network_id == net.id for a in atts):
            raise Forbidden(f"endpoint with name {c.name} already exists in network {net.name}")
        att = self._new_attachment(c.id, c.name, net, ep, order=len(atts))
        await self._repo.add_endpoint(att)
        path = self.netns_path(c.id)
        resolv_text: str | None = None
        if not c.running or not await self._blocking(os.path.exists, path):
            return
        try:
            present = await self._blocking(self._nl.netns_links, path)
            i = 0
            while f"eth{i}" in present:
                i += 1
            has_default = any(
                a.ipv4 and not self._networks[a.network_id].internal
                for a in atts
                if a.network_id in self._networks
            )
            await self._plug(
                path, c.id, c.name, net, att, f"eth{i}", not has_default and not net.internal
            )
            primary = [a for a in atts if a.ipv4]
            upstream = primary[0].config.get("dns_upstream") if primary else None
            dns_config = dict(primary[0].config.get("dns_config") or {}) if primary else {}
            fresh = [a for a in await self._repo.endpoints(container_id=c.id) if a.id == att.id]
            cfg = dict(fresh[0].config)
            cfg["dns_upstream"] = upstream or []
            cfg["dns_config"] = dns_config
            await self._repo.update_endpoint(att.id, config=cfg)
            if self._is_user(net) and self._dns is not None and self._dns.ports(c.id) is None:
                # The first user-defined network: start answering at 127.0.0.11 before the
                # container's resolv.conf is switched to it (dockerd's rebuildDNS).
                await self._serve_dns(c.id, path)
                resolv_text = resolvconf.generate(
                    self._resolv(network_request(dns_config), "internal")
                )
            await self._refresh()
        except BaseException:
            await self._blocking(self._nl.delete_link, _veth_name(c.id, net.id))
            await self._repo.remove_endpoints(c.id, net.id)
            await self._refresh()
            raise
        self._emit("connect", net, container=c.id)
        await self._notify(c.id, resolv_text)

    async def disconnect(self, ref: str, container: str, force: bool = False) -> None:
        """C{docker network disconnect}."""
        net = self.resolve(ref)
        if self.lookup is None:
            raise NotFound(f"No such container: {container}")
        try:
            c = await self.lookup.network_container(container)
        except NotFound:
            if not force:
                raise
            c = None

        async def run() -> None:
            if c is None:
                # --force on a container that is gone: drop matching stale endpoints by name.
                for a in list(self._active) + await self._repo.endpoints(network_id=net.id):
                    if a.network_id == net.id and a.config.get("name") == container:
                        await self._repo.remove_endpoints(a.container_id, net.id)
                await self._refresh()
                return
            await self._disconnect(net, c)

        await self._locked(run)

    async def _disconnect(self, net: Network, c: ContainerRef) -> None:
        if net.driver == "host" or (c.network_mode or "") == "host":
            raise Forbidden(
                "container cannot be disconnected from host network or connected to host network"
            )
        mode = c.network_mode or "default"
        atts = [
            a
            for a in await self._materialize(c.id, c.name, mode, dict(c.endpoints_config))
            if a.network_id == net.id
        ]
        if not atts:
            raise Forbidden(f"container {c.id} is not connected to network {net.name}")
        att = atts[0]
        if att.ipv4 is not None:
            await self._blocking(
                self._nl.detach,
                self.netns_path(c.id),
                str(att.config.get("ifname", "")),
                _veth_name(c.id, net.id),
            )
        await self._repo.remove_endpoints(c.id, net.id)
        await self._refresh()
        if att.ipv4 is not None:
            self._emit("disconnect", net, container=c.id)
            await self._notify(c.id, None)

    async def _notify(self, cid: str, resolv_text: str | None) -> None:
        if not self.on_endpoints_changed:
            return
        eps = [e for e in await self.container_endpoints(cid) if e.ipv4]
        for cb in self.on_endpoints_changed:
            try:
                await cb(cid, eps, resolv_text)
            except Exception:  # noqa: BLE001 - a listener must not undo the kernel change
                log.failure("endpoint change listener failed")

    # -- the resolver's name table (called on the reactor thread) ------------------------

    def _dns_networks(self, cid: str) -> list[Network]:
        """The user-defined networks of a served container, in the order it joined them."""
        atts = sorted(
            (a for a in self._active if a.container_id == cid),
            key=lambda a: int(a.config.get("order", 0)),
        )
        out = []
        for a in atts:
            net = self._networks.get(a.network_id)
            if net is not None and self._is_user(net):
                out.append(net)
        return out

    def lookup_name(self, cid: str, name: str) -> list[str] | None:
        """Addresses of the containers called C{name} on the networks of container C{cid}.

        Names are container names, network aliases and ids (12 characters or more), also
        qualified with the network's name (C{web.appnet}); the first network with a match wins.
        """
        name = name.lower()
        for net in self._dns_networks(cid):
            wanted = {name}
            suffix = "." + net.name.lower()
            if name.endswith(suffix):
                wanted.add(name[: -len(suffix)])
            found = []
            for a in self._active:
                if a.network_id != net.id or a.ipv4 is None:
                    continue
                names = {str(a.config.get("name", "")).lower(), a.container_id[:12]}
                names.update(x.lower() for x in a.aliases)
                if wanted & names or any(
                    len(w) >= 12 and a.container_id.startswith(w) for w in wanted
                ):
                    found.append(a.ipv4)
            if found:
                return found
        return None

    def reverse_name(self, cid: str, address: str) -> str | None:
        """C{name.network} of the container owning C{address} on a network C{cid} shares."""
        for net in self._dns_networks(cid):
            for a in self._active:
                if a.network_id == net.id and a.ipv4 == address:
                    return f"{a.config.get('name', '')}.{net.name}"
        return None

    def upstream_servers(self, cid: str) -> list[str]:
        """Where the resolver forwards other names for container C{cid} (its ExtServers).

        None for a container whose every network is C{--internal}: as dockerd, names outside
        them are not looked up outside (the answer is SERVFAIL).
        """
        mine = [a for a in self._active if a.container_id == cid]
        nets = [self._networks.get(a.network_id) for a in mine]
        if mine and all(n is not None and n.internal for n in nets):
            return []
        for a in self._active:
            if a.container_id == cid and a.config.get("dns_upstream"):
                return [str(s) for s in a.config["dns_upstream"]]
        servers, _, _ = _read_resolv(self.config.resolv_conf)
        return list(self.config.dns) or servers


class ServiceNameTable:
    """Adapts L{NetworkService} to L{pyd.drivers.network.dns.NameTable} (keys: container ids).

    The resolver is built before the service it asks (the service is given the resolver), so
    the table reaches the service through C{service} when a query comes, never before.
    """

    def __init__(self, service: Callable[[], NetworkService]) -> None:
        self._service = service

    def lookup(self, key: str, name: str) -> list[str] | None:
        """Delegate to the service."""
        return self._service().lookup_name(key, name)

    def reverse(self, key: str, address: str) -> str | None:
        """Delegate to the service."""
        return self._service().reverse_name(key, address)

    def upstreams(self, key: str) -> list[str]:
        """Delegate to the service."""
        return self._service().upstream_servers(key)


def _label_match(labels: dict[str, str], spec: str) -> bool:
    k, sep, v = spec.partition("=")
    if k not in labels:
        return False
    return not sep or labels[k] == v


def _until_nano(value: str) -> int:
    try:
        return int(float(value) * 1e9)
    except ValueError:
        pass
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError as e:
        raise InvalidParameter(f"invalid filter 'until={value}'") from e
