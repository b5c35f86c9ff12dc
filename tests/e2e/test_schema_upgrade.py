"""A daemon started on a database of an older schema upgrades it (in a child process) first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyd.state import migrate
from pyd.state.db import make_engine
from tests.helpers.daemon import PydDaemon


@pytest.mark.e2e
class SchemaUpgradeTests:
    """The start-up upgrade keeps the data and backs the old file up."""

    def test_old_database_upgraded_at_start(self, tmp_path: Path) -> None:
        """A data root whose pyd.db is at the first revision comes up at head, with a backup
        of the old file, and serves requests."""
        d = PydDaemon(str(tmp_path / "pyd"))
        os.makedirs(d.data_root)
        db = os.path.join(d.data_root, "pyd.db")
        engine = make_engine(db)
        with engine.begin() as conn:
            migrate.upgrade(conn, "0001_daemon_and_events")
        engine.dispose()
        try:
            d.start()
            assert d.request("GET", "/_ping")[0] == 200
            assert "NAME" in d.docker("volume", "ls").stdout
            engine = make_engine(db)
            with engine.connect() as conn:
                assert migrate.current_revision(conn) == migrate.head_revision()
            engine.dispose()
            backups = os.listdir(os.path.join(d.data_root, "backups"))
            assert backups == ["pyd.db.0001_daemon_and_events.bak"]
        finally:
            d.cleanup()
