"""Daemon facts that must survive restarts, such as its ID (layer: state)."""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pyd.state.models import DaemonMeta


def get_or_create(conn: Connection, key: str, make: str) -> str:
    """Return the stored value of C{key}, storing C{make} first if absent (DB thread)."""
    conn.execute(sqlite_insert(DaemonMeta).values(key=key, value=make).on_conflict_do_nothing())
    return str(conn.execute(select(DaemonMeta.value).where(DaemonMeta.key == key)).scalar_one())
