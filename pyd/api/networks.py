"""C{/networks}: list, inspect, create, remove, connect, disconnect, prune (layer: api)."""

from __future__ import annotations

import ipaddress
from typing import Any, Protocol

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from pyd.api.base import api_version, lean, make_app, role
from pyd.api.rendering import UNREADABLE, render_all, render_one
from pyd.api.timeparse import rfc3339_nano
from pyd.api.wire import (
    json_body,
    no_content,
    parse_filters,
    qbool,
    qstr,
    read_json,
    read_json_object,
)
from pyd.core.errors import InvalidParameter, NotFound
from pyd.core.records import IpamPool
from pyd.engine.networks import CreateRequest, NetworkView, _mac_for
from pyd.engine.spec import EndpointRequest, parse_connect, schema
from pyd.engine.spec.gojson import decode, json_float, object_pairs


class NetworkBackend(Protocol):
    """What this router needs from L{pyd.engine.networks.NetworkService}."""

    async def list_networks(
        self, filters: dict[str, list[str]] | None = None
    ) -> list[NetworkView]: ...
    async def inspect(self, ref: str) -> NetworkView: ...
    async def create(self, req: CreateRequest) -> tuple[Any, str]: ...
    async def remove(self, ref: str) -> None: ...
    async def prune(self, filters: dict[str, list[str]] | None = None) -> list[str]: ...
    async def connect(self, ref: str, container: str, endpoint: EndpointRequest) -> None: ...
    async def disconnect(self, ref: str, container: str, force: bool = False) -> None: ...


def _unreadable(view: NetworkView) -> dict[str, Any]:
    """A network whose record cannot be rendered: its name, id and driver, so that it lists
    and can be removed."""
    n = view.network
    return {
        "Name": n.name,
        "Id": n.id,
        "Created": "",
        "Scope": "local",
        "Driver": str(n.driver),
        "EnableIPv4": True,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": []},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": {},
        "Labels": {"com.pyd.unreadable": UNREADABLE},
    }


def network_json(view: NetworkView, with_containers: bool = True) -> dict[str, Any]:
    """A network in dockerd's wire shape."""
    n = view.network
    config = []
    # moby's buildIPAMResources: the subnets asked for (IPv4, then IPv6), then those taken
    # from the default pools.
    for p in sorted(n.pools, key=lambda p: p.auto):
        c: dict[str, Any] = {"Subnet": p.subnet}
        if p.ip_range:
            c["IPRange"] = p.ip_range
        if p.gateway:
            c["Gateway"] = p.gateway
        if p.aux_addresses:
            c["AuxiliaryAddresses"] = dict(p.aux_addresses)
        config.append(c)
    containers: dict[str, Any] = {}
    if with_containers:
        for att, name in view.endpoints:
            addr = att.ipv4 or att.ipv6
            containers[att.container_id] = {
                "Name": name,
                "EndpointID": att.id,
                "MacAddress": att.mac or (_mac_for(addr) if addr else ""),
                "IPv4Address": _with_prefix(att.ipv4, n),
                "IPv6Address": _with_prefix(att.ipv6, n) if n.enable_ipv6 else "",
            }
    return {
        "Name": n.name,
        "Id": n.id,
        "Created": rfc3339_nano(n.created_nano),
        "Scope": n.scope,
        "Driver": n.driver,
        "EnableIPv4": n.enable_ipv4 and (n.driver == "bridge" or n.config_only),
        "EnableIPv6": n.enable_ipv6,
        "IPAM": {
            "Driver": n.ipam_driver,
            "Options": (
                dict(n.ipam_options)
                if n.ipam_options is not None and (n.driver == "bridge" or n.config_only)
                else None
            ),
            "Config": config,
        },
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": False,
        "ConfigFrom": {"Network": n.config_from},
        "ConfigOnly": n.config_only,
        "Containers": containers,
        "Options": dict(n.options),
        "Labels": dict(n.labels),
    }


def _with_prefix(address: str | None, n: Any) -> str:
    """C{address/prefixlen} with the prefix of the network's subnet holding it ("" for none)."""
    if not address:
        return ""
    ip = ipaddress.ip_address(address)
    for p in n.pools:
        net = ipaddress.ip_network(p.subnet)
        if ip.version == net.version and ip in net:
            return f"{address}/{net.prefixlen}"
    return f"{address}/"


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid {what}: expected an object")
    return {str(k): str(v) for k, v in value.items()}


def _enable_ip(body: dict[str, Any], family: int, default: bool) -> bool:
    """C{EnableIPv4}/C{EnableIPv6}, or (dockerd's network.go) the
    C{com.docker.network.enable_ipv4}/C{…enable_ipv6} driver option when the field is absent."""
    value = body.get(f"EnableIPv{family}")
    if value is not None:
        if not isinstance(value, bool):
            raise InvalidParameter(f"invalid EnableIPv{family}: expected a boolean")
        return value
    key = f"com.docker.network.enable_ipv{family}"
    opt = (body.get("Options") or {}).get(key) if isinstance(body.get("Options"), dict) else None
    if opt is None:
        return default
    parsed = {"1": True, "t": True, "true": True, "TRUE": True, "True": True, "T": True,
              "0": False, "f": False, "false": False, "FALSE": False, "False": False, "F": False}.get(str(opt))  # fmt: skip
    if parsed is None:
        raise InvalidParameter(f'driver-opt "{key}" is not a valid bool')
    return parsed


def parse_create(body: dict[str, Any]) -> CreateRequest:
    """The create body, checked."""
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise InvalidParameter("network name must not be empty")
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict):
        raise InvalidParameter("invalid IPAM: expected an object")
    pools = []
    for c in ipam.get("Config") or []:
        if not isinstance(c, dict):
            raise InvalidParameter("invalid IPAM config entry")
        aux = c.get("AuxiliaryAddresses") or c.get("AuxAddress")
        pools.append(
            IpamPool(
                subnet=str(c.get("Subnet") or ""),
                gateway=str(c.get("Gateway") or ""),
                ip_range=str(c.get("IPRange") or ""),
                aux_addresses=_str_map(aux, "AuxiliaryAddresses"),
            )
        )
    return CreateRequest(
        name=name,
        driver=str(body.get("Driver") or "bridge"),
        internal=bool(body.get("Internal")),
        attachable=bool(body.get("Attachable")),
        ingress=bool(body.get("Ingress")),
        scope=str(body.get("Scope") or ""),
        config_only=bool(body.get("ConfigOnly")),
        config_from=str((body.get("ConfigFrom") or {}).get("Network") or ""),
        enable_ipv4=_enable_ip(body, 4, True),
        enable_ipv6=_enable_ip(body, 6, False),
        ipam_driver=str(ipam.get("Driver") or "default"),
        ipam_options=None
        if ipam.get("Options") is None
        else _str_map(ipam["Options"], "IPAM options"),
        pools=tuple(pools),
        options=_str_map(body.get("Options"), "Options"),
        labels=_str_map(body.get("Labels"), "Labels"),
    )


class NetworksRouter:
    """The C{/networks} endpoints."""

    app = make_app()
    prefixes = ("networks",)

    def __init__(self, backend: NetworkBackend) -> None:
        self._b = backend

    def resource(self) -> IResource:
        """The Klein resource."""
        return self.app.resource()  # type: ignore[no-any-return]  # Klein's resource() is untyped

    @app.route("/networks", methods=["GET"])
    @role("viewer")
    @lean
    async def list_all(self, request: IRequest) -> bytes:
        """C{docker network ls}."""
        views = await self._b.list_networks(parse_filters(request))
        rows = render_all("network", views, lambda v: v.network.id, network_json, _unreadable)
        return json_body(request, rows)

    @app.route("/networks/json", methods=["GET"])
    @role("viewer")
    async def list_networks_json(self, request: IRequest) -> bytes:
        """Old clients list under C{/networks/json}... unless a network is called C{json}."""
        try:
            view = await self._b.inspect("json")
        except NotFound:  # no network called "json": this is the list
            return await self.list_all(request)
        return json_body(
            request, render_one("network", view.network.id, view, network_json, _unreadable)
        )

    @app.route("/networks/create", methods=["POST"])
    @role("operator")
    async def create(self, request: IRequest) -> bytes:
        """C{docker network create}."""
        # Go's typed decoding (network.CreateRequest): a mistyped field is dockerd's 400
        body = decode(read_json_object(request), schema.NETWORK_CREATE_REQUEST)
        if api_version(request) < (1, 48):
            body.pop("EnableIPv4", None)  # API 1.48 added it (moby's network_routes.go)
        req = parse_create(body)
        n, warning = await self._b.create(req)
        return json_body(request, {"Id": n.id, "Warning": warning}, 201)

    @app.route("/networks/prune", methods=["POST"])
    @role("operator")
    async def prune(self, request: IRequest) -> bytes:
        """C{docker network prune}."""
        names = await self._b.prune(parse_filters(request))
        return json_body(request, {"NetworksDeleted": names})

    @app.route("/networks/<string:ref>", methods=["GET"])
    @role("viewer")
    @lean
    async def inspect(self, request: IRequest, ref: str) -> bytes:
        """C{docker network inspect}."""
        _ = qbool(request, "verbose")
        view = await self._b.inspect(ref)
        scope = qstr(request, "scope")
        if scope and scope != view.network.scope:
            # moby daemon/network.go findNetwork: a network of another scope is not found
            raise NotFound(f"network {ref} not found")
        return json_body(
            request, render_one("network", view.network.id, view, network_json, _unreadable)
        )

    @app.route("/networks/<string:ref>", methods=["DELETE"])
    @role("operator")
    async def remove(self, request: IRequest, ref: str) -> bytes:
        """C{docker network rm}."""
        await self._b.remove(ref)
        return no_content(request)

    @app.route("/networks/<string:ref>/connect", methods=["POST"])
    @role("operator")
    async def connect(self, request: IRequest, ref: str) -> bytes:
        """C{docker network connect}."""
        # Go's typed decoding (network.ConnectOptions): a mistyped field is dockerd's 400
        body = read_json(request, object_pairs_hook=object_pairs, parse_float=json_float)
        container, ep = parse_connect(body)
        if not container:
            raise InvalidParameter("no container specified")
        await self._b.connect(ref, container, ep)
        request.setResponseCode(200)
        return b""

    @app.route("/networks/<string:ref>/disconnect", methods=["POST"])
    @role("operator")
    async def disconnect(self, request: IRequest, ref: str) -> bytes:
        """C{docker network disconnect}."""
        body = decode(read_json_object(request), schema.DISCONNECT_OPTIONS)
        container = body.get("Container")
        if not isinstance(container, str) or not container:
            raise InvalidParameter("no container specified")
        await self._b.disconnect(ref, container, bool(body.get("Force")))
        request.setResponseCode(200)
        return b""
