"""pyroute2's IPRoute without the rest of pyroute2 (layer: drivers).

The package's C{__init__} imports every pyroute2 API (NDB, IPDB, ipset, WireGuard, nl80211,
plan9...): about 6 MB of resident memory the daemon never uses. Importing this module first
registers C{pyroute2} as a bare package (its submodules import normally); the first access to any
other name of the package (C{from pyroute2 import NDB}, say) runs the real C{__init__} then, so
other users of pyroute2 in the same process see the whole package as usual.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


def _bare_package() -> None:
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    pkg = types.ModuleType("pyroute2")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__spec__ = spec
    pkg.__loader__ = spec.loader
    pkg.__file__ = spec.origin
    pkg.__package__ = "pyroute2"
    loader = spec.loader

    def lookup(name: str) -> Any:
        # A submodule (`from pyroute2 import config` inside pyroute2): import just that one.
        if not name.startswith("__") and importlib.util.find_spec("pyroute2." + name):
            return importlib.import_module("pyroute2." + name)
        # Anything else: the whole package, as a plain `import pyroute2` would have loaded it.
        if "__getattr__" in pkg.__dict__:
            del pkg.__dict__["__getattr__"]
            loader.exec_module(pkg)
        return pkg.__dict__[name] if name in pkg.__dict__ else getattr(pkg, name)

    pkg.__dict__["__getattr__"] = lookup
    sys.modules["pyroute2"] = pkg


_bare_package()

from pyroute2.iproute.linux import IPRoute  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402

__all__ = ["IPRoute", "NetlinkError"]
