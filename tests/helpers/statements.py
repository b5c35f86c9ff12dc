"""Counting the SQL statements a request sends to SQLite (issue 21's per-request budgets):
those SQLAlchemy executes, seen by its engine events, and the hot ones run on the driver's
cursor (L{pyd.state.db.DriverStatement}), which those events do not see."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from twisted.trial.unittest import SynchronousTestCase

from pyd.state.db import DriverStatement


def count_statements(case: SynchronousTestCase, into: list[str]) -> None:
    """Append the first word of every statement run from now on (until C{case} ends) to
    C{into}."""

    def core(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        into.append(statement.split(None, 1)[0].upper())

    event.listen(Engine, "before_cursor_execute", core)
    case.addCleanup(event.remove, Engine, "before_cursor_execute", core)
    execute = DriverStatement.execute

    def driver(statement: DriverStatement, conn: Any, values: dict[str, Any]) -> Any:
        into.append(statement.sql.split(None, 1)[0].upper())
        return execute(statement, conn, values)

    case.patch(DriverStatement, "execute", driver)
