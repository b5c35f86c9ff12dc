"""The netlink driver loads pyroute2's IPRoute without the rest of the package or the
traffic-control plugins, and the rest still loads for whoever asks for it."""

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

TC_SCRIPT = """
import sys, types
from pyd.drivers.network import netlink
from pyroute2.netlink.rtnl.tcmsg import plugins
tc = "pyroute2.netlink.rtnl.tcmsg."
lean = all(type(sys.modules[tc + n]) is not types.ModuleType for n in ("sched_htb", "cls_u32"))
lean = lean and tc + "common_act" not in sys.modules  # imported only by the classifiers
options = plugins["htb"].options  # the first use runs the module
from pyroute2.netlink.rtnl.tcmsg import sched_htb
print(lean, type(sched_htb) is types.ModuleType, options is sched_htb.options)
"""

MOCK_SCRIPT = """
import sys
from pyd.drivers.network import netlink
from pyroute2.netlink.rtnl import iprsocket
lean = "unittest.mock" not in sys.modules
queue = iprsocket.NotLocal.msg_queue  # made at class definition: a Mock once used
queue.put_nowait(0, b"")
from unittest import mock
print(lean, type(queue).__name__, queue.put_nowait.called, isinstance(queue._mock, mock.Mock))
"""


class LeanPyroute2Tests(unittest.TestCase):
    def test_bare_package_then_full_on_demand(self) -> None:
        """Importing the driver leaves NDB/IPDB unloaded; `from pyroute2 import NDB` afterwards
        loads the whole package, whose IPRoute and NetlinkError are the driver's."""
        r = run_python("-c", SCRIPT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["True", "True", "True", "True"])

    def test_tc_plugins_run_on_first_use(self) -> None:
        """The driver leaves the tc plugins unrun (and what only they import unloaded); the
        first name asked of one runs it in place, the module tcmsg's table holds."""
        r = run_python("-c", TC_SCRIPT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["True", "True", "True"])

    def test_mock_made_on_first_use(self) -> None:
        """The driver leaves unittest.mock unloaded (pyroute2's iprsocket makes one Mock at
        class definition); that object becomes a real Mock, loading the module, when used."""
        r = run_python("-c", MOCK_SCRIPT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["True", "MockOnFirstUse", "True", "True"])
