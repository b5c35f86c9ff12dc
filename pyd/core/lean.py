"""Packages whose C{__init__} imports far more than the daemon uses, registered bare: their
submodules import as usual, the C{__init__} runs only if something asks the package itself for
a name (layer: core).

Why: C{werkzeug}'s C{__init__} imports its development server and test client (with
C{http.cookiejar}, C{werkzeug.serving}, C{werkzeug.test}...: ~1 MB resident) for the
C{run_simple}, C{Client}, C{Request} and C{Response} it re-exports; Klein and pyd import only
C{werkzeug.routing} and C{werkzeug.exceptions}. pyroute2's C{__init__} imports every pyroute2
API (see L{pyd.drivers.network.lean_pyroute2}).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


def bare_package(name: str) -> None:
    """Register package C{name} without running its C{__init__} (a no-op once it is imported
    or when it is not installed). The first access to a name of the package that is not one of
    its submodules (C{from werkzeug import Client}, C{werkzeug.__version__}) runs the real
    C{__init__} then, so that other users in the process see the whole package as usual."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    pkg = types.ModuleType(name)
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__spec__ = spec
    pkg.__loader__ = spec.loader
    pkg.__file__ = spec.origin
    pkg.__package__ = name
    loader = spec.loader

    def lookup(attr: str) -> Any:
        # A submodule (`from werkzeug import routing`): import just that one.
        if not attr.startswith("__") and importlib.util.find_spec(f"{name}.{attr}"):
            return importlib.import_module(f"{name}.{attr}")
        # Anything else: the whole package, as a plain `import name` would have loaded it.
        if "__getattr__" in pkg.__dict__:
            del pkg.__dict__["__getattr__"]
            loader.exec_module(pkg)
        return pkg.__dict__[attr] if attr in pkg.__dict__ else getattr(pkg, attr)

    pkg.__dict__["__getattr__"] = lookup
    sys.modules[name] = pkg
