"""The daemon starts without the TLS stack (pyOpenSSL, cryptography: ~13 MB of RSS) and
loads it, complete, on first use (pyd/core/tlsstack.py)."""

from __future__ import annotations

import unittest

from tests.helpers.pychild import run_python

SCRIPT = """
import sys
from pyd.core import tlsstack
tlsstack.defer()
from twisted.internet import reactor
from twisted.internet import endpoints
import pyd.daemon.wiring, pyd.daemon.drivers, pyd.daemon.listeners
from pyd.drivers.registry import HTTPClients
from pyd.drivers.storage.fetch import UrlFetcher
clients = HTTPClients(reactor)
UrlFetcher(reactor, None)
def loaded():
    return [m for m in ("OpenSSL", "cryptography", "treq", "twisted.web.client",
                        "service_identity") if sys.modules.get(m) is not None] or "-"
print("before", loaded(), tlsstack.tls_errors() == ())
client = clients.verified  # builds the clients: twisted.web.client, no TLS yet
print("built", loaded(), tlsstack.tls_errors() == (), type(client).__module__)
# the first HTTPS connection's creator loads the stack, complete
creator = clients.verified._agent._endpointFactory._policyForHTTPS.creatorForNetloc(b"example.com", 443)
from twisted.internet.interfaces import IReactorSSL, IOpenSSLClientConnectionCreator
from twisted.protocols.tls import TLSMemoryBIOFactory
from OpenSSL import SSL
print("after", endpoints.TLSMemoryBIOFactory is TLSMemoryBIOFactory,
      IReactorSSL.providedBy(reactor), IOpenSSLClientConnectionCreator.providedBy(creator),
      tlsstack.tls_errors() == (SSL.Error,))
"""


class TLSStackTests(unittest.TestCase):
    def test_deferred_then_loaded_complete(self) -> None:
        """After defer(), importing the reactor, endpoints and the daemon's wiring and building
        the registry clients' holder loads no TLS module; building the clients loads
        twisted.web.client (not treq) but still no TLS; the first HTTPS connection's creator
        loads it, and endpoints and the reactor have their TLS names."""
        r = run_python("-c", SCRIPT)
        self.assertEqual(r.returncode, 0, r.stderr)
        before, built, after = r.stdout.splitlines()
        self.assertEqual(before, "before - True")
        # a client for plain-HTTP registries needs no TLS (~12 MiB resident)
        self.assertEqual(built, "built ['twisted.web.client'] True pyd.drivers.registry.webclient")
        self.assertEqual(after, "after True True True True")

    def test_load_without_defer_only_imports(self) -> None:
        """In a process that never deferred it (tests, tools) load() just imports."""
        from pyd.core import tlsstack

        tlsstack.load()
        from OpenSSL import SSL

        self.assertEqual(tlsstack.tls_errors(), (SSL.Error,))
