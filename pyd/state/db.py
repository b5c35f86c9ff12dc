"""The SQLite database and its single DB thread (layer: state).

All SQL runs in one dedicated thread (one writer, as SQLite wants), never on the reactor thread.
Repositories pass plain functions C{fn(conn)} to L{Database.run} or L{Database.transaction} and get
plain data back; no Result, Session or ORM instance leaves the DB thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import JSON, Boolean, Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool
from twisted.internet.defer import Deferred

from pyd.core.errors import Conflict
from pyd.core.seams import Blocking

T = TypeVar("T")
U = TypeVar("U")


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(path: str | None) -> Engine:
    """An engine on the file C{path}, or a private in-memory database when C{path} is None."""
    if path is None:
        engine = create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        engine = create_engine(
            f"sqlite:///{path}",
            pool_size=1,
            max_overflow=0,
            connect_args={"check_same_thread": False},
        )
    event.listen(engine, "connect", _on_connect)
    return engine


class Database:
    """Runs functions against the database on the DB thread (given as a L{Blocking})."""

    def __init__(self, engine: Engine, blocking: Blocking) -> None:
        self.engine = engine
        self._blocking = blocking
        # The DB thread keeps one connection instead of taking it from the engine's pool for
        # every call: the checkout and the reset on return cost a third of a small
        # transaction's CPU (issue 21). Only the one DB thread (or start-up, before it runs)
        # uses it; every call ends its transaction.
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = self.engine.connect()
        return conn

    def _read(self, fn: Callable[[Connection], T]) -> T:
        conn = self._connection()
        try:
            return fn(conn)
        finally:
            if not conn.invalidated:
                conn.rollback()  # ends the read's snapshot, so the WAL can be checkpointed

    def _write(self, fn: Callable[[Connection], T]) -> T:
        conn = self._connection()
        try:
            with conn.begin():
                return fn(conn)
        except (IntegrityError, sqlite3.IntegrityError) as e:  # Core's, or a DriverStatement's
            raise Conflict(_integrity_message(e)) from e

    def run(self, fn: Callable[[Connection], T]) -> Deferred[T]:
        """Run a read-only C{fn(conn)} on the DB thread."""
        return self._blocking.run(self._read, fn)

    def transaction(self, fn: Callable[[Connection], T]) -> Deferred[T]:
        """Run C{fn(conn)} in one transaction; an IntegrityError becomes L{Conflict}.

        Repositories that want dockerd's wording for a conflict catch IntegrityError themselves
        inside C{fn} and raise their own L{Conflict}.
        """
        return self._blocking.run(self._write, fn)

    def transaction_then(
        self, fn: Callable[[Connection], T], then: Callable[[T], U]
    ) -> Deferred[tuple[T, U | Exception]]:
        """As L{transaction}, and once it committed, C{then(result)} on the same thread: fire
        with (result, what C{then} returned or the exception it raised).

        For a step that must follow the commit and is quick enough for the DB thread (a
        volume's empty directory renamed away): one thread hop instead of two. C{then}'s
        failure does not undo the commit, so it is handed back, not raised."""
        return self._blocking.run(self._write_then, fn, then)

    def _write_then(
        self, fn: Callable[[Connection], T], then: Callable[[T], U]
    ) -> tuple[T, U | Exception]:
        result = self._write(fn)
        try:
            return result, then(result)
        except Exception as e:  # noqa: BLE001 - handed back: the commit stands
            return result, e

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run C{fn(conn)} in a transaction on the calling thread (start-up, before the reactor)."""
        return self._write(fn)

    def release_memory(self) -> Deferred[None]:
        """Give back the page cache SQLite holds for the connection (it refills as needed;
        the daemon calls this when it is quiet after work)."""
        return self._blocking.run(self._read, _shrink_memory)

    def close(self) -> None:
        """Close the DB thread's connection and dispose of the engine's."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.engine.dispose()


class DriverStatement:
    """A Core statement compiled once for SQLite and run on the driver's cursor, inside the
    connection's transaction, for the few hot statements where SQLAlchemy's execution cost
    two to three times SQLite's own work (issue 21: a volume's create and removal each
    spent ~170 us of the DB thread's ~250 us in it). The SQL is SQLAlchemy's, compiled
    from the statement; values go in and out as Core's types store them (JSON text, booleans
    as integers), which tests/unit/test_driver_statements.py holds to Core's own.

    Errors are the driver's (C{sqlite3.IntegrityError}, not SQLAlchemy's wrapper).
    """

    def __init__(self, statement: Any, table: Table, keys: list[str] | None = None) -> None:
        compiled = statement.compile(dialect=sqlite.dialect(), column_keys=keys)
        self.sql = str(compiled)
        names: list[str] = list(compiled.positiontup or [])
        self._ins = [(n, _to_driver(table, n)) for n in names]
        self._table = table

    def execute(self, conn: Connection, values: dict[str, Any]) -> Any:
        """Run with C{values} (by column or bind name); the driver's cursor."""
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]  # a live connection has its driver's
        cursor.execute(self.sql, [f(values[n]) if f else values[n] for n, f in self._ins])
        return cursor

    def rows(self, cursor: Any) -> list[dict[str, Any]]:
        """The rows C{cursor} returns, by column name, values as Core would read them."""
        names = [d[0] for d in cursor.description]
        outs = [_from_driver(self._table, n) for n in names]
        return [
            {
                n: (f(v) if f and v is not None else v)
                for n, f, v in zip(names, outs, row, strict=True)
            }
            for row in cursor.fetchall()
        ]


def _to_driver(table: Table, name: str) -> Callable[[Any], Any] | None:
    col = table.c.get(name)
    if col is None:
        return None
    if isinstance(col.type, JSON):
        return json.dumps  # Core's JSON serializer (None is stored as JSON null)
    if isinstance(col.type, Boolean):
        return lambda v: None if v is None else int(bool(v))
    return None


def _from_driver(table: Table, name: str) -> Callable[[Any], Any] | None:
    col = table.c.get(name)
    if col is None:
        return None
    if isinstance(col.type, JSON):
        return json.loads
    if isinstance(col.type, Boolean):
        return bool
    return None


def _shrink_memory(conn: Connection) -> None:
    conn.exec_driver_sql("PRAGMA shrink_memory")


def _integrity_message(e: IntegrityError | sqlite3.IntegrityError) -> str:
    return f"conflict: {e.orig if isinstance(e, IntegrityError) else e}"
