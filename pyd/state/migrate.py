"""Upgrade the schema to head with Alembic, driven from code (layer: state)."""

from __future__ import annotations

import importlib.util
import os

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection


def script_location() -> str:
    """Where the Alembic scripts are: the installed C{pyd_migrations} or the source tree's."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = os.path.join(os.path.dirname(here), "migrations")
    if os.path.isfile(os.path.join(source, "env.py")):
        return source
    spec = importlib.util.find_spec("pyd_migrations")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyd's migrations are not installed")
    return os.path.dirname(spec.origin)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config built in code; C{connection} is handed to env.py."""
    cfg = Config()
    cfg.set_main_option("script_location", script_location())
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade the database behind C{connection} to C{revision} (blocking: DB thread only)."""
    command.upgrade(alembic_config(connection), revision)


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None for an empty database."""
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def backup_before_upgrade(connection: Connection, directory: str, keep: int = 3) -> str | None:
    """Copy the database to C{directory} when an upgrade is about to change its schema.

    Uses SQLite's online backup API (consistent in WAL mode). The copy is named
    C{pyd.db.<revision>.bak}; only the newest C{keep} copies are kept. Nothing happens for an empty
    database or one already at head. Blocking: DB thread only.

    @return: the path of the copy, or None.
    """
    current = current_revision(connection)
    if current is None or current == head_revision():
        return None
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, f"pyd.db.{current}.bak")
    raw = connection.connection.driver_connection
    import sqlite3

    assert isinstance(raw, sqlite3.Connection)
    tmp = path + ".tmp"
    dest = sqlite3.connect(tmp)
    try:
        raw.backup(dest)
    finally:
        dest.close()
    os.replace(tmp, path)
    olds = sorted(
        (os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".bak")),
        key=os.path.getmtime,
    )
    for old in olds[:-keep]:
        os.unlink(old)
    return path
