"""Packaging: every pyd package is listed in pyproject, and twistd finds the plugin."""

from __future__ import annotations

import re
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


class DependencyTests(SynchronousTestCase):
    """The daemon's runtime dependencies: bounded, used, and no test tools among them."""

    def deps(self) -> list[str]:
        with open(REPO / "pyproject.toml", "rb") as f:
            return list(tomllib.load(f)["project"]["dependencies"])

    def test_bounded(self) -> None:
        """Each runtime dependency has a lower and an upper bound."""
        for d in self.deps():
            self.assertIn(">=", d, d)
            self.assertIn("<", d.replace("<=", ""), d)

    def test_no_test_tools(self) -> None:
        """pytest, mypy, ruff, docker-py and friends are in the test extra only."""
        names = {re.split(r"[\[<>=]", d)[0].lower() for d in self.deps()}
        for tool in ("pytest", "mypy", "ruff", "docker", "testcontainers", "import-linter"):
            self.assertNotIn(tool, names)

    def test_each_used(self) -> None:
        """Every runtime dependency is imported by pyd (an unused one is removed)."""
        modules = {
            "twisted": "twisted",
            "pyopenssl": "OpenSSL",
            "service-identity": None,  # used by Twisted's TLS host-name checks, not imported
            "cryptography": "cryptography",
            "sqlalchemy": "sqlalchemy",
            "alembic": "alembic",
            "klein": "klein",
            "prometheus-client": "prometheus_client",
        }
        source = "\n".join(p.read_text() for p in (REPO / "pyd").rglob("*.py")) + "\n".join(
            p.read_text() for p in (REPO / "migrations").rglob("*.py")
        )
        for d in self.deps():
            name = re.split(r"[\[<>=]", d)[0].lower()
            self.assertIn(name, modules, f"{name}: say which module pyd imports it as")
            mod = modules[name]
            if mod is not None:
                self.assertRegex(source, rf"(?m)^\s*(from|import) {re.escape(mod)}\b", name)
