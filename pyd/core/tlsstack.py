"""The TLS stack (pyOpenSSL, cryptography, service_identity, Twisted's TLS modules) loaded on
first use instead of at daemon start (layer: core).

Why: those libraries cost the daemon ~13 MB of RSS (a third of it their shared objects), and a
daemon serving only its Unix socket that never pulls over HTTPS never needs them. Twisted's
reactor (``twisted.internet.tcp``, ``posixbase``) and ``twisted.internet.endpoints`` import
them at import time whenever they are importable, so not importing them takes two steps:

* L{defer} (the daemon's composition root, before the reactor or endpoints are imported) hides
  ``OpenSSL`` from the import system: those modules take their documented no-TLS branch;
* L{load} (every user of TLS, before it touches it: the TLS listeners, the registry clients,
  certificate parsing) lifts that, imports the stack, and gives ``posixbase`` and ``endpoints``
  the names their TLS branch would have bound. The only thing that stays off is
  ``ITransport.startTLS`` on plain TCP connections (``tcp.Connection`` picks its base classes
  at import), which pyd never uses: its TLS is a L{TLSMemoryBIOFactory} wrapper.

``twisted.web.client`` binds TLS names at import *and* in decorators, so it must not be
imported before L{load}: pyd imports it only inside functions that call L{load} first
(the registry's HTTP clients are built on first use, after L{load}).

In any process that did not call L{defer} (tests, the CLI) L{load} only imports.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

_state = {"deferred": False, "loaded": False}
_lock = threading.Lock()


def defer() -> None:
    """Hide pyOpenSSL until L{load}; a no-op once it is imported (someone already needed it)."""
    if "OpenSSL" in sys.modules or _state["loaded"]:
        return
    sys.modules["OpenSSL"] = None  # type: ignore[assignment]  # the import system's "not importable" marker
    _state["deferred"] = True


def is_loaded() -> bool:
    """Whether pyOpenSSL is imported (no TLS connection can exist before it is)."""
    return sys.modules.get("OpenSSL") is not None


def load() -> None:
    """Import the TLS stack and complete the Twisted modules imported without it (idempotent;
    blocking: imports ~50 modules the first time, a few tens of milliseconds)."""
    if _state["loaded"]:
        return
    with _lock:
        if _state["loaded"]:
            return
        if _state["deferred"]:
            del sys.modules["OpenSSL"]
            _state["deferred"] = False
        import OpenSSL.SSL  # noqa: F401  # the point of this function
        import twisted.internet.ssl
        import twisted.protocols.tls

        _complete_posixbase(twisted.protocols.tls, twisted.internet.ssl)
        _complete_endpoints()
        _state["loaded"] = True


def _complete_posixbase(tls: Any, ssl: Any) -> None:
    base: Any = sys.modules.get("twisted.internet.posixbase")
    if base is None or base.tls is not None:
        return
    from twisted.internet.interfaces import IReactorSSL
    from zope.interface import classImplements

    base.tls = tls
    base.ssl = ssl
    classImplements(base.PosixReactorBase, IReactorSSL)  # type: ignore[misc]  # the class comes from a module looked up at run time


def _complete_endpoints() -> None:
    endpoints: Any = sys.modules.get("twisted.internet.endpoints")
    if endpoints is None or endpoints.TLSMemoryBIOFactory is not None:
        return
    from OpenSSL.SSL import Error as SSLError
    from twisted.internet import ssl
    from twisted.protocols import _sni, tls

    # exactly the names endpoints' `try: from OpenSSL.SSL import ...` branch binds
    endpoints.SSLError = SSLError
    for name in (
        "Certificate",
        "CertificateOptions",
        "KeyPair",
        "PrivateCertificate",
        "optionsForClientTLS",
        "trustRootFromCertificates",
    ):
        setattr(endpoints, name, getattr(ssl, name))
    endpoints.SNIConnectionCreator = _sni.SNIConnectionCreator
    endpoints._TLSServerEndpoint = _sni.TLSServerEndpoint
    endpoints.autoReloadingDirectoryOfPEMs = _sni.autoReloadingDirectoryOfPEMs
    endpoints._TLSMemoryBIOFactory = tls.TLSMemoryBIOFactory
    endpoints.TLSMemoryBIOFactory = tls.TLSMemoryBIOFactory


def with_tls_errors(*types: type[BaseException]) -> tuple[type[BaseException], ...]:
    """C{types} plus L{tls_errors}, for one C{except} clause."""
    return (*types, *tls_errors())


def tls_errors() -> tuple[type[BaseException], ...]:
    """C{(OpenSSL.SSL.Error,)} once the stack is loaded, else C{()} (for C{except} clauses: no
    TLS error can be raised before the stack is loaded)."""
    if not is_loaded():
        return ()
    from OpenSSL.SSL import Error

    return (Error,)
