"""pyroute2's IPRoute without the rest of pyroute2 (layer: drivers).

The package's C{__init__} imports every pyroute2 API (NDB, IPDB, ipset, WireGuard, nl80211,
plan9...): about 6 MB of resident memory the daemon never uses. Importing this module first
registers C{pyroute2} as a bare package (its submodules import normally); the first access to any
other name of the package (C{from pyroute2 import NDB}, say) runs the real C{__init__} then, so
other users of pyroute2 in the same process see the whole package as usual.
"""

from __future__ import annotations

from pyd.core.lean import bare_package

bare_package("pyroute2")

from pyroute2.iproute.linux import IPRoute  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402

__all__ = ["IPRoute", "NetlinkError"]
