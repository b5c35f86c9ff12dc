"""The schema check at start-up works without importing Alembic (it costs the daemon ~10 MB)."""

from __future__ import annotations

import os
import tempfile
import unittest

from pyd.state import migrate
from pyd.state.db import make_engine
from tests.helpers.pychild import run_python

CHECK = """
import sys
from pyd.state import migrate
from pyd.state.db import make_engine
engine = make_engine(sys.argv[1])
with engine.begin() as conn:
    assert migrate.current_revision(conn) == migrate.head_revision(), "not at head"
    migrate.upgrade(conn)
print("alembic" in sys.modules)
"""


class LazyAlembicTests(unittest.TestCase):
    def test_head_from_files_matches_alembic(self) -> None:
        """The head read from the revision files is the one Alembic computes."""
        self.assertEqual(migrate.head_revision(), migrate._alembic_head())

    def test_current_revision_of_empty_database(self) -> None:
        """An empty database has no revision."""
        engine = make_engine(None)
        with engine.begin() as conn:
            self.assertIsNone(migrate.current_revision(conn))

    def test_module_upgrades_file_and_head_check_imports_no_alembic(self) -> None:
        """`python -m pyd.state.migrate DB` brings a new file to head; a process that then
        checks and "upgrades" it at head never imports Alembic."""
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "pyd.db")
            r = run_python("-m", "pyd.state.migrate", db)
            self.assertEqual(r.returncode, 0, r.stderr)
            r = run_python("-c", CHECK, db)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip(), "False")
