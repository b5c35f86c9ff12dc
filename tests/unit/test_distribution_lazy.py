"""The distribution service and the registry client are loaded on first use: the packages name
what their submodules define without importing them, and the daemon's stand-in for the service
empties the staging directory at start without building it (docs/performance.md, issue 21)."""

from __future__ import annotations

import importlib
import os
import tempfile
import unittest
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, succeed

from pyd.engine.distribution.lazy import LazyDistribution
from tests.helpers.pychild import run_python

SCRIPT = """
import sys
import pyd.drivers.registry, pyd.engine.distribution
before = sorted(m for m in sys.modules if m.startswith(("pyd.drivers.registry.", "pyd.engine.distribution.")))
from pyd.engine.distribution import DistributionService
from pyd.drivers.registry import RegistryClient
import pyd.drivers.registry.client as client
print(before == [] or before, RegistryClient is client.RegistryClient)
"""


class _Inline:
    """A Blocking that runs the call at once."""

    def run(self, f: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        return succeed(f(*args, **kwargs))


class _Service:
    def __init__(self) -> None:
        self.cleaned = 0

    async def clean_staging(self) -> None:
        self.cleaned += 1

    def pull(self) -> str:
        return "pulled"


class LazyPackagesTests(unittest.TestCase):
    def test_submodules_load_when_a_name_is_asked(self) -> None:
        """Importing either package loads none of its submodules; a name asked of it imports the
        submodule that defines it and is that submodule's object."""
        r = run_python("-c", SCRIPT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["True", "True"])

    def test_every_exported_name_resolves(self) -> None:
        """Each name of C{__all__} comes from the submodule the package maps it to (the map and
        the type checker's imports cannot drift apart unnoticed)."""
        for name in ("pyd.drivers.registry", "pyd.engine.distribution"):
            package = importlib.import_module(name)
            for attr in package.__all__:
                value = getattr(package, attr)
                where = importlib.import_module(f"{name}.{package._WHERE[attr]}")
                self.assertIs(value, getattr(where, attr), f"{name}.{attr}")
        with self.assertRaises(AttributeError):
            importlib.import_module("pyd.engine.distribution").NoSuchName  # noqa: B018


class LazyDistributionTests(unittest.TestCase):
    def test_clean_staging_before_use_builds_nothing(self) -> None:
        """At start the staging directory is emptied and made again, 0700, without the service."""
        built: list[_Service] = []
        with tempfile.TemporaryDirectory(prefix="pyd-t-dist-") as root:
            staging = os.path.join(root, "tmp", "distribution")
            os.makedirs(os.path.join(staging, "left-over"))
            lazy = LazyDistribution(
                lambda: built.append(_Service()) or built[-1], _Inline(), staging
            )
            self.successful(ensureDeferred(lazy.clean_staging()))
            self.assertEqual(os.listdir(staging), [])
            self.assertEqual(os.stat(staging).st_mode & 0o777, 0o700)
        self.assertEqual(built, [])

    def test_first_use_builds_the_service_once(self) -> None:
        """Any other name is the service's, built on the first use and kept; from then on
        clean_staging is the service's own."""
        built: list[_Service] = []
        lazy: Any = LazyDistribution(lambda: built.append(_Service()) or built[-1], _Inline(), "/x")
        self.assertEqual((lazy.pull(), lazy.pull()), ("pulled", "pulled"))
        self.assertEqual(len(built), 1)
        self.successful(ensureDeferred(lazy.clean_staging()))
        self.assertEqual(built[0].cleaned, 1)

    def successful(self, d: Deferred[Any]) -> Any:
        out: list[Any] = []
        d.addBoth(out.append)
        self.assertEqual(len(out), 1)
        if isinstance(out[0], BaseException) or hasattr(out[0], "raiseException"):
            out[0].raiseException()
        return out[0]
