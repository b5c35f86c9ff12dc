"""The network service (layer: engine): start-up reconciliation, create, list, inspect, remove and
prune, over the parts in this package.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence

import attrs
from twisted.logger import Logger

from pyd.core.errors import (
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
)
from pyd.core.ids import go_quote, line_safe, new_id, short_id
from pyd.core.records import IpamPool, Network
from pyd.engine.networks import configonly
from pyd.engine.networks.base import (
    BRIDGE_NAME_OPT,
    PREDEFINED,
    CreateRequest,
    NetworkView,
    _remove_file,
    _valid_ifname,
)
from pyd.engine.networks.endpoints import Endpoints

log = Logger()


def _host_forwards() -> bool:
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


# --- the service ---------------------------------------------------------------------------
class NetworkService(Endpoints):
    """Networks, endpoints, published ports and DNS for containers."""

    # -- start and stop --------------------------------------------------------------------

    async def start(self) -> None:
        """Create the predefined networks, re-create bridges and rules, drop leftovers."""
        await self._locked(self._start)

    async def _start(self) -> None:
        for n in await self._repo.all():
            self._networks[n.id] = n
        await self._ensure_predefined()
        if self.config.ip_forward and await self._blocking(self._nl.enable_ip_forwarding):
            log.info("ip-forward: turned on net.ipv4.ip_forward (as dockerd does)")
        if not self.config.iptables:
            # iptables=false: pyd adds no rules; a table (and accepts in the host's FORWARD)
            # left by an earlier run go.
            await self._fw.remove()
            await self._open_host_forward({"ip": (), "ip6": ()})
        for n in list(self._networks.values()):
            if n.driver == "bridge" and n.bridge and n.pools:
                await self._ensure_bridge(n)
        # Endpoints whose container is gone (it exited while we were down): give them back.
        for att in await self._repo.endpoints():
            if not att.plugged:
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
        if not await self._blocking(_host_forwards):
            log.warn(
                "IPv4 forwarding is disabled (net.ipv4.ip_forward=0, ip-forward=false): "
                "containers reach only the host, and published ports answer only on the host"
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

    # -- legacy links ----------------------------------------------------------------------

    async def allow_links(
        self, container_id: str, children: Sequence[tuple[str, Sequence[str]]]
    ) -> None:
        """dockerd's link rules: on the default bridge with C{icc} off, the linking container may
        reach each child's exposed ports (and the child answer from them). Kept in the
        container's default-bridge endpoint, so they go when it does; rendered only where icc
        is off (moby's bridge driver programs them only then)."""

        async def run() -> None:
            bridge = self._by_name("bridge")
            own = [
                a
                for a in await self._repo.endpoints(container_id=container_id)
                if bridge is not None and a.network_id == bridge.id and a.ipv4 is not None
            ]
            if not own:
                return
            allowed = []
            for child_ip, exposed in children:
                for key in exposed:
                    port, _, proto = key.partition("/")
                    if child_ip and port.isdigit():
                        allowed.append([child_ip, proto or "tcp", int(port)])
            cfg = dict(own[0].config)
            if cfg.get("link_ports", []) == allowed:
                return
            cfg["link_ports"] = allowed
            await self._repo.update_endpoint(own[0].id, config=cfg)
            await self._refresh()

        await self._locked(run)

    # -- create / list / inspect / remove ------------------------------------------------

    async def create(self, req: CreateRequest) -> tuple[Network, str]:
        """C{docker network create}. @return: the network and a warning ("" if none)."""
        return await self._locked(lambda: self._create(req))  # type: ignore[no-any-return]  # _locked is generic over the callback's result, typed Any

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
        configonly.check(req)
        if req.config_only:
            return await self._create_config_only(name, req)
        if req.ingress:
            # libnetwork's check (a Forbidden): an ingress network is a swarm-scope one, which
            # a standalone engine never has
            raise Forbidden("Ingress network can only be global scope network")
        if req.config_from:
            req = configonly.apply(
                configonly.find(list(self._networks.values()), req.config_from), req
            )
        driver = req.driver or "bridge"
        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        if req.ipam_driver not in ("", "default"):
            raise NotFound(f'plugin "{req.ipam_driver}" not found')
        if not req.enable_ipv4 and not req.enable_ipv6:
            raise InvalidParameter("IPv4 or IPv6 must be enabled")  # moby 28's bridge driver
        pools = await self._pools_for(req.pools, req.enable_ipv6, req.enable_ipv4)
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
        n = _record(req, nid, name, "bridge", pools, bridge=device)
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

    async def _create_config_only(self, name: str, req: CreateRequest) -> tuple[Network, str]:
        """A configuration-only network: its IPAM configuration checked (moby 28's
        ValidateIPAM) and stored as given; no driver, bridge or address (libnetwork resets its
        driver to C{null} and its scope to local, whatever was asked)."""
        pools = tuple(attrs.evolve(self._checked_pool(p, []), gateway=p.gateway) for p in req.pools)
        n = _record(req, new_id(), name, "null", pools, config_only=True)
        await self._repo.add(n)
        self._networks[n.id] = n
        self._emit("create", n)
        return n, ""

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

    async def remove(self, ref: str) -> None:
        """C{docker network rm}. @raise Forbidden: predefined, or in use."""
        await self._locked(lambda: self._remove(ref))

    async def _remove(self, ref: str) -> None:
        n = self.resolve(ref)
        if n.predefined:
            raise Forbidden(f"{n.name} is a pre-defined network and cannot be removed")
        if n.config_only and any(o.config_from == n.name for o in self._networks.values()):
            raise Forbidden(
                f'error while removing network: configuration network "{n.name}" is in use'
            )
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
        # The bridge before the row: a crash in between leaves a row whose bridge the next
        # start makes again (the other order left a bridge nothing knew of, for good).
        if n.bridge:
            await self._blocking(self._nl.delete_link, n.bridge)
        await self._repo.remove(n.id)
        if n.config_only:
            return  # dockerd logs no event for a configuration network's removal
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
                if n.config_only:
                    continue  # dockerd's prune leaves configuration networks alone
                if f.get("label") and not all(_label_match(n.labels, x) for x in f["label"]):
                    continue
                if f.get("label!") and any(_label_match(n.labels, x) for x in f["label!"]):
                    continue
                if f.get("until") and not all(n.created_nano <= _until_nano(x) for x in f["until"]):
                    continue
                await self._drop(n)
                gone.append(n.name)
            return gone

        return await self._locked(run)  # type: ignore[no-any-return]  # _locked is generic over the callback's result, typed Any


def _record(
    req: CreateRequest,
    nid: str,
    name: str,
    driver: str,
    pools: tuple[IpamPool, ...],
    *,
    bridge: str | None = None,
    config_only: bool = False,
) -> Network:
    """The Network record of a create request: the families, IPAM, driver options, labels,
    internal, attachable and config-from as asked, with the network's own id, name, driver,
    pools and bridge."""
    return Network(
        id=nid,
        name=name,
        driver=driver,
        created_nano=time.time_ns(),
        internal=req.internal,
        attachable=req.attachable,
        enable_ipv4=req.enable_ipv4,
        enable_ipv6=req.enable_ipv6,
        ipam_driver=req.ipam_driver or "default",
        ipam_options=None if req.ipam_options is None else dict(req.ipam_options),
        pools=pools,
        options=dict(req.options),
        labels=dict(req.labels),
        bridge=bridge,
        config_only=config_only,
        config_from=req.config_from,
    )


def _label_match(labels: dict[str, str], spec: str) -> bool:
    k, sep, v = spec.partition("=")
    if k not in labels:
        return False
    return not sep or labels[k] == v


def _until_nano(value: str) -> int:
    try:
        return int(float(value) * 1e9)
    except ValueError:  # not a number: tried as a timestamp below
        pass
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError as e:
        raise InvalidParameter(f"invalid filter 'until={value}'") from e
