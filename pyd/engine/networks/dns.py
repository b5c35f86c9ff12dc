"""Names (layer: engine): the embedded resolver at C{127.0.0.11} for containers on user-defined
networks, their resolv.conf, and the name table the resolver reads (L{ServiceNameTable}).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from pyd.core.errors import (
    SystemError_,
)
from pyd.core.records import (
    Network,
)
from pyd.engine import resolvconf
from pyd.engine.networks.base import NetworkBase, _remove_file
from pyd.engine.spec import NetworkRequest

log = Logger()


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
    except OSError:  # no host resolv.conf: no upstreams or search domains to copy
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


class Dns(NetworkBase):
    """The embedded resolver and resolv.conf."""

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
        """Addresses of the containers called C{name} on the networks of container C{cid}: the
        IPv4 ones, then the IPv6 ones of endpoints on networks with IPv6 (the resolver answers
        A with the first, AAAA with the second).

        Names are container names, network aliases and ids (12 characters or more), also
        qualified with the network's name (C{web.appnet}); the first network with a match wins.
        """
        name = name.lower()
        for net in self._dns_networks(cid):
            wanted = {name}
            suffix = "." + net.name.lower()
            if name.endswith(suffix):
                wanted.add(name[: -len(suffix)])
            # The querying container's legacy links on this network: alias -> name, seen by
            # it alone (libnetwork's per-endpoint CreateOptionAlias).
            for own in self._active:
                if own.container_id == cid and own.network_id == net.id:
                    for target, alias in own.config.get("links") or []:
                        if str(alias).lower() in wanted:
                            wanted.add(str(target).lower())
            found: list[str] = []
            found6: list[str] = []
            for a in self._active:
                if a.network_id != net.id or not a.plugged:
                    continue
                names = {str(a.config.get("name", "")).lower(), a.container_id[:12]}
                names.update(x.lower() for x in a.aliases)
                if wanted & names or any(
                    len(w) >= 12 and a.container_id.startswith(w) for w in wanted
                ):
                    if a.ipv4:
                        found.append(a.ipv4)
                    if a.ipv6 and net.enable_ipv6:
                        found6.append(a.ipv6)
            # On an IPv6-only network only AAAA has answers (A: an empty NOERROR, as dockerd 28)
            if found or found6:
                return found + found6
        return None

    def reverse_name(self, cid: str, address: str) -> str | None:
        """C{name.network} of the container owning C{address} on a network C{cid} shares."""
        for net in self._dns_networks(cid):
            for a in self._active:
                if a.network_id == net.id and address in (a.ipv4, a.ipv6):
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

    def __init__(self, service: Callable[[], Dns]) -> None:
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
