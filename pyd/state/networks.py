"""Networks and endpoints repositories; IPAM allocation (layer: state).

An address is handed out by writing it into an endpoint row: the UNIQUE(network_id, ipv4)
constraint makes giving the same address twice impossible, whatever the engine believes.
A NULL address means "attached but not running" (SQLite allows many NULLs in a UNIQUE index).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from twisted.internet.defer import Deferred

from pyd.core.errors import Conflict, InvalidParameter, NotFound
from pyd.core.records import Attachment, IpamPool, Network
from pyd.state.db import Database
from pyd.state.models import EndpointRow, NetworkRow

# Built once (container start/stop run it several times): SQLAlchemy's per-call statement
# construction cost more than SQLite's query.
_ENDPOINTS_OF = (
    select(EndpointRow)
    .where(EndpointRow.container_id == bindparam("b_cid"))
    .order_by(EndpointRow.id)
)


def _network(row: Any) -> Network:
    ipam = dict(row.ipam or {})
    return Network(
        id=row.id,
        name=row.name,
        driver=row.driver,
        created_nano=row.created,
        scope=row.scope,
        internal=bool(row.internal),
        attachable=bool(row.attachable),
        enable_ipv6=bool(row.enable_ipv6),
        ipam_driver=str(ipam.get("driver", "default")),
        ipam_options=None if ipam.get("options") is None else dict(ipam["options"]),
        pools=tuple(
            IpamPool(
                subnet=str(p.get("subnet", "")),
                gateway=str(p.get("gateway", "")),
                ip_range=str(p.get("ip_range", "")),
                aux_addresses=dict(p.get("aux") or {}),
                auto=bool(p.get("auto")),
            )
            for p in ipam.get("pools") or []
        ),
        options=dict(row.options or {}),
        labels=dict(row.labels or {}),
        bridge=row.bridge,
        config_only=bool(row.config_only),
        config_from=str(row.config_from or ""),
        enable_ipv4=bool(row.enable_ipv4),
    )


def _attachment(row: Any) -> Attachment:
    return Attachment(
        id=row.id,
        network_id=row.network_id,
        container_id=row.container_id,
        ipv4=row.ipv4,
        ipv6=row.ipv6,
        mac=row.mac,
        aliases=tuple(row.aliases or ()),
        config=dict(row.config or {}),
    )


def _ipam_json(n: Network) -> dict[str, Any]:
    return {
        "driver": n.ipam_driver,
        "options": None if n.ipam_options is None else dict(n.ipam_options),
        "pools": [
            {
                "subnet": p.subnet,
                "gateway": p.gateway,
                "ip_range": p.ip_range,
                **({"aux": dict(p.aux_addresses)} if p.aux_addresses else {}),
                **({"auto": True} if p.auto else {}),
            }
            for p in n.pools
        ],
    }


class NetworkRepository:
    """Stores networks and endpoints; allocates addresses."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- networks ------------------------------------------------------------------------

    def add(self, n: Network) -> Deferred[Network]:
        """Insert a network. @raise Conflict: dockerd's text for a name already in use."""

        def thd(conn: Connection) -> Network:
            try:
                conn.execute(
                    insert(NetworkRow).values(
                        id=n.id,
                        name=n.name,
                        driver=n.driver,
                        scope=n.scope,
                        created=n.created_nano,
                        internal=n.internal,
                        attachable=n.attachable,
                        enable_ipv6=n.enable_ipv6,
                        ipam=_ipam_json(n),
                        options=dict(n.options),
                        labels=dict(n.labels),
                        bridge=n.bridge,
                        config_only=n.config_only,
                        config_from=n.config_from,
                        enable_ipv4=n.enable_ipv4,
                    )
                )
            except IntegrityError as e:
                if "bridge" in str(e.orig):
                    raise Conflict(
                        f"bridge name {n.bridge} is already used by another network"
                    ) from e
                raise Conflict(f"network with name {n.name} already exists") from e
            return n

        return self._db.transaction(thd)

    def all(self) -> Deferred[list[Network]]:
        """Every network, oldest first."""

        def thd(conn: Connection) -> list[Network]:
            rows = conn.execute(select(NetworkRow).order_by(NetworkRow.created)).all()
            return [_network(r) for r in rows]

        return self._db.run(thd)

    def remove(self, network_id: str) -> Deferred[None]:
        """Delete a network row (its endpoint rows must be gone: the FK refuses otherwise)."""

        def thd(conn: Connection) -> None:
            conn.execute(delete(EndpointRow).where(EndpointRow.network_id == network_id))
            conn.execute(delete(NetworkRow).where(NetworkRow.id == network_id))

        return self._db.transaction(thd)

    # -- endpoints -----------------------------------------------------------------------

    def endpoints(
        self, network_id: str | None = None, container_id: str | None = None
    ) -> Deferred[list[Attachment]]:
        """Endpoint rows, filtered by network and/or container."""

        def thd(conn: Connection) -> list[Attachment]:
            if network_id is None and container_id is not None:  # every container start
                rows = conn.execute(_ENDPOINTS_OF, {"b_cid": container_id}).all()
                return [_attachment(r) for r in rows]
            q = select(EndpointRow)
            if network_id is not None:
                q = q.where(EndpointRow.network_id == network_id)
            if container_id is not None:
                q = q.where(EndpointRow.container_id == container_id)
            return [_attachment(r) for r in conn.execute(q.order_by(EndpointRow.id)).all()]

        return self._db.run(thd)

    def add_endpoint(self, a: Attachment) -> Deferred[Attachment]:
        """Record that a container is attached to a network.

        @raise Conflict: already attached (dockerd's text names the endpoint).
        @raise NotFound: the container row does not exist.
        """

        def thd(conn: Connection) -> Attachment:
            try:
                conn.execute(
                    insert(EndpointRow).values(
                        id=a.id,
                        network_id=a.network_id,
                        container_id=a.container_id,
                        ipv4=a.ipv4,
                        ipv6=a.ipv6,
                        mac=a.mac,
                        aliases=list(a.aliases),
                        config=dict(a.config),
                    )
                )
            except IntegrityError as e:
                text = str(e.orig)
                if "FOREIGN KEY" in text:
                    raise NotFound(f"No such container: {a.container_id}") from e
                if "ipv4" in text:
                    raise Conflict(f"Address already in use: {a.ipv4}") from e
                name = a.config.get("name") or a.container_id
                raise Conflict(
                    f"endpoint with name {name} already exists in network {a.network_id}"
                ) from e
            return a

        return self._db.transaction(thd)

    def remove_endpoints(
        self, container_id: str, network_id: str | None = None
    ) -> Deferred[list[Attachment]]:
        """Delete a container's endpoint rows (one network or all); return what was removed."""

        def thd(conn: Connection) -> list[Attachment]:
            if network_id is None and container_id is not None:  # every container start
                rows = conn.execute(_ENDPOINTS_OF, {"b_cid": container_id}).all()
                return [_attachment(r) for r in rows]
            q = select(EndpointRow).where(EndpointRow.container_id == container_id)
            d = delete(EndpointRow).where(EndpointRow.container_id == container_id)
            if network_id is not None:
                q = q.where(EndpointRow.network_id == network_id)
                d = d.where(EndpointRow.network_id == network_id)
            gone = [_attachment(r) for r in conn.execute(q).all()]
            conn.execute(d)
            return gone

        return self._db.transaction(thd)

    def update_endpoint(
        self,
        endpoint_id: str,
        *,
        mac: str | None = None,
        config: dict[str, Any] | None = None,
        clear_ipv4: bool = False,
    ) -> Deferred[None]:
        """Change an endpoint's MAC/config, or give its address back (C{clear_ipv4})."""
        values: dict[str, Any] = {}
        if mac is not None:
            values["mac"] = mac
        if config is not None:
            values["config"] = config
        if clear_ipv4:
            values["ipv4"] = None
            values["ipv6"] = None

        def thd(conn: Connection) -> None:
            if values:
                conn.execute(
                    update(EndpointRow).where(EndpointRow.id == endpoint_id).values(values)
                )

        return self._db.transaction(thd)

    def allocate(
        self,
        endpoint_id: str,
        network: Network,
        requested: str | None,
        reserved: Iterable[str],
        family: int = 4,
    ) -> Deferred[str]:
        """Give the endpoint an address of C{family} (4 or 6): C{requested}, or the lowest free
        one of the network's pools of that family (dockerd's sequential allocation).

        Runs in one transaction on the single DB thread; the UNIQUE index is the final word.
        @raise Conflict: the requested address is taken. @raise InvalidParameter: outside the
        subnet. @raise Unavailable-like Conflict: the pool is exhausted.
        """
        reserved_set = set(reserved)
        column = EndpointRow.ipv6 if family == 6 else EndpointRow.ipv4
        pools = [p for p in network.pools if (":" in p.subnet) == (family == 6)]

        def thd(conn: Connection) -> str:
            used: set[str] = {
                str(r[0])
                for r in conn.execute(
                    select(column).where(
                        EndpointRow.network_id == network.id,
                        column.is_not(None),
                        EndpointRow.id != endpoint_id,
                    )
                ).all()
            }
            if requested:
                addr = ipaddress.ip_address(requested)
                if not any(addr in ipaddress.ip_network(p.subnet) for p in pools):
                    raise InvalidParameter(
                        f"no configured subnet or ip-range contain the IP address {requested}"
                    )
                chosen = str(addr)
                if (
                    chosen in used
                    or chosen in _norm(reserved_set)
                    or any(
                        _same(chosen, p.gateway) or chosen in _norm(p.aux_addresses.values())
                        for p in pools
                    )
                ):
                    raise Conflict(f"Address already in use: {requested}")
            else:
                chosen = _first_free(pools, used, reserved_set, family)
                if not chosen:
                    raise Conflict(
                        f"no available IPv{family} addresses on this network's address pools: "
                        f"{network.name} ({network.id})"
                    )
            try:
                conn.execute(
                    update(EndpointRow)
                    .where(EndpointRow.id == endpoint_id)
                    .values({column.key: chosen})
                )
            except IntegrityError as e:
                raise Conflict(f"Address already in use: {chosen}") from e
            return chosen

        return self._db.transaction(thd)

    def clear_container(self, container_id: str) -> Deferred[None]:
        """Give back every address and published port of a stopped container."""

        def thd(conn: Connection) -> None:
            rows = conn.execute(
                select(EndpointRow).where(EndpointRow.container_id == container_id)
            ).all()
            for r in rows:
                cfg = dict(r.config or {})
                cfg.pop("ports", None)
                conn.execute(
                    update(EndpointRow)
                    .where(EndpointRow.id == r.id)
                    .values(ipv4=None, ipv6=None, config=cfg)
                )

        return self._db.transaction(thd)


def _same(a: str, b: str) -> bool:
    return bool(b) and ipaddress.ip_address(a) == ipaddress.ip_address(b)


def _norm(addresses: Iterable[str]) -> set[str]:
    """Addresses in their canonical text (C{fd00:0::1} is C{fd00::1}); blanks left out."""
    return {str(ipaddress.ip_address(a)) for a in addresses if a}


def _first_free(pools: list[IpamPool], used: set[str], reserved: set[str], family: int) -> str:
    """The lowest address of C{pools} not used, reserved, a gateway or an auxiliary address.

    IPv6 subnets have no broadcast address (only the subnet-router anycast address, the
    first, is skipped); the walk is lazy, so a /64 costs no more than the addresses taken.
    """
    for pool in pools:
        subnet = ipaddress.ip_network(pool.subnet)
        rng = ipaddress.ip_network(pool.ip_range or pool.subnet)
        skip = _norm(
            [*reserved, *pool.aux_addresses.values()] + ([pool.gateway] if pool.gateway else [])
        )
        for host in rng:
            if host == subnet.network_address:
                continue
            if family == 4 and host == subnet.broadcast_address:
                continue
            text = str(host)
            if text in used or text in skip:
                continue
            return text
    return ""
