"""Upgrade the schema to head with Alembic, driven from code (layer: state).

Alembic itself is imported only when the schema must change: it and its dependencies cost the
daemon ~10 MB of resident memory for the whole of its life. Whether the database is at head is
answered without it, from the C{alembic_version} table and the revision files.
"""

from __future__ import annotations

import importlib.util
import os
import re
from typing import TYPE_CHECKING

from sqlalchemy import Connection

if TYPE_CHECKING:
    from alembic.config import Config

_REVISION = re.compile(r"""^revision\s*(?::[^=]*)?=\s*["']([^"']+)["']""", re.M)
_DOWN = re.compile(r"""^down_revision\s*(?::[^=]*)?=\s*(?:None|["']([^"']+)["'])""", re.M)


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
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", script_location())
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade the database behind C{connection} to C{revision} (blocking: DB thread only).

    A database already at head is left alone without importing Alembic.
    """
    if revision == "head" and current_revision(connection) == head_revision():
        return
    from alembic import command

    command.upgrade(alembic_config(connection), revision)


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None for an empty database."""
    has_table = connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).first()
    if has_table is None:
        return None
    row = connection.exec_driver_sql("SELECT version_num FROM alembic_version").first()
    return str(row[0]) if row is not None else None


def head_revision() -> str | None:
    """The newest revision shipped, read from the revision files (Alembic only if they branch)."""
    versions = os.path.join(script_location(), "versions")
    revisions: set[str] = set()
    downs: set[str] = set()
    for name in os.listdir(versions):
        if not name.endswith(".py") or name.startswith("__"):
            continue
        with open(os.path.join(versions, name), encoding="utf-8") as f:
            text = f.read()
        rev, down = _REVISION.search(text), _DOWN.search(text)
        if rev is None or down is None:
            return _alembic_head()
        revisions.add(rev.group(1))
        if down.group(1):
            downs.add(down.group(1))
    heads = revisions - downs
    if len(heads) != 1:
        return _alembic_head()
    return heads.pop()


def _alembic_head() -> str | None:
    from alembic.script import ScriptDirectory

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


def main(argv: list[str]) -> int:
    """C{python -m pyd.state.migrate DB}: upgrade the SQLite file C{DB} to head (the daemon
    runs this as a child process, see L{pyd.daemon.tree.PydService})."""
    from pyd.state.db import make_engine

    engine = make_engine(argv[0])
    try:
        with engine.begin() as conn:
            upgrade(conn)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
