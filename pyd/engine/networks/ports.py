"""Published ports (layer: engine): parsing C{-p} bindings, host port allocation from the
ephemeral range, and the rules that carry them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

from twisted.logger import Logger

from pyd.core.errors import (
    Conflict,
    InvalidParameter,
)
from pyd.core.records import (
    Attachment,
    PortMapping,
)
from pyd.engine.networks.base import EPHEMERAL, NetworkBase, _port_number, host_port_range
from pyd.engine.spec import NetworkRequest, PortBinding

log = Logger()


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


class Ports(NetworkBase):
    """Published ports."""

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
                        host_ip = str(ipaddress.ip_address(host_ip))
                    except ValueError:
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

    async def _publish(
        self,
        att: Attachment,
        name: str,
        container_ip: str,
        req: NetworkRequest,
        exposed: Sequence[str],
        container_ip6: str = "",
    ) -> list[PortMapping]:
        # An IPv6 host address is served by the ip6 rules, to the container's IPv6 address: a
        # container without one has nothing to send it to (dockerd would proxy it to IPv4 with
        # its userland proxy; pyd has none), so such a binding is left out.
        wanted = [w for w in self._parse_ports(req, exposed) if container_ip6 or ":" not in w[2]]
        if not container_ip:
            # A container without IPv4 (an IPv6-only network): moby 28's port mapper makes no
            # IPv4 binding, and one on every address is on IPv6's (::) alone.
            wanted = [
                (c, pr, ip or "::", lo, hi) for c, pr, ip, lo, hi in wanted if ":" in (ip or ":")
            ]
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
            if ":" in shown_ip:
                shown_ip = f"[{shown_ip}]"
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
        # A binding on every address is shown per family, as dockerd 28 shows it: 0.0.0.0, and
        # :: when something serves it: the ip6 rules for a container with an IPv6 address, the
        # userland proxy for an IPv4-only one (without it dockerd 28 makes no :: binding).
        both = bool(container_ip6) or self.proxies_ipv6
        shown = [
            (c, ip)
            for c in chosen
            for ip in ((c["host_ip"],) if c["host_ip"] else ("0.0.0.0", "::")[: 2 if both else 1])
        ]
        return [
            PortMapping(
                container_port=c["container_port"],
                protocol=c["proto"],
                host_ip=ip,
                host_port=c["host_port"],
            )
            for c, ip in shown
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
