"""Packaging: every pyd package is listed in pyproject, and twistd finds the plugin."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

REPO = Path(__file__).resolve().parents[2]


class PackagingTests(SynchronousTestCase):
    """`pip install .` ships all of pyd and the plugin."""

    def test_all_packages_listed(self) -> None:
        """Each directory under pyd/ with an __init__.py is in [tool.setuptools] packages."""
        listed = set(
            tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
        )
        found = {
            ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "pyd").rglob("__init__.py")
        }
        self.assertEqual(found - listed, set())

    def test_no_init_in_plugin_dir(self) -> None:
        """twistd_plugins/ must not have an __init__.py (it would shadow Twisted's)."""
        self.assertFalse((REPO / "twistd_plugins" / "__init__.py").exists())

    def test_twistd_lists_pyd(self) -> None:
        """`twistd --help` lists the pyd plugin from the installed distribution."""
        twistd = Path(sys.executable).with_name("twistd")
        out = subprocess.run([str(twistd), "--help"], capture_output=True, text=True, check=True)
        self.assertIn("pyd", out.stdout)
