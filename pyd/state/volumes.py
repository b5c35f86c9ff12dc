"""Volumes and container->volume uses (layer: state).

The RESTRICT foreign key from C{container_volumes} to C{volumes} is the last line of defence: a
volume some container (running or not) refers to cannot lose its row, so its data is never
deleted. L{VolumeRepository.delete} turns that into dockerd's 409 text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, delete, func, insert, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from pyd.core.errors import Conflict
from pyd.core.records import Volume
from pyd.state.db import Database, DriverStatement
from pyd.state.models import ContainerRow, ContainerVolumeRow, VolumeRow

T = TypeVar("T")
R = TypeVar("R")

# Container states in which a container is using its mounts.
ACTIVE_STATES = ("running", "paused", "restarting")


# Built once: SQLAlchemy's per-call statement construction costs more than SQLite's work.
_BY_NAME = select(VolumeRow).where(VolumeRow.name == bindparam("b_name"))
_INSERT_NEW = sqlite_insert(VolumeRow).on_conflict_do_nothing(index_elements=["name"])
_DELETE_RETURNING = (
    delete(VolumeRow).where(VolumeRow.name == bindparam("b_name")).returning(*VolumeRow.__table__.c)
)
# The two statements of `docker volume create` and `rm`, on the driver's cursor (DriverStatement).
_INSERT_NEW_FAST = DriverStatement(_INSERT_NEW, VolumeRow.__table__)
_DELETE_FAST = DriverStatement(_DELETE_RETURNING, VolumeRow.__table__)


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


class _Unknown:
    """A write whose outcome is not known (it failed unexpectedly)."""


_UNKNOWN = _Unknown()

# A mirror of more volumes than this is dropped (reads go to the database again).
MIRROR_LIMIT = 65536


class VolumeRepository:
    """Stores volume rows and which containers use which volume."""

    def __init__(self, db: Database, limit: int = MIRROR_LIMIT) -> None:
        self._db = db
        self._limit = limit
        # The whole volumes table, answered without a database round trip: the volume API's
        # inspect and list, and the engine's lookup before each create and removal, ask for it,
        # and a thread hop to the database costs more than the answer (issue 21). Every write of
        # the table is in this class and updates the mirror once it committed. A list read
        # installs the mirror only when no write started or ended while it ran; None until then
        # (and after a write whose outcome is unknown).
        self._table: dict[str, Volume] | None = None
        self._sorted: list[Volume] | None = None
        # Names with a write in flight: a read of one goes to the database, queued behind the
        # write on the one DB thread, so it sees what the write did.
        self._busy: dict[str, int] = {}
        self._writes = 0  # counts writes started and ended

    def _begin(self, name: str) -> None:
        self._writes += 1
        self._busy[name] = self._busy.get(name, 0) + 1

    def _end(self, name: str, after: Volume | _Unknown | None) -> None:
        self._writes += 1
        left = self._busy.pop(name) - 1
        if left:
            self._busy[name] = left
        if self._table is None:
            return
        if isinstance(after, _Unknown):
            self._table = None
        elif after is None:
            self._table.pop(name, None)
        else:
            self._table[name] = after
        self._sorted = None
        if self._table is not None and len(self._table) > self._limit:
            self._table = None

    def _install(self, seen: int, vols: list[Volume]) -> list[Volume]:
        if seen == self._writes and not self._busy and len(vols) <= self._limit:
            self._table = {v.name: v for v in vols}
            self._sorted = list(vols)
        return vols

    def get_or_add(
        self,
        vol: Volume,
        also: Callable[[Connection], object] | None = None,
        before: Callable[[Volume], Volume] | None = None,
    ) -> Deferred[tuple[Volume, bool]]:
        """Insert C{vol} unless a volume of that name exists; fire with (stored, created).
        C{also(conn)} runs in the same transaction when the row is inserted (its event).

        C{before(vol)}, when given, runs first on the DB thread, inside the transaction, and
        returns the volume to store: the driver making the directory, which must exist before
        the row (one thread hop for both instead of two). Its exception rolls back."""
        name = vol.name

        def thd(conn: Connection) -> tuple[Volume, bool]:
            new = vol if before is None else before(vol)
            values = {
                "name": new.name,
                "driver": new.driver,
                "mountpoint": new.mountpoint,
                "created": new.created,
                "labels": new.labels,
                "options": new.options,
                "anonymous": new.anonymous,
                "bind_root": new.bind_root,
                "bind_subpath": new.bind_subpath,
            }
            # One statement when the name is free (the usual case: the engine looked first).
            if _INSERT_NEW_FAST.execute(conn, values).rowcount:
                if also is not None:
                    also(conn)
                return new, True
            row = conn.execute(_BY_NAME, {"b_name": name}).first()
            if row is None:  # cannot happen: the insert was ignored because the row exists
                raise Conflict(f"volume {name} could not be stored")
            return _record(row), False

        def done(result: tuple[Volume, bool]) -> tuple[Volume, bool]:
            self._end(name, result[0])
            return result

        def failed(f: Failure) -> Failure:
            self._end(name, _UNKNOWN)
            return f

        self._begin(name)
        return self._db.transaction(thd).addCallbacks(done, failed)

    def get(self, name: str) -> Deferred[Volume | None]:
        """The volume named C{name}, or None."""
        if name not in self._busy:
            if self._table is not None:
                return succeed(self._table.get(name))
            return self.all().addCallback(
                lambda vols: next((v for v in vols if v.name == name), None)
            )

        def thd(conn: Connection) -> Volume | None:
            row = conn.execute(_BY_NAME, {"b_name": name}).first()
            return None if row is None else _record(row)

        return self._db.run(thd)

    def all(self) -> Deferred[list[Volume]]:
        """Every volume, by name."""
        if self._table is not None and not self._busy:
            if self._sorted is None:
                self._sorted = sorted(self._table.values(), key=lambda v: v.name)
            return succeed(list(self._sorted))

        def thd(conn: Connection) -> list[Volume]:
            return [_record(r) for r in conn.execute(select(VolumeRow).order_by(VolumeRow.name))]

        seen = self._writes
        return self._db.run(thd).addCallback(lambda vols: self._install(seen, vols))

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

    def delete(
        self, name: str, also: Callable[[Connection], object] | None = None
    ) -> Deferred[Volume | None]:
        """Delete the volume's row; fire with the deleted volume (None if there was none).
        C{also(conn)} runs in the same transaction when a row was deleted (its event).

        @raise Conflict: C{remove NAME: volume is in use - [ids]} while a container refers to it.
        """
        d: Deferred[Volume | None] = self._db.transaction(self._deleter(name, also))
        return self._track_delete(name, d)

    def delete_then(
        self,
        name: str,
        then: Callable[[Volume], T],
        also: Callable[[Connection], object] | None = None,
    ) -> Deferred[tuple[Volume | None, T | Exception | None]]:
        """As L{delete}, and once the deletion committed, C{then(deleted)} on the DB thread
        (the driver renaming the directory away: one thread hop for both instead of two); fire
        with (deleted, what C{then} returned or raised; None when no row was deleted)."""

        def after(deleted: Volume | None) -> T | None:
            return None if deleted is None else then(deleted)

        return self._track_delete(name, self._db.transaction_then(self._deleter(name, also), after))

    def _deleter(
        self, name: str, also: Callable[[Connection], object] | None
    ) -> Callable[[Connection], Volume | None]:
        def thd(conn: Connection) -> Volume | None:
            # One statement: the RESTRICT foreign key of the use rows refuses a volume in use
            # (SQLite aborts the statement alone; the transaction reads the users for the text).
            try:
                rows = _DELETE_FAST.rows(_DELETE_FAST.execute(conn, {"b_name": name}))
            except (IntegrityError, sqlite3.IntegrityError):
                raise Conflict(in_use_message(name, _refs(conn, name))) from None
            if not rows:
                return None
            if also is not None:
                also(conn)
            return _record(SimpleNamespace(**rows[0]))

        return thd

    def _track_delete(self, name: str, d: Deferred[R]) -> Deferred[R]:
        """The mirror follows a deletion's outcome (L{_begin} now, L{_end} when it is known:
        the row is gone once the transaction committed, whatever C{d} fires with)."""

        def done(result: R) -> R:
            self._end(name, None)
            return result

        def failed(f: Failure) -> Failure:
            # a refusal (in use) rolled back and changed nothing; anything else is unknown
            unchanged = self._table.get(name) if self._table is not None else None
            self._end(name, unchanged if f.check(Conflict) else _UNKNOWN)
            return f

        self._begin(name)
        return d.addCallbacks(done, failed)

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
