"""Addresses (layer: engine): the predefined networks, the default bridge's subnet (dockerd's
candidates, avoiding host routes), subnet pools of user networks, an endpoint's address.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence

from twisted.logger import Logger

from pyd.core.errors import (
    Forbidden,
    InvalidParameter,
    SystemError_,
    Unsupported,
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
)
from pyd.engine.spec import EndpointRequest
from pyd.engine.spec.rules import parse_link

log = Logger()


# Candidate subnets for the default bridge when --bip is not given (dockerd's order).
DEFAULT_BRIDGE_CANDIDATES = tuple(f"172.{n}.0.0/16" for n in range(17, 32)) + tuple(
    f"192.168.{n}.0/20" for n in range(0, 256, 16)
)


DEFAULT_POOLS = (*tuple((f"172.{n}.0.0/16", 16) for n in range(17, 32)), ("192.168.0.0/16", 20))


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
            for aux_name, aux in p.aux_addresses.items():
                # dockerd's texts (api/types/network/ipam.go ValidateIPAM)
                try:
                    aux_ip = ipaddress.IPv4Address(aux)
                except ValueError:
                    raise InvalidParameter(
                        f"invalid auxiliary address {aux_name}: invalid address"
                    ) from None
                if aux_ip not in net:
                    raise InvalidParameter(
                        f"invalid auxiliary address {aux_name}: parent subnet {net} doesn't "
                        "contain this address"
                    )
            used.append(net)
            out.append(
                IpamPool(
                    subnet=str(net),
                    gateway=gateway,
                    ip_range=p.ip_range,
                    aux_addresses=dict(p.aux_addresses),
                )
            )
        if out:
            return tuple(out)
        routes = await self._blocking(self._nl.routes)
        taken = used + [r for r in routes if not self._own_route(r)]
        for base, size in self.config.default_address_pools or DEFAULT_POOLS:
            for cand in ipaddress.IPv4Network(base, strict=False).subnets(new_prefix=size):
                if not any(cand.overlaps(t) for t in taken):
                    return (IpamPool(subnet=str(cand), gateway=str(next(cand.hosts()))),)
        raise Forbidden("all predefined address pools have been fully subnetted")

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
                "order": order,
                "host_ifname": _veth_name(cid, net.id),
                # Legacy links on a user-defined network: aliases only this container's
                # resolver answers (libnetwork CreateOptionAlias), [[name, alias], ...].
                "links": [list(parse_link(x)) for x in ep.links],
            },
        )
