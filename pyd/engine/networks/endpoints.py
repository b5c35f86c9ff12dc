"""Containers on networks (layer: engine): validation of a container's network request, set-up
and teardown of its endpoints (veths, addresses, hosts file, DNS), live connect and disconnect.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Collection, Mapping, Sequence

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from pyd.core.errors import (
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
)
from pyd.core.ids import go_quote, is_full_id, line_safe
from pyd.core.records import (
    Attachment,
    Endpoint,
    Network,
    NetworkSetup,
    PortMapping,
)
from pyd.drivers.network.netlink import Interface
from pyd.engine import resolvconf
from pyd.engine.networks.base import (
    HOSTS_BASE,
    MTU_OPT,
    ContainerRef,
    _veth_name,
    v4_pool,
    v6_pool,
)
from pyd.engine.networks.configonly import NOT_ON_CONFIG_ONLY
from pyd.engine.networks.dns import Dns, _read_resolv, _upstreams
from pyd.engine.networks.ipam import Ipam
from pyd.engine.networks.plugging import Plugging
from pyd.engine.networks.ports import Ports
from pyd.engine.spec import EndpointRequest, NetworkRequest, network_request
from pyd.engine.spec.records import IPAMRequest
from pyd.engine.spec.rules import parse_extra_host, parse_link, validate_endpoint

log = Logger()


def _mac_for(ip: str) -> str:
    """dockerd 20.10's MAC of an endpoint: 02:42 and its IPv4 address (on an IPv6-only network
    the low 32 bits of its IPv6 address)."""
    b = ipaddress.ip_address(ip).packed[-4:]
    return "02:42:" + ":".join(f"{x:02x}" for x in b)


def _valid_mac(mac: str) -> bool:
    parts = mac.split(":")
    return len(parts) == 6 and all(
        len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts
    )


class Endpoints(Plugging, Ipam, Ports, Dns):
    """Endpoints of containers: set-up, teardown, connect, disconnect."""

    # -- NetworkProvider -----------------------------------------------------------------

    async def validate(
        self,
        container_id: str,
        network_mode: str,
        req: NetworkRequest,
    ) -> None:
        """Check a create request before the container exists."""
        mode = network_mode or "default"
        eps = req.endpoints
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
                self._check_endpoint_config(net, ep)
        if mode not in ("host",) and not mode.startswith("container:"):
            self._parse_ports(req, ())
        for h in req.extra_hosts:
            parse_extra_host(h)

    def _check_endpoint_config(self, net: Network, ep: EndpointRequest) -> None:
        validate_endpoint(ep.driver_opts, ep.gw_priority)
        ip = ep.ipam.ipv4_address if ep.ipam is not None else ""
        ip6 = ep.ipam.ipv6_address if ep.ipam is not None else ""
        if ip6:
            if not self._is_user(net):
                raise InvalidParameter(
                    "user specified IP address is supported on user defined networks only"
                )
            try:
                addr6 = ipaddress.IPv6Address(ip6)
            except ValueError as e:
                raise InvalidParameter(f"invalid IPv6 address: {ip6}") from e
            if addr6.is_unspecified or addr6.ipv4_mapped is not None or addr6.scope_id:
                raise InvalidParameter(f"invalid IPv6 address: {ip6}")
            p6 = v6_pool(net)
            if p6 is None or addr6 not in ipaddress.IPv6Network(p6.subnet):
                # daemon/container_operations.go validateEndpointIPAddress
                raise InvalidParameter(f"no configured subnet contains IP address {ip6}")
        if ip:
            if not self._is_user(net):
                raise InvalidParameter(
                    "user specified IP address is supported on user defined networks only"
                )
            try:
                addr = ipaddress.IPv4Address(ip)
            except ValueError as e:
                raise InvalidParameter(f"invalid IPv4 address: {ip}") from e
            pool = v4_pool(net)
            if pool is None:
                # moby 28 validateEndpointIPAddress: the network has no IPv4 subnet
                raise InvalidParameter(
                    "user specified IP address is supported only when connecting to networks "
                    "with user configured subnets"
                )
            if addr not in ipaddress.IPv4Network(pool.subnet):
                raise InvalidParameter(
                    f"no configured subnet or ip-range contain the IP address {ip}"
                )
        for alias in ep.aliases:
            if not line_safe(alias):
                raise InvalidParameter(
                    f"invalid alias {go_quote(alias)}: it must not contain whitespace or "
                    "control characters"
                )
        if ep.aliases and not self._is_user(net):
            raise InvalidParameter(
                "network-scoped alias is supported only for containers in user defined networks"
            )
        for link in ep.links:
            parse_link(link)
        mac = ep.mac_address
        if mac and not _valid_mac(mac):
            raise InvalidParameter(f"invalid MAC address: {mac}")

    async def setup(
        self,
        container_id: str,
        name: str,
        hostname: str,
        network_mode: str,
        req: NetworkRequest,
        exposed_ports: Sequence[str],
    ) -> NetworkSetup:
        """Prepare the container's network before it starts; its interfaces may still be
        being plugged on return (L{plugged}). The set-up holds the service's lock until they
        are, as if it had waited for them."""

        async def run() -> NetworkSetup:
            return await self._setup(
                container_id,
                name.lstrip("/"),
                hostname,
                network_mode or "default",
                req,
                exposed_ports,
            )

        # Containers set up side by side unless this one publishes ports: the host ports are
        # chosen from what the others hold, which only a lone holder may read and then take.
        publishes = bool(req.port_bindings) or req.publish_all
        return await self._locked(  # type: ignore[no-any-return]  # _locked is generic over the callback's result, typed Any
            run, shared=not publishes, until=lambda: self._plugging.get(container_id)
        )

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

    async def _setup(
        self,
        cid: str,
        name: str,
        hostname: str,
        mode: str,
        req: NetworkRequest,
        exposed: Sequence[str],
    ) -> NetworkSetup:
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
        # What a run the daemon died in may have left (the common case, nothing, costs two
        # stats instead of two io round trips).
        if os.path.lexists(path):
            await self._blocking(self._nl.remove_netns, path)
        if os.path.lexists(self._dns_marker(cid)) or (
            self._dns is not None and self._dns.ports(cid) is not None
        ):
            await self._stop_dns(cid)
        if mode == "none" and not await self._left_none(cid):
            await self._blocking(self._nl.create_netns, path)
            return NetworkSetup(
                netns_path=path,
                endpoints=(),
                ports=(),
                hosts_entries=self._hosts(req, None, ""),
                **self._resolv_setup(req, "none"),
            )
        primary = self._network_for_mode(mode)
        # The namespace is made on the io threads while the endpoint rows are read or made.
        made: Deferred[None] = Deferred.fromCoroutine(self._blocking(self._nl.create_netns, path))
        try:
            atts = await self._materialize(cid, name, mode, req.endpoints)
            # The network named by the mode goes first: it gets eth0, the default route and
            # ports.
            atts.sort(key=lambda a: (a.network_id != primary.id, a.config.get("order", 0)))
            for att in atts:
                found = self._networks.get(att.network_id)
                if found is not None and found.config_only:
                    raise Forbidden(NOT_ON_CONFIG_ONLY)
        except BaseException:
            try:
                await made
            finally:
                await self._blocking(self._nl.remove_netns, path)
            raise
        await made
        # What each endpoint's row keeps for this start (the resolver's upstreams and the
        # container's DNS settings, its hostname); a new start's links set theirs again.
        start_config = {
            "dns_upstream": _upstreams(self._resolv(req, "internal")),
            "dns_config": {
                "Dns": list(req.dns),
                "DnsSearch": list(req.dns_search),
                "DnsOptions": list(req.dns_options),
            },
            "hostname": hostname,
        }
        endpoints: list[Endpoint] = []
        ports: list[PortMapping] = []
        resolver = False
        plugs: list[Interface] = []
        try:
            gateway_set = gateway6_set = False
            for i, att in enumerate(atts):
                found = self._networks.get(att.network_id)
                if found is None:
                    raise NotFound(f"network {att.network_id} not found")
                # Each family's default route from the first non-internal network that has
                # it (moby >= 26 picks the IPv4 and IPv6 gateway endpoints separately): an
                # IPv4-only first network leaves IPv6 to a later dual-stack one.
                use_gw = not found.internal and not gateway_set and v4_pool(found) is not None
                use_gw6 = not found.internal and not gateway6_set and v6_pool(found) is not None
                ep = await self._plug(
                    path, cid, name, found, att, f"eth{i}", use_gw, use_gw6, plugs, start_config
                )
                gateway_set = gateway_set or use_gw
                gateway6_set = gateway6_set or use_gw6
                endpoints.append(ep)
                resolver = resolver or (self._is_user(found) and self._dns is not None)
            if plugs:
                # Plugging the interfaces (a veth pair each, configured, then waited up: ~10 ms)
                # needs only the namespace: it runs while the rest of the start goes on (the
                # runtime's create joins the namespace by its path), and the process starts
                # once it is done (L{plugged}).
                self._plugging[cid] = Deferred.fromCoroutine(self._plug_all(path, plugs))
            if resolver:
                await self._serve_dns(cid, path)
            kind = "internal" if resolver else "legacy"
            resolv = self._resolv_setup(req, kind)
            first = atts[0]
            prim_net = self._networks[first.network_id]
            ip = endpoints[0].ipv4
            if not prim_net.internal:
                # an IPv6-only network's container (ip "") publishes on IPv6 only
                ports = await self._publish(first, name, ip, req, exposed, endpoints[0].ipv6)
            await self._refresh()
        except BaseException:
            await self._unplugging(cid)
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
        own = (endpoints[0].ipv4 or endpoints[0].ipv6, hostname) if endpoints and hostname else None
        return NetworkSetup(
            netns_path=path,
            endpoints=tuple(endpoints),
            ports=tuple(ports),
            hosts_entries=self._hosts(req, own, endpoints[0].gateway if endpoints else ""),
            **resolv,
        )

    async def _left_none(self, cid: str) -> bool:
        """Whether a "none"-mode container left "none" before its first start (disconnect)."""
        if self.lookup is None:
            return False
        try:
            return (await self.lookup.network_container(cid)).networks_materialized
        except NotFound:
            return False

    async def _materialize(
        self, cid: str, name: str, mode: str, eps_cfg: Mapping[str, EndpointRequest]
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
        wanted: list[tuple[Network, EndpointRequest]] = [(primary, EndpointRequest())]
        for key, ep in eps_cfg.items():
            net = self._network_for_mode(key)
            for i, (w, cfg) in enumerate(wanted):
                if w.id == net.id:
                    wanted[i] = (w, _overlay(cfg, ep))
                    break
            else:
                wanted.append((net, ep))
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

    async def _plug(
        self,
        path: str,
        cid: str,
        name: str,
        net: Network,
        att: Attachment,
        ifname: str,
        use_gateway: bool,
        use_gateway6: bool,
        later: list[Interface] | None = None,
        start_config: Mapping[str, object] | None = None,
    ) -> Endpoint:
        """Give C{att} its addresses and interface names (and C{start_config}, at a start) and
        plug its interface into the namespace at C{path}; or, given C{later}, leave the plugging
        to the caller with the interface's description appended there."""
        extra = _link_local(att.config.get("link_local_ips") or [])
        reserved = [p.gateway for p in net.pools]
        pool = v4_pool(net)
        ip = ""
        if pool is not None:
            ip = await self._repo.allocate(
                att.id, net, att.config.get("requested_ipv4") or None, reserved
            )
        prefix = ipaddress.IPv4Network(pool.subnet).prefixlen if pool else 0
        p6 = v6_pool(net)
        ip6 = ""
        if p6 is not None:
            ip6 = await self._repo.allocate(
                att.id, net, att.config.get("requested_ipv6") or None, reserved, 6
            )
        mac = att.mac or _mac_for(ip or ip6)
        att = attrs.evolve(att, ipv4=ip or None, ipv6=ip6 or None)
        host_if = _veth_name(cid, net.id)
        cfg = dict(att.config)
        cfg.update({"name": name, "ifname": ifname, "host_ifname": host_if})
        if start_config is not None:
            cfg.pop("link_ports", None)
            cfg.update(start_config)
        await self._repo.update_endpoint(att.id, config=cfg)
        mtu = int(net.options.get(MTU_OPT) or self.config.mtu)
        await self._reaped(host_if)
        iface = Interface(
            bridge=str(net.bridge),
            host_ifname=host_if,
            ifname=ifname,
            address=ip,
            prefixlen=prefix,
            mac=mac,
            gateway=pool.gateway if pool and use_gateway else None,
            mtu=mtu,
            address6=ip6,
            prefixlen6=ipaddress.IPv6Network(p6.subnet).prefixlen if p6 else 0,
            gateway6=(p6.gateway or None) if p6 and use_gateway6 else None,
            extra=extra,
        )
        if later is not None:
            later.append(iface)  # plugged by the caller (L{_plug_all})
        else:
            await self._blocking(self._nl.attach, path, iface)
        return self._endpoint(net, att, ip, mac)

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
            return await self._setup("", "", "", "host", req, ())
        if mode.startswith("container:"):
            return await self._setup_joined(mode.split(":", 1)[1], req)
        path = self.netns_path(other.id)
        atts = [a for a in self._active if a.container_id == other.id]
        served = self._dns is not None and self._dns.ports(other.id) is not None
        own = None
        if atts and atts[0].plugged and atts[0].config.get("hostname"):
            own = (str(atts[0].ipv4 or atts[0].ipv6), str(atts[0].config["hostname"]))
        return NetworkSetup(
            netns_path=path,
            endpoints=(),
            ports=(),
            hosts_entries=self._hosts(req, own, ""),
            **self._resolv_setup(req, "internal" if served else "legacy"),
        )

    async def teardown(self, container_id: str) -> None:
        """After the container stopped: ports, addresses, interfaces and the namespace go."""
        await self._locked(lambda: self._teardown(container_id), shared=True)

    async def _teardown(self, cid: str, removing: bool = False) -> None:
        await self._unplugging(cid)
        if removing and self._holds_nothing(cid):
            return
        atts = await self._repo.endpoints(container_id=cid)
        await self._stop_dns(cid)
        names = [_veth_name(cid, a.network_id) for a in atts]
        # One io round trip: the host ends go down and the namespace is unpinned; the veths'
        # deletion (tens of milliseconds of the kernel's) is not waited for (issue 21: it was
        # on the path of every stop and `run --rm`).
        await self._blocking(self._nl.release_netns, self.netns_path(cid), names)
        self._reap(names)
        was_active = [a for a in atts if a.plugged]
        if removing and not was_active:
            # A container that is not running (never started, or torn down at its stop): no
            # address or port to give back, the active set and the firewall stay as they are,
            # and its rows go next. Saves two database round trips and a render per `rm`.
            return
        await self._repo.clear_container(cid)
        await self._refresh()
        for a in was_active:
            net = self._networks.get(a.network_id)
            if net is not None:
                self._emit("disconnect", net, container=cid)

    def _holds_nothing(self, cid: str) -> bool:
        """Whether a container being removed holds no network resource: no plugged endpoint
        (the in-memory active set mirrors the plugged rows), no resolver serving it, and neither
        a pinned namespace nor a resolver marker left on the exec root (its veths live in that
        namespace and went with it). A stop tears all of these down and a container never
        started made none, so an `rm` of a stopped or created container skips the endpoint read
        and the three io round trips of a teardown (issue 21: a bulk rm queues on them). Two
        stats on the exec root's tmpfs."""
        if any(a.container_id == cid for a in self._active):
            return False
        if self._dns is not None and self._dns.ports(cid) is not None:
            return False
        return not (os.path.lexists(self.netns_path(cid)) or os.path.lexists(self._dns_marker(cid)))

    async def release_stale(self, running: Collection[str]) -> None:
        """At daemon start, after the containers' restore: tear down the endpoints and pinned
        namespaces of containers that do not run (a start the daemon died in; the start-up
        sweep kept them while the start's half-created process still lived in them)."""
        stale = {a.container_id for a in self._active} - set(running)
        pinned = await self._blocking(_listdir, os.path.dirname(self.netns_path("x")))
        stale |= set(pinned) - set(running)
        for cid in sorted(stale):
            log.info("releasing network resources of {cid}: it does not run", cid=cid)
            await self.teardown(cid)

    async def release(self, container_id: str) -> None:
        """On removal: drop the container's endpoints (addresses go back to the pool)."""

        async def run() -> None:
            # The endpoint rows go with the container's row (ON DELETE CASCADE), in the same
            # transaction, so a crash between here and there leaves them with the row the
            # restart finishes removing; no round trip of their own.
            await self._teardown(container_id, removing=True)

        await self._locked(run, shared=True)

    async def container_endpoints(self, container_id: str) -> list[Endpoint]:
        """The container's current endpoints (for container inspect after connect/disconnect).

        Stopped containers report their networks with empty addresses, as dockerd does.
        """
        out = []
        for a in await self._repo.endpoints(container_id=container_id):
            net = self._networks.get(a.network_id)
            if net is None:
                continue
            if a.plugged:
                ip = a.ipv4 or ""
                out.append(self._endpoint(net, a, ip, a.mac or _mac_for(ip or str(a.ipv6))))
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

    async def connect(self, ref: str, container: str, endpoint: EndpointRequest) -> None:
        """C{docker network connect}: live when the container runs, recorded otherwise."""
        net = self.resolve(ref)
        if self.lookup is None:
            raise NotFound(f"No such container: {container}")
        c = await self.lookup.network_container(container)

        async def run() -> None:
            await self._connect(net, c, endpoint)

        await self._locked(run)

    async def _connect(self, net: Network, c: ContainerRef, ep: EndpointRequest) -> None:
        mode = c.network_mode or "default"
        if net.driver == "host" or mode == "host":
            raise Forbidden(
                "container cannot be disconnected from host network or connected to host network"
            )
        # A container that left "none" before its first start may join networks (dockerd
        # checks the networks it has, not its NetworkMode: container_operations.go).
        left_none = mode == "none" and c.networks_materialized
        if net.config_only and c.running:
            # libnetwork CreateEndpoint; a container that is not running is connected (its
            # start then fails with this same text, as dockerd's)
            raise Forbidden(NOT_ON_CONFIG_ONLY)
        if (net.driver == "null" and not net.config_only) or (mode == "none" and not left_none):
            raise Forbidden(
                "container cannot be connected to multiple networks with one of the networks "
                "in private (none) mode"
            )
        if mode.startswith("container:"):
            raise Forbidden(
                "container sharing network namespace with another container or host cannot be connected to any other network"
            )
        self._check_endpoint_config(net, ep)
        atts = await self._materialize(c.id, c.name, mode, c.endpoints)
        if any(a.network_id == net.id for a in atts):
            if not c.running:
                return  # dockerd: a never-started container's duplicate connect is a no-op
            raise Forbidden(f"endpoint with name {c.name} already exists in network {net.name}")
        att = self._new_attachment(c.id, c.name, net, ep, order=len(atts))
        await self._repo.add_endpoint(att)
        path = self.netns_path(c.id)
        resolv_text: str | None = None
        if not c.running and self.lookup is not None:
            await self.lookup.endpoint_config_changed(c.id, net.name, ep)
        if not c.running or not await self._blocking(os.path.exists, path):
            return
        try:
            present = await self._blocking(self._nl.netns_links, path)
            i = 0
            while f"eth{i}" in present:
                i += 1
            routed = [
                a
                for a in atts
                if a.network_id in self._networks and not self._networks[a.network_id].internal
            ]
            has_default = any(a.ipv4 for a in routed)
            has_default6 = any(a.ipv6 for a in routed)
            await self._plug(
                path,
                c.id,
                c.name,
                net,
                att,
                f"eth{i}",
                not has_default and not net.internal,
                not has_default6 and not net.internal,
            )
            primary = [a for a in atts if a.plugged]
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
        if self.lookup is not None:
            # inspect shows what the connect asked (IPAMConfig, Links...), as for a created one
            await self.lookup.endpoint_config_changed(c.id, net.name, ep)
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
        if net.driver == "null" and mode == "none" and not c.running:
            if c.networks_materialized:
                raise Forbidden(f"container {c.id} is not connected to network {net.name}")
            # Leaving "none" before the first start (dockerd drops it from the container's
            # networks; a network connect may follow).
            if self.lookup is not None:
                await self.lookup.networks_materialized(c.id)
                await self.lookup.endpoint_config_changed(c.id, net.name, None)
            return
        atts = [
            a
            for a in await self._materialize(c.id, c.name, mode, c.endpoints)
            if a.network_id == net.id
        ]
        if not atts:
            raise Forbidden(f"container {c.id} is not connected to network {net.name}")
        att = atts[0]
        if att.plugged:
            await self._blocking(
                self._nl.detach,
                self.netns_path(c.id),
                str(att.config.get("ifname", "")),
                _veth_name(c.id, net.id),
            )
        await self._repo.remove_endpoints(c.id, net.id)
        await self._refresh()
        if self.lookup is not None:
            await self.lookup.endpoint_config_changed(c.id, net.name, None)
        if att.plugged:
            self._emit("disconnect", net, container=c.id)
            await self._notify(c.id, None)

    async def _notify(self, cid: str, resolv_text: str | None) -> None:
        if not self.on_endpoints_changed:
            return
        eps = [e for e in await self.container_endpoints(cid) if e.endpoint_id]
        for cb in self.on_endpoints_changed:
            try:
                await cb(cid, eps, resolv_text)
            except Exception:  # noqa: BLE001 - a listener must not undo the kernel change
                log.failure("endpoint change listener failed")


def _overlay(base: EndpointRequest, more: EndpointRequest) -> EndpointRequest:
    """C{base} with each setting C{more} gives (not empty) in its place: one network named twice
    in C{EndpointsConfig} (by name and as "default", say) joins once with both's settings."""
    given = {
        f.name: value
        for f in attrs.fields(EndpointRequest)
        if (value := getattr(more, f.name)) and value != IPAMRequest()
    }
    return attrs.evolve(base, **given)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _link_local(values: list[str]) -> tuple[tuple[str, int], ...]:
    """dockerd's link-local IPs of an endpoint (C{IPAMConfig.LinkLocalIPs}): extra addresses of
    its interface, IPv4 ones as /16 and IPv6 ones as /64 (169.254.0.0/16, fe80::/64), checked at
    start as dockerd does.

    @raise InvalidParameter: not an address (20.10's C{Invalid link-local IP address: [..]},
        naming the whole list) or not link-local (libnetwork's C{invalid link local IP address}).
    """
    parsed = []
    for v in values:
        if not v:
            continue
        try:
            parsed.append(ipaddress.ip_address(v))
        except ValueError:
            raise InvalidParameter(f"Invalid link-local IP address: [{' '.join(values)}]") from None
    out = []
    for ip in parsed:
        if not ip.is_link_local or ip.is_multicast:
            raise InvalidParameter(f"invalid link local IP address: {ip}")
        out.append((str(ip), 64 if ip.version == 6 else 16))
    return tuple(out)
