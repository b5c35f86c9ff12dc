"""Event log repository (layer: state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from pyd.core.records import Event
from pyd.state.db import Database, DriverStatement
from pyd.state.models import EventRow

# Built once: constructing an ORM-entity INSERT per call cost more than the SQL itself.
_EVENTS: Table = EventRow.__table__  # type: ignore[assignment]  # SQLAlchemy types __table__ as FromClause; a declarative model's is a Table
_INSERT = insert(_EVENTS)
# Many rows in one statement, their ids back in the order given (SQLite's RETURNING).
# One row on the driver's cursor (DriverStatement): every event, most of them alone.
_INSERT_ONE = DriverStatement(
    _INSERT, _EVENTS, ["time_nano", "type", "action", "actor_id", "attributes", "scope"]
)
_INSERT_MANY = insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True)


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


def _row(
    type_: str,
    action: str,
    actor_id: str,
    attributes: dict[str, str],
    scope: str,
    time_nano: int,
) -> dict[str, Any]:
    """An event's column values (also the L{Event} fields but its id)."""
    return {
        "type": type_,
        "action": action,
        "actor_id": actor_id,
        "attributes": attributes,
        "scope": scope,
        "time_nano": time_nano,
    }


def _store(conn: Connection, rows: list[dict[str, Any]], keep: int | None) -> list[int]:
    """Insert C{rows} (one statement), then, with C{keep}, drop all but the newest C{keep}
    events; the new ids in the order of the rows."""
    if len(rows) == 1:
        ids = [int(_INSERT_ONE.execute(conn, rows[0]).lastrowid or 0)]
    else:
        ids = [int(r[0]) for r in conn.execute(_INSERT_MANY, rows)]
    if keep is not None:
        conn.execute(delete(EventRow).where(EventRow.id <= ids[-1] - keep))
    return ids


class EventRepository:
    """Stores events and reads them back by time window.

    Events are written in batches: while one batch's transaction is on its way, the events
    emitted meanwhile wait and go together in the next one (one transaction and one multi-row
    INSERT for all of them). A bulk `docker rm` or `run` emits one event per container; each
    was a DB round trip of its own on the single DB thread (issue 21). An event's Deferred
    fires once its batch is committed, in emission order.
    """

    def __init__(self, db: Database, retention: int = 10000) -> None:
        self._db = db
        self.retention = retention
        self._since_prune = 0
        self._pending: list[tuple[dict[str, Any], Deferred[Event]]] = []
        self._in_flight = False

    def add(
        self,
        type_: str,
        action: str,
        actor_id: str,
        attributes: dict[str, str],
        scope: str,
        time_nano: int,
    ) -> Deferred[Event]:
        """Persist one event (in the next batch); every so often drop those beyond the
        retention bound."""
        d: Deferred[Event] = Deferred()
        self._pending.append((_row(type_, action, actor_id, attributes, scope, time_nano), d))
        if not self._in_flight:
            self._flush()
        return d

    def writer(
        self,
        type_: str,
        action: str,
        actor_id: str,
        attributes: dict[str, str],
        scope: str,
        time_nano: int,
    ) -> Callable[[Connection], Event] | None:
        """One event for another repository's transaction to store (committed with the change
        it reports, in one round trip), or None while events emitted before it wait for the
        next batch: it must not be stored ahead of them (then L{add} it once the change
        committed, after them)."""
        if self._pending:
            return None
        keep = self._keep_after(1)
        params = _row(type_, action, actor_id, attributes, scope, time_nano)
        return lambda conn: Event(id=_store(conn, [params], keep)[0], **params)

    def _keep_after(self, added: int) -> int | None:
        """How many events the write adding C{added} keeps: the retention bound every 100th
        event, else None (no pruning this time)."""
        self._since_prune += added
        if self._since_prune < 100:
            return None
        self._since_prune = 0
        return self.retention

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self._in_flight = True
        keep = self._keep_after(len(batch))
        rows = [params for params, _ in batch]

        def thd(conn: Connection) -> list[int]:
            return _store(conn, rows, keep)

        def done(ids: list[int]) -> None:
            for (params, d), new_id in zip(batch, ids, strict=True):
                d.callback(Event(id=new_id, **params))

        def failed(f: Failure) -> None:
            for _, d in batch:
                d.errback(f)

        def next_batch(_: object) -> None:
            self._in_flight = False
            if self._pending:
                self._flush()

        self._db.transaction(thd).addCallbacks(done, failed).addBoth(next_batch)

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
