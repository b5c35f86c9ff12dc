"""The wheel (issue 17): built offline from a copy of the tree, it holds what the daemon needs at
run time (every module, the twistd plugin, the `pyd` command, the migrations, the seccomp
profile) and nothing that would break Twisted's plugin namespace or ship the tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

REPO = Path(__file__).resolve().parents[2]


class WheelTests(SynchronousTestCase):
    """`pip wheel .` (no index, no build isolation: offline) gives a complete wheel."""

    tmp: Path
    names: set[str]
    entry_points: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = Path(tempfile.mkdtemp(prefix="pyd-wheel-"))
        src = cls.tmp / "src"
        # a copy: setuptools writes build/ and *.egg-info next to pyproject.toml
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        src.mkdir()
        shutil.copy(REPO / "pyproject.toml", src)
        for d in ("pyd", "twistd_plugins", "migrations"):
            shutil.copytree(REPO / d, src / d, ignore=ignore)
        r = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "--no-index", "-q", "-w", str(cls.tmp / "out"), str(src)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if r.returncode != 0:
            raise AssertionError(f"pip wheel failed:\n{r.stdout}\n{r.stderr}")
        (wheel,) = (cls.tmp / "out").glob("pyd-*.whl")
        with zipfile.ZipFile(wheel) as z:
            cls.names = set(z.namelist())
            (ep,) = [n for n in cls.names if n.endswith(".dist-info/entry_points.txt")]
            cls.entry_points = z.read(ep).decode()

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_every_module(self) -> None:
        """Each tracked module of pyd is in the wheel at its import path."""
        tracked = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "pyd"], capture_output=True, text=True, check=True
        ).stdout.split()
        self.assertTrue(tracked)
        missing = [p for p in tracked if p not in self.names]
        self.assertEqual(missing, [])

    def test_plugin_and_command(self) -> None:
        """`twistd pyd` finds the plugin (no __init__ that would hide Twisted's own plugins);
        `pyd` is a console script."""
        self.assertIn("twisted/plugins/pyd_plugin.py", self.names)
        self.assertNotIn("twisted/plugins/__init__.py", self.names)
        self.assertIn("[console_scripts]\npyd = pyd.cli:main", self.entry_points)

    def test_runtime_data(self) -> None:
        """The migrations (env, template, every version) and the vendored seccomp profile."""
        self.assertIn("pyd/drivers/runtime/seccomp_default.json", self.names)
        for name in ("env.py", "script.py.mako"):
            self.assertIn(f"pyd_migrations/{name}", self.names)
        versions = sorted(p.name for p in (REPO / "migrations" / "versions").glob("*.py"))
        self.assertIn("0001_daemon_and_events.py", versions)
        for v in versions:
            self.assertIn(f"pyd_migrations/versions/{v}", self.names)

    def test_no_tests(self) -> None:
        """Neither the tests nor the benchmarks are shipped."""
        self.assertEqual([n for n in self.names if n.startswith(("tests/", "bench/"))], [])
