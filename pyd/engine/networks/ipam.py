"""Addresses (layer: engine): the predefined networks, the default bridge's subnet (dockerd's
candidates, avoiding host routes), subnet pools of user networks, an endpoint's address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Sequence

from twisted.logger import Logger

from pyd.core.errors import (
    Forbidden,
    InvalidParameter,
    SystemError_,
)
from pyd.core.ids import new_id
from pyd.core.records import (
    Attachment,
    IpamPool,
    Network,
)
from pyd.engine.networks.base import (
    BRIDGE_NAME_OPT,
    ICC_OPT,
    MASQ_OPT,
    MTU_OPT,
    NetworkBase,
    _veth_name,
    default_bridge_name,
    v6_pool,
)
from pyd.engine.spec import EndpointRequest
from pyd.engine.spec.rules import parse_link

log = Logger()


# Candidate subnets for the default bridge when --bip is not given (dockerd's order).
DEFAULT_BRIDGE_CANDIDATES = tuple(f"172.{n}.0.0/16" for n in range(17, 32)) + tuple(
    f"192.168.{n}.0/20" for n in range(0, 256, 16)
)


DEFAULT_POOLS = (*tuple((f"172.{n}.0.0/16", 16) for n in range(17, 32)), ("192.168.0.0/16", 20))


def ula_base(host_id: str) -> str:
    """dockerd 28's IPv6 base pool for a host: C{fd00::/8} plus the low 40 bits of the first
    8 bytes of sha256(host id), as a /48 (moby daemon.go deriveULABaseNetwork)."""
    digest = hashlib.sha256(host_id.encode()).digest()
    gid = int.from_bytes(digest[:8], "big") & ((1 << 40) - 1)
    addr = ipaddress.IPv6Address(int(ipaddress.IPv6Address("fd00::")) | (gid << 80))
    return f"{addr}/48"


def _from_pools(
    pools: Sequence[tuple[str, int]],
    taken: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> IpamPool:
    """The first subnet of C{pools} (base, size) that overlaps nothing in C{taken}.

    The walk is lazy: an IPv6 /48 split into /64s has 65536 candidates and stops at the first
    free one.
    """
    for base, size in pools:
        net = ipaddress.ip_network(base, strict=False)
        same = [t for t in taken if t.version == net.version]
        for cand in net.subnets(new_prefix=size):
            if not any(cand.overlaps(t) for t in same):  # type: ignore[arg-type]  # same family
                gateway = next(cand.hosts()) if cand.version == 4 else cand.network_address + 1
                return IpamPool(subnet=str(cand), gateway=str(gateway), auto=True)
    raise Forbidden("all predefined address pools have been fully subnetted")


class Ipam(NetworkBase):
    """Predefined networks, pools and addresses."""

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
        pools = [IpamPool(subnet=subnet, gateway=gateway, ip_range=cfg.fixed_cidr)]
        if cfg.ipv6:
            pools.append(await self._default_bridge_v6(existing, device))
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
            pools=tuple(pools),
            options=options,
            bridge=device,
            enable_ipv6=cfg.ipv6,
        )
        if existing == want:
            return
        if existing is not None:
            await self._repo.remove(existing.id)
            if existing.bridge and existing.bridge != device:
                await self._blocking(self._nl.delete_link, existing.bridge)
        self._networks[want.id] = await self._repo.add(want)

    async def _default_bridge_v6(self, existing: Network | None, device: str) -> IpamPool:
        """The default bridge's IPv6 pool: C{bip6} (with C{fixed-cidr-v6} as its allocation
        range), C{fixed-cidr-v6}, the one it had, or (dockerd 28) a /64 of the default pools'
        IPv6 entries."""
        cfg = self.config
        if cfg.bip6:
            iface = ipaddress.IPv6Interface(cfg.bip6)
            return IpamPool(
                subnet=str(iface.network), gateway=str(iface.ip), ip_range=cfg.fixed_cidr_v6
            )
        if cfg.fixed_cidr_v6:
            net = ipaddress.IPv6Network(cfg.fixed_cidr_v6, strict=False)
            return IpamPool(subnet=str(net), gateway=str(net.network_address + 1))
        had = v6_pool(existing) if existing is not None and existing.bridge == device else None
        if had is not None:
            return had
        others = [
            ipaddress.ip_network(p.subnet)
            for n in self._networks.values()
            if n is not existing
            for p in n.pools
            if p.subnet
        ]
        routes = await self._blocking(self._nl.routes)
        return _from_pools(self._v6_pools(), others + [r for r in routes if not self._own_route(r)])

    def _used_subnets(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        # a configuration-only network's subnets are not taken: the networks made from it are
        return [
            ipaddress.ip_network(p.subnet)
            for n in self._networks.values()
            if not n.config_only
            for p in n.pools
            if p.subnet
        ]

    async def _pools_for(
        self, requested: Sequence[IpamPool], enable_ipv6: bool = False, enable_ipv4: bool = True
    ) -> tuple[IpamPool, ...]:
        """The network's pools: with IPv4, the IPv4 ones (asked for, or the first free default
        pool), then, with IPv6, the IPv6 ones (asked for, or a /64 of the default pools' IPv6
        entries).

        An IPv6 subnet asked for without IPv6 is ignored, as dockerd's validateIpamConfig skips
        it; an IPv4 one on an IPv6-only network is checked and not allocated (libnetwork's
        ipamAllocate allocates only the enabled families).
        """
        used = self._used_subnets()
        v4: list[IpamPool] = []
        v6: list[IpamPool] = []
        for p in requested:
            pool = self._checked_pool(p, used)
            if ":" not in pool.subnet:
                if not enable_ipv4:
                    continue
                v4.append(pool)
            elif enable_ipv6:
                v6.append(pool)
            else:
                continue
            used.append(ipaddress.ip_network(pool.subnet))
        taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None = None
        if (enable_ipv4 and not v4) or (enable_ipv6 and not v6):
            routes = await self._blocking(self._nl.routes)
            taken = used + [r for r in routes if not self._own_route(r)]
        if enable_ipv4 and not v4:
            assert taken is not None
            v4.append(_from_pools(self._v4_pools(), taken))
        if enable_ipv6 and not v6:
            assert taken is not None
            v6.append(_from_pools(self._v6_pools(), taken))
        return (*v4, *v6)

    def _v4_pools(self) -> list[tuple[str, int]]:
        configured = [(b, s) for b, s in self.config.default_address_pools if ":" not in b]
        return configured or list(DEFAULT_POOLS)

    def _v6_pools(self) -> list[tuple[str, int]]:
        """The default pools' IPv6 entries; without any, dockerd 28's: a /48 ULA prefix derived
        from the daemon's id, split into /64s (daemon.go deriveULABaseNetwork)."""
        configured = [(b, s) for b, s in self.config.default_address_pools if ":" in b]
        return configured or [(ula_base(self.host_id()), 64)]

    def _checked_pool(
        self, p: IpamPool, used: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    ) -> IpamPool:
        """One pool asked for, validated with dockerd's texts (daemon/network.go)."""
        if not p.subnet:
            raise InvalidParameter("IPAM config needs a subnet")
        try:
            net = ipaddress.ip_network(p.subnet, strict=False)
        except ValueError as e:
            raise InvalidParameter(f"invalid subnet {p.subnet}: {e}") from e
        if net.network_address != ipaddress.ip_interface(p.subnet.strip()).ip:
            raise InvalidParameter(
                f"invalid network config: subnet {p.subnet} has host bits set "
                f"(the network address is {net})"
            )
        if any(net.version == u.version and net.overlaps(u) for u in used):  # type: ignore[arg-type]  # same family checked first
            raise Forbidden("Pool overlaps with other one on this address space")
        gateway = p.gateway or str(
            next(net.hosts()) if net.version == 4 else net.network_address + 1
        )
        try:
            gw = ipaddress.ip_address(gateway)
        except ValueError:
            raise InvalidParameter(f"invalid gateway {gateway}: invalid address") from None
        if gw.version != net.version or gw not in net:
            raise InvalidParameter(f"invalid gateway {gateway}: it is not inside the subnet {net}")
        if p.ip_range:
            try:
                rng = ipaddress.ip_network(p.ip_range, strict=False)
            except ValueError as e:
                raise InvalidParameter(f"invalid ip-range {p.ip_range}: {e}") from e
            if rng.version != net.version or not rng.subnet_of(net):  # type: ignore[arg-type]  # same family checked first
                raise InvalidParameter(f"ip-range {p.ip_range} is not inside the subnet {net}")
        for aux_name, aux in p.aux_addresses.items():
            # dockerd's texts (daemon/network.go validateIpamConfig)
            try:
                aux_ip = ipaddress.ip_address(aux)
            except ValueError:
                raise InvalidParameter(
                    f"invalid auxiliary address {aux_name}: invalid address"
                ) from None
            if aux_ip.version != net.version or aux_ip not in net:
                raise InvalidParameter(
                    f"invalid auxiliary address {aux_name}: parent subnet {net} doesn't "
                    "contain this address"
                )
        return IpamPool(
            subnet=str(net),
            gateway=str(gw),
            ip_range=p.ip_range,
            aux_addresses=dict(p.aux_addresses),
        )

    def _default_gateway(self) -> str:
        b = self._by_name("bridge")
        return b.pools[0].gateway if b and b.pools else "127.0.0.1"

    def _new_attachment(
        self, cid: str, name: str, net: Network, ep: EndpointRequest, order: int = 0
    ) -> Attachment:
        aliases = tuple(dict.fromkeys(a for a in ep.aliases if a))
        return Attachment(
            id=new_id(),
            network_id=net.id,
            container_id=cid,
            ipv4=None,
            mac=(ep.mac_address or None),
            aliases=aliases,
            config={
                "name": name,
                "requested_ipv4": ep.ipam.ipv4_address if ep.ipam is not None else "",
                "requested_ipv6": ep.ipam.ipv6_address if ep.ipam is not None else "",
                "link_local_ips": list(ep.ipam.link_local_ips) if ep.ipam is not None else [],
                "order": order,
                "host_ifname": _veth_name(cid, net.id),
                # Legacy links on a user-defined network: aliases only this container's
                # resolver answers (libnetwork CreateOptionAlias), [[name, alias], ...].
                "links": [list(parse_link(x)) for x in ep.links],
            },
        )
