"""pyroute2's IPRoute without the rest of pyroute2 (layer: drivers).

The package's C{__init__} imports every pyroute2 API (NDB, IPDB, ipset, WireGuard, nl80211,
plan9...): about 6 MB of resident memory the daemon never uses. Importing this module first
registers C{pyroute2} as a bare package (its submodules import normally); the first access to any
other name of the package (C{from pyroute2 import NDB}, say) runs the real C{__init__} then, so
other users of pyroute2 in the same process see the whole package as usual.

The traffic-control plugins that pyroute2's C{tcmsg} package imports (qdiscs and classifiers,
with the actions and ematches the classifiers import: ~0.5 MB) are registered as lazy modules:
pyd never asks for tc, and the first name asked of a plugin (pyroute2 decoding a qdisc, say)
runs it in place.

pyroute2's C{iprsocket} imports C{unittest.mock} (with C{pkgutil}: ~0.4 MiB) for one C{Mock()}
made at class definition, the message queue of its synchronous C{IPRSocket}, which pyd does not
use: it is imported against a stand-in whose C{Mock()} makes the real one on first use.
"""

from __future__ import annotations

from typing import Any

from pyd.core.lean import bare_package, lazy_module, stand_in

_TC_PLUGINS = (
    "cls_basic", "cls_flow", "cls_fw", "cls_matchall", "cls_u32", "sched_bpf", "sched_cake",
    "sched_choke", "sched_clsact", "sched_codel", "sched_drr", "sched_fq_codel", "sched_hfsc",
    "sched_htb", "sched_ingress", "sched_netem", "sched_pfifo", "sched_pfifo_fast", "sched_plug",
    "sched_sfq", "sched_tbf", "sched_template",
)  # fmt: skip

bare_package("pyroute2")
for _name in _TC_PLUGINS:
    try:
        lazy_module("pyroute2.netlink.rtnl.tcmsg." + _name)
    except ImportError:  # not in this pyroute2 version: nothing to defer
        pass


class MockOnFirstUse:
    """A C{unittest.mock.Mock()} made when one of its attributes is first asked for."""

    def __getattr__(self, name: str) -> Any:
        if "_mock" not in self.__dict__:
            from unittest import mock

            self.__dict__["_mock"] = mock.Mock()
        return getattr(self.__dict__["_mock"], name)


with stand_in("unittest.mock", Mock=MockOnFirstUse):
    from pyroute2.iproute.linux import IPRoute
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402

__all__ = ["IPRoute", "NetlinkError"]
