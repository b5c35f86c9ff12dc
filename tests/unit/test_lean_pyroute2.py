"""The netlink driver loads pyroute2's IPRoute without the rest of the package, and the rest
still loads for whoever asks for it."""

from __future__ import annotations

import unittest

from tests.helpers.pychild import run_python

SCRIPT = """
import sys
from pyd.drivers.network import netlink
lean = "pyroute2.ndb" not in sys.modules and "pyroute2.ipdb" not in sys.modules
from pyroute2 import NDB, IPRoute
import pyroute2
print(lean, IPRoute is netlink.IPRoute, NDB is not None, pyroute2.NetlinkError is netlink.NetlinkError)
"""


class LeanPyroute2Tests(unittest.TestCase):
    def test_bare_package_then_full_on_demand(self) -> None:
        """Importing the driver leaves NDB/IPDB unloaded; `from pyroute2 import NDB` afterwards
        loads the whole package, whose IPRoute and NetlinkError are the driver's."""
        r = run_python("-c", SCRIPT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["True", "True", "True", "True"])
