"""The daemon starts without the TLS stack (pyOpenSSL, cryptography, treq: ~13 MB of RSS) and
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
loaded = [m for m in ("OpenSSL", "cryptography", "treq", "twisted.web.client", "service_identity")
          if sys.modules.get(m) is not None]
print("before", loaded or "-", tlsstack.tls_errors() == ())
client = clients.verified  # builds the clients: loads the stack
from twisted.internet.interfaces import IReactorSSL
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web import client as web_client
from OpenSSL import SSL
print("after", endpoints.TLSMemoryBIOFactory is TLSMemoryBIOFactory,
      IReactorSSL.providedBy(reactor), web_client.SSL is SSL,
      tlsstack.tls_errors() == (SSL.Error,), type(client).__module__)
"""


class TLSStackTests(unittest.TestCase):
    def test_deferred_then_loaded_complete(self) -> None:
        """After defer(), importing the reactor, endpoints and the daemon's wiring and building
        the registry clients' holder loads no TLS module; the first use of a client loads it and
        endpoints, the reactor and twisted.web.client have their TLS names."""
        r = run_python("-c", SCRIPT)
        self.assertEqual(r.returncode, 0, r.stderr)
        before, after = r.stdout.splitlines()
        self.assertEqual(before, "before - True")
        self.assertEqual(after, "after True True True True treq.client")

    def test_load_without_defer_only_imports(self) -> None:
        """In a process that never deferred it (tests, tools) load() just imports."""
        from pyd.core import tlsstack

        tlsstack.load()
        from OpenSSL import SSL

        self.assertEqual(tlsstack.tls_errors(), (SSL.Error,))
