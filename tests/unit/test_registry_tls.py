"""The registry client's TLS policy in memory: CA from certs.d, host-name checks, insecure mode."""

from __future__ import annotations

import os
import tempfile

from twisted.internet import ssl as tssl
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from pyd.core import certs
from pyd.drivers.registry import _TLSPolicy, load_certs_dir


class _Collect(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.lost = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: object = None) -> None:
        self.lost = reason


class _Hello(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"hello")


def _handshake(server_issued: certs.Issued, creator: object) -> _Collect:
    server_opts = tssl.PrivateCertificate.loadPEM(
        certs.cert_pem(server_issued.cert) + certs.key_pem(server_issued.key)
    ).options()
    clock = Clock()
    server_factory = TLSMemoryBIOFactory(
        server_opts, False, Factory.forProtocol(_Hello), clock=clock
    )
    client_proto = _Collect()
    client_factory = TLSMemoryBIOFactory(
        creator, True, Factory.forProtocol(lambda: client_proto), clock=clock
    )
    _server, _client, pump = connectedServerAndClient(
        lambda: server_factory.buildProtocol(None),
        lambda: client_factory.buildProtocol(None),
        clock=clock,
    )
    pump.flush()
    return client_proto


class RegistryTLSTests(SynchronousTestCase):
    """certs.d CAs are trusted; names are checked; insecure mode skips both."""

    def setUp(self) -> None:
        self.ca = certs.make_ca("registry CA")
        self.server = certs.make_server(self.ca, ["reg.example"], [])
        self.dir = tempfile.mkdtemp()
        self.addCleanup(__import__("shutil").rmtree, self.dir)
        os.makedirs(os.path.join(self.dir, "reg.example:443"))
        with open(os.path.join(self.dir, "reg.example:443", "ca.crt"), "wb") as f:
            f.write(certs.cert_pem(self.ca.cert))
        os.makedirs(os.path.join(self.dir, "other.example"))
        with open(os.path.join(self.dir, "other.example", "ca.crt"), "wb") as f:
            f.write(certs.cert_pem(self.ca.cert))

    def test_trusted_ca_and_name(self) -> None:
        """A server certificate for the name, signed by the certs.d CA, is accepted."""
        policy = _TLSPolicy(True, load_certs_dir(self.dir))
        got = _handshake(self.server, policy.creatorForNetloc(b"reg.example", 443))
        self.assertEqual(got.data, b"hello")

    def test_wrong_name_refused(self) -> None:
        """The same certificate presented for another host name fails verification."""
        policy = _TLSPolicy(True, load_certs_dir(self.dir))
        got = _handshake(self.server, policy.creatorForNetloc(b"other.example", 443))
        self.assertEqual(got.data, b"")
        self.assertIsNotNone(got.lost)

    def test_untrusted_ca_refused(self) -> None:
        """Without the CA (platform trust only), the self-made certificate fails."""
        policy = _TLSPolicy(True, {})
        got = _handshake(self.server, policy.creatorForNetloc(b"reg.example", 443))
        self.assertEqual(got.data, b"")

    def test_insecure_accepts_anything(self) -> None:
        """Insecure registries skip verification (then fall back to HTTP in the engine)."""
        policy = _TLSPolicy(False, {})
        got = _handshake(self.server, policy.creatorForNetloc(b"other.example", 443))
        self.assertEqual(got.data, b"hello")
