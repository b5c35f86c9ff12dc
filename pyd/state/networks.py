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
        ipam_options=dict(ipam.get("options") or {}),
        pools=tuple(
            IpamPool(
                subnet=str(p.get("subnet", "")),
                gateway=str(p.get("gateway", "")),
                ip_range=str(p.get("ip_range", "")),
                aux_addresses=dict(p.get("aux") or {}),
            )
            for p in ipam.get("pools") or []
        ),
        options=dict(row.options or {}),
        labels=dict(row.labels or {}),
        bridge=row.bridge,
    )


def _attachment(row: Any) -> Attachment:
    return Attachment(
        id=row.id,
        network_id=row.network_id,
        container_id=row.container_id,
        ipv4=row.ipv4,
        mac=row.mac,
        aliases=tuple(row.aliases or ()),
        config=dict(row.config or {}),
    )


def _ipam_json(n: Network) -> dict[str, Any]:
    return {
        "driver": n.ipam_driver,
        "options": dict(n.ipam_options),
        "pools": [
            {
                "subnet": p.subnet,
                "gateway": p.gateway,
                "ip_range": p.ip_range,
                **({"aux": dict(p.aux_addresses)} if p.aux_addresses else {}),
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

        def thd(conn: Connection) -> None:
            if values:
                conn.execute(
                    update(EndpointRow).where(EndpointRow.id == endpoint_id).values(values)
                )

        return self._db.transaction(thd)

    def allocate(
        self, endpoint_id: str, network: Network, requested: str | None, reserved: Iterable[str]
    ) -> Deferred[str]:
        """Give the endpoint an address: C{requested}, or the lowest free one of the network.

        Runs in one transaction on the single DB thread; the UNIQUE index is the final word.
        @raise Conflict: the requested address is taken. @raise InvalidParameter: outside the
        subnet. @raise Unavailable-like Conflict: the pool is exhausted.
        """
        reserved_set = set(reserved)

        def thd(conn: Connection) -> str:
            used = {
                r[0]
                for r in conn.execute(
                    select(EndpointRow.ipv4).where(
                        EndpointRow.network_id == network.id,
                        EndpointRow.ipv4.is_not(None),
                        EndpointRow.id != endpoint_id,
                    )
                ).all()
            }
            if requested:
                addr = ipaddress.IPv4Address(requested)
                if not any(addr in ipaddress.IPv4Network(p.subnet) for p in network.pools):
                    raise InvalidParameter(
                        f"no configured subnet or ip-range contain the IP address {requested}"
                    )
                if (
                    requested in used
                    or requested in reserved_set
                    or any(
                        requested == p.gateway or requested in p.aux_addresses.values()
                        for p in network.pools
                    )
                ):
                    raise Conflict(f"Address already in use: {requested}")
                chosen = requested
            else:
                chosen = ""
                for pool in network.pools:
                    rng = ipaddress.IPv4Network(pool.ip_range or pool.subnet)
                    subnet = ipaddress.IPv4Network(pool.subnet)
                    for host in rng:
                        if host in (subnet.network_address, subnet.broadcast_address):
                            continue
                        s = str(host)
                        if (
                            s == pool.gateway
                            or s in used
                            or s in reserved_set
                            or s in pool.aux_addresses.values()
                        ):
                            continue
                        chosen = s
                        break
                    if chosen:
                        break
                if not chosen:
                    raise Conflict(
                        f"no available IPv4 addresses on this network's address pools: "
                        f"{network.name} ({network.id})"
                    )
            try:
                conn.execute(
                    update(EndpointRow).where(EndpointRow.id == endpoint_id).values(ipv4=chosen)
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
                    update(EndpointRow).where(EndpointRow.id == r.id).values(ipv4=None, config=cfg)
                )

        return self._db.transaction(thd)
