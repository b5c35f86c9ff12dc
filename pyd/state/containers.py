"""Container repository (layer: state).

Rows of C{containers} in and frozen L{Container} records out. The UNIQUE constraint on C{name}
decides name conflicts; this module turns the IntegrityError into dockerd's 409 text.
"""

from __future__ import annotations

from typing import Any

import attrs
from sqlalchemy import Connection, Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from twisted.internet.defer import Deferred

from pyd.core.errors import Conflict
from pyd.core.records import Container, ContainerState, HealthLogEntry, MountSpec
from pyd.state.db import Database
from pyd.state.models import ContainerRow

# Statements built once (the per-call construction of ORM-entity DML cost more than the SQL).
_CONTAINERS: Table = ContainerRow.__table__  # type: ignore[assignment]  # SQLAlchemy types __table__ as FromClause; a declarative model's is a Table
_INSERT = insert(_CONTAINERS)
_UPDATE = update(_CONTAINERS).where(_CONTAINERS.c.id == bindparam("b_id"))
_DELETE = delete(_CONTAINERS).where(_CONTAINERS.c.id == bindparam("b_id"))


def name_conflict(name: str, holder: str) -> Conflict:
    """dockerd's text for a name already taken."""
    return Conflict(
        f'Conflict. The container name "{name}" is already in use by container "{holder}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )


def state_to_json(s: ContainerState) -> dict[str, Any]:
    """The state as stored in the JSON column."""
    return attrs.asdict(s, recurse=True)


def state_from_json(d: dict[str, Any]) -> ContainerState:
    """Inverse of L{state_to_json} (unknown keys ignored, missing ones defaulted)."""
    fields = {f.name for f in attrs.fields(ContainerState)}
    kw = {k: v for k, v in d.items() if k in fields}
    kw["health_log"] = tuple(HealthLogEntry(**e) for e in d.get("health_log") or ())
    return ContainerState(**kw)


def _mounts_from_json(items: list[Any]) -> tuple[MountSpec, ...]:
    out = []
    for raw in items or []:
        m = dict(raw)
        m["options"] = tuple(m.get("options") or ())
        if m.get("type") == "volume" and not m.get("subpath"):
            # rows written before subpaths were kept apart: ".../volumes/NAME/_data/SUB"
            mark = f"/volumes/{m.get('name')}/_data/"
            src = str(m.get("source") or "")
            if m.get("name") and mark in src:
                cut = src.rindex(mark) + len(mark)
                m["source"], m["subpath"] = src[: cut - 1], src[cut:]
        out.append(MountSpec(**m))
    return tuple(out)


def _record(row: Any) -> Container:
    extra = dict(row.extra or {})
    netcfg = extra.pop("networking_config", {}) or {}
    return Container(
        id=row.id,
        name=row.name,
        image_id=row.image_id,
        image_ref=row.image_ref,
        created_nano=row.created,
        config=dict(row.config or {}),
        host_config=dict(row.host_config or {}),
        state=state_from_json(dict(row.state or {})),
        network_settings=dict(row.network_settings or {}),
        mounts=_mounts_from_json(list(row.mounts or [])),
        restart_count=row.restart_count or 0,
        extra=extra,
        networking_config=netcfg,
    )


def _values(c: Container) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "image_id": c.image_id,
        "image_ref": c.image_ref,
        "created": c.created_nano,
        "status": c.state.status,
        "config": c.config,
        "host_config": c.host_config,
        "state": state_to_json(c.state),
        "network_settings": c.network_settings,
        "mounts": [attrs.asdict(m) for m in c.mounts],
        "restart_count": c.restart_count,
        "layer_id": c.id,
        "extra": {**c.extra, "networking_config": c.networking_config},
    }


class ContainerRepository:
    """Stores containers; every method runs on the DB thread and returns records."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, c: Container) -> Deferred[Container]:
        """Insert a new container. @raise Conflict: the name is taken (dockerd's text)."""
        values = _values(c)

        def thd(conn: Connection) -> Container:
            try:
                conn.execute(_INSERT, values)
            except IntegrityError:
                holder = conn.execute(
                    select(ContainerRow.id).where(ContainerRow.name == c.name)
                ).scalar_one_or_none()
                if holder is not None:
                    raise name_conflict(c.name, holder) from None
                raise
            return c

        return self._db.transaction(thd)

    def save(self, c: Container) -> Deferred[Container]:
        """Write every mutable field of C{c} (state, configs, settings, name, counters).

        @raise Conflict: a rename hit a taken name.
        """
        values = _values(c)
        values.pop("id")

        def thd(conn: Connection) -> Container:
            try:
                conn.execute(_UPDATE, {"b_id": c.id, **values})
            except IntegrityError:
                holder = conn.execute(
                    select(ContainerRow.id).where(ContainerRow.name == c.name)
                ).scalar_one_or_none()
                if holder is not None:
                    raise name_conflict(c.name, holder) from None
                raise
            return c

        return self._db.transaction(thd)

    def save_state(self, c: Container) -> Deferred[Container]:
        """Write only what a state change alters (status, state, restart count): the configs,
        network settings and mounts are not encoded and written again (issue 21: the
        "removing" mark of every `rm` and the kill/stop/pause marks rewrote the whole row)."""
        values = {
            "status": c.state.status,
            "state": state_to_json(c.state),
            "restart_count": c.restart_count,
        }

        def thd(conn: Connection) -> Container:
            conn.execute(_UPDATE, {"b_id": c.id, **values})
            return c

        return self._db.transaction(thd)

    def remove(self, container_id: str) -> Deferred[None]:
        """Delete the row (endpoints and volume uses cascade)."""

        def thd(conn: Connection) -> None:
            conn.execute(_DELETE, {"b_id": container_id})

        return self._db.transaction(thd)

    def get(self, container_id: str) -> Deferred[Container | None]:
        """One container by full id."""

        def thd(conn: Connection) -> Container | None:
            row = conn.execute(
                select(ContainerRow).where(ContainerRow.id == container_id)
            ).one_or_none()
            return _record(row) if row is not None else None

        return self._db.run(thd)

    def all(self) -> Deferred[list[Container]]:
        """Every container, oldest first."""

        def thd(conn: Connection) -> list[Container]:
            rows = conn.execute(select(ContainerRow).order_by(ContainerRow.created))
            return [_record(r) for r in rows]

        return self._db.run(thd)
