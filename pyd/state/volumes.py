"""Volumes and container->volume uses (layer: state).

The RESTRICT foreign key from C{container_volumes} to C{volumes} is the last line of defence: a
volume some container (running or not) refers to cannot lose its row, so its data is never
deleted. L{VolumeRepository.delete} turns that into dockerd's 409 text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from twisted.internet.defer import Deferred, succeed

from pyd.core.errors import Conflict
from pyd.core.records import Volume
from pyd.state.db import Database
from pyd.state.models import ContainerRow, ContainerVolumeRow, VolumeRow

# Container states in which a container is using its mounts.
ACTIVE_STATES = ("running", "paused", "restarting")


def _record(row: Any) -> Volume:
    return Volume(
        name=row.name,
        driver=row.driver,
        mountpoint=row.mountpoint,
        created=int(row.created),
        labels=None if row.labels is None else dict(row.labels),
        options=None if row.options is None else dict(row.options),
        anonymous=bool(row.anonymous),
        bind_root=row.bind_root or "",
        bind_subpath=row.bind_subpath or "",
    )


def in_use_message(name: str, refs: Sequence[str]) -> str:
    """dockerd's text for removing a referenced volume."""
    return f"remove {name}: volume is in use - [{', '.join(refs)}]"


def _refs(conn: Connection, name: str) -> list[str]:
    q = (
        select(ContainerVolumeRow.container_id)
        .where(ContainerVolumeRow.volume_name == name)
        .distinct()
        .order_by(ContainerVolumeRow.container_id)
    )
    return [r[0] for r in conn.execute(q)]


class VolumeRepository:
    """Stores volume rows and which containers use which volume."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Volume records by name, read through: C{GET /volumes/NAME} and every container start
        # that names a volume ask for one, and a database thread hop costs far more than the
        # answer. Every write of the volumes table is in this class; each bumps C{_writes}
        # before and after, and a read that saw a write in flight is not kept.
        self._known: dict[str, Volume] = {}
        self._writes = 0

    def _keep(self, seen: int, vol: Volume | None) -> Volume | None:
        if vol is not None and seen == self._writes and len(self._known) < 65536:
            self._known[vol.name] = vol
        return vol

    def _writing(self, name: str) -> None:
        self._writes += 1
        self._known.pop(name, None)

    def get_or_add(self, vol: Volume) -> Deferred[tuple[Volume, bool]]:
        """Insert C{vol} unless a volume of that name exists; fire with (stored, created)."""

        def thd(conn: Connection) -> tuple[Volume, bool]:
            row = conn.execute(select(VolumeRow).where(VolumeRow.name == vol.name)).first()
            if row is not None:
                return _record(row), False
            conn.execute(
                insert(VolumeRow).values(
                    name=vol.name,
                    driver=vol.driver,
                    mountpoint=vol.mountpoint,
                    created=vol.created,
                    labels=vol.labels,
                    options=vol.options,
                    anonymous=vol.anonymous,
                    bind_root=vol.bind_root,
                    bind_subpath=vol.bind_subpath,
                )
            )
            return vol, True

        def written(result: Any) -> Any:
            alone = self._writes == mine
            self._writing(vol.name)
            if alone and isinstance(result, tuple):
                # No other write ran meanwhile: the stored record is what a read would give,
                # so the inspect that follows a create (the CLI's, the bench's) needs no read.
                self._keep(self._writes, result[0])
            return result

        self._writing(vol.name)
        mine = self._writes
        return self._db.transaction(thd).addBoth(written)

    def get(self, name: str) -> Deferred[Volume | None]:
        """The volume named C{name}, or None."""

        def thd(conn: Connection) -> Volume | None:
            row = conn.execute(select(VolumeRow).where(VolumeRow.name == name)).first()
            return None if row is None else _record(row)

        known = self._known.get(name)
        if known is not None:
            return succeed(known)
        seen = self._writes
        return self._db.run(thd).addCallback(lambda vol: self._keep(seen, vol))

    def all(self) -> Deferred[list[Volume]]:
        """Every volume, by name."""

        def thd(conn: Connection) -> list[Volume]:
            return [_record(r) for r in conn.execute(select(VolumeRow).order_by(VolumeRow.name))]

        def keep(vols: list[Volume]) -> list[Volume]:
            for v in vols:
                self._keep(seen, v)
            return vols

        seen = self._writes
        return self._db.run(thd).addCallback(keep)

    def ref_counts(self) -> Deferred[dict[str, int]]:
        """How many distinct containers refer to each referenced volume."""

        def thd(conn: Connection) -> dict[str, int]:
            q = select(
                ContainerVolumeRow.volume_name,
                func.count(func.distinct(ContainerVolumeRow.container_id)),
            ).group_by(ContainerVolumeRow.volume_name)
            return {name: int(n) for name, n in conn.execute(q)}

        return self._db.run(thd)

    def refs(self, name: str) -> Deferred[list[str]]:
        """Ids of the containers referring to volume C{name}."""
        return self._db.run(lambda conn: _refs(conn, name))

    def delete(self, name: str) -> Deferred[Volume | None]:
        """Delete the volume's row; fire with the deleted volume (None if there was none).

        @raise Conflict: C{remove NAME: volume is in use - [ids]} while a container refers to it.
        """

        def thd(conn: Connection) -> Volume | None:
            row = conn.execute(select(VolumeRow).where(VolumeRow.name == name)).first()
            if row is None:
                return None
            refs = _refs(conn, name)
            if refs:
                raise Conflict(in_use_message(name, refs))
            try:
                with conn.begin_nested():
                    conn.execute(delete(VolumeRow).where(VolumeRow.name == name))
            except IntegrityError as e:  # a use row appeared meanwhile: RESTRICT keeps the row
                raise Conflict(in_use_message(name, _refs(conn, name))) from e
            return _record(row)

        def written(result: Any) -> Any:
            self._writing(name)
            return result

        self._writing(name)
        return self._db.transaction(thd).addBoth(written)

    def add_uses(self, container_id: str, uses: Iterable[tuple[str, str]]) -> Deferred[None]:
        """Record that the container uses each (volume name, destination)."""
        values = [
            {"container_id": container_id, "volume_name": n, "destination": d}
            for n, d in dict.fromkeys(uses)
        ]

        def thd(conn: Connection) -> None:
            if not values:
                return
            existing = {
                (r.volume_name, r.destination)
                for r in conn.execute(
                    select(ContainerVolumeRow).where(
                        ContainerVolumeRow.container_id == container_id
                    )
                )
            }
            new = [v for v in values if (v["volume_name"], v["destination"]) not in existing]
            if new:
                conn.execute(insert(ContainerVolumeRow), new)

        return self._db.transaction(thd)

    def uses_of(self, container_id: str) -> Deferred[list[tuple[str, str]]]:
        """(volume name, destination) pairs the container uses."""

        def thd(conn: Connection) -> list[tuple[str, str]]:
            q = (
                select(ContainerVolumeRow.volume_name, ContainerVolumeRow.destination)
                .where(ContainerVolumeRow.container_id == container_id)
                .order_by(ContainerVolumeRow.destination)
            )
            return [(r[0], r[1]) for r in conn.execute(q)]

        return self._db.run(thd)

    def remove_uses(self, container_id: str) -> Deferred[list[str]]:
        """Forget the container's uses; fire with the volume names it used."""

        def thd(conn: Connection) -> list[str]:
            names = [
                r[0]
                for r in conn.execute(
                    select(ContainerVolumeRow.volume_name)
                    .where(ContainerVolumeRow.container_id == container_id)
                    .distinct()
                )
            ]
            conn.execute(
                delete(ContainerVolumeRow).where(ContainerVolumeRow.container_id == container_id)
            )
            return sorted(names)

        return self._db.transaction(thd)

    def host_config(self, container_id: str) -> Deferred[dict[str, Any]]:
        """The container's stored HostConfig (empty if there is no such container)."""

        def thd(conn: Connection) -> dict[str, Any]:
            row = conn.execute(
                select(ContainerRow.host_config).where(ContainerRow.id == container_id)
            ).first()
            return dict(row[0] or {}) if row is not None else {}

        return self._db.run(thd)

    def active_users(self, name: str, exclude: str = "") -> Deferred[list[str]]:
        """Ids of the containers using volume C{name} that are running (or paused, restarting),
        except C{exclude}."""

        def thd(conn: Connection) -> list[str]:
            q = (
                select(ContainerVolumeRow.container_id)
                .join(ContainerRow, ContainerRow.id == ContainerVolumeRow.container_id)
                .where(ContainerVolumeRow.volume_name == name)
                .where(ContainerRow.status.in_(ACTIVE_STATES))
                .where(ContainerVolumeRow.container_id != exclude)
                .distinct()
            )
            return [r[0] for r in conn.execute(q)]

        return self._db.run(thd)
