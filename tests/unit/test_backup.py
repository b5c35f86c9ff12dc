"""The database is copied before a schema upgrade changes it (pyd.state.migrate)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from pyd.state import migrate
from pyd.state.db import make_engine


class BackupTests:
    """backup_before_upgrade copies only when the revision will change."""

    def test_backup_only_when_behind(self, tmp_path: Path) -> None:
        """Empty: no copy. Behind head: a readable copy named by revision. At head: none."""
        engine = make_engine(str(tmp_path / "pyd.db"))
        backups = str(tmp_path / "backups")
        try:
            with engine.begin() as conn:
                assert migrate.backup_before_upgrade(conn, backups) is None  # empty database
                migrate.upgrade(conn, "0001_daemon_and_events")
            with engine.begin() as conn:
                path = migrate.backup_before_upgrade(conn, backups)
                assert path is not None and path.endswith("pyd.db.0001_daemon_and_events.bak")
                migrate.upgrade(conn)
            with engine.begin() as conn:
                assert migrate.backup_before_upgrade(conn, backups) is None  # at head
        finally:
            engine.dispose()
        copy = sqlite3.connect(path)
        try:
            (rev,) = copy.execute("select version_num from alembic_version").fetchone()
        finally:
            copy.close()
        assert rev == "0001_daemon_and_events"
        assert os.listdir(backups) == ["pyd.db.0001_daemon_and_events.bak"]
