"""Event log repository (layer: state)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select
from twisted.internet.defer import Deferred

from pyd.core.records import Event
from pyd.state.db import Database
from pyd.state.models import EventRow

# Built once: constructing an ORM-entity INSERT per call cost more than the SQL itself.
_EVENTS: Table = EventRow.__table__  # type: ignore[assignment]  # SQLAlchemy types __table__ as FromClause; a declarative model's is a Table
_INSERT = insert(_EVENTS)


def _record(row: Any) -> Event:
    return Event(
        id=row.id,
        type=row.type,
        action=row.action,
        actor_id=row.actor_id,
        attributes=dict(row.attributes or {}),
        scope=row.scope,
        time_nano=row.time_nano,
    )


class EventRepository:
    """Stores events and reads them back by time window."""

    def __init__(self, db: Database, retention: int = 10000) -> None:
        self._db = db
        self.retention = retention
        self._since_prune = 0

    def add(
        self,
        type_: str,
        action: str,
        actor_id: str,
        attributes: dict[str, str],
        scope: str,
        time_nano: int,
    ) -> Deferred[Event]:
        """Persist one event; every so often drop those beyond the retention bound."""
        self._since_prune += 1
        prune = self._since_prune >= 100
        if prune:
            self._since_prune = 0
        retention = self.retention

        def thd(conn: Connection) -> Event:
            res = conn.execute(
                _INSERT,
                {
                    "type": type_,
                    "action": action,
                    "actor_id": actor_id,
                    "attributes": attributes,
                    "scope": scope,
                    "time_nano": time_nano,
                },
            )
            new_id = res.inserted_primary_key[0] if res.inserted_primary_key else 0
            if prune:
                conn.execute(delete(EventRow).where(EventRow.id <= new_id - retention))
            return Event(
                id=int(new_id),
                type=type_,
                action=action,
                actor_id=actor_id,
                attributes=attributes,
                scope=scope,
                time_nano=time_nano,
            )

        return self._db.transaction(thd)

    def between(
        self,
        since_nano: int,
        until_nano: int | None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> Deferred[list[Event]]:
        """Events with C{since <= time <= until}, oldest first; a page of at most C{limit}
        after the event C{after_id}."""

        def thd(conn: Connection) -> list[Event]:
            q = select(EventRow).where(EventRow.time_nano >= since_nano)
            if until_nano is not None:
                q = q.where(EventRow.time_nano <= until_nano)
            if after_id:
                q = q.where(EventRow.id > after_id)
            q = q.order_by(EventRow.id)
            if limit is not None:
                q = q.limit(limit)
            return [_record(r) for r in conn.execute(q)]

        return self._db.run(thd)

    def count(self) -> Deferred[int]:
        """How many events are stored."""
        return self._db.run(
            lambda conn: int(conn.execute(select(func.count()).select_from(EventRow)).scalar_one())
        )
