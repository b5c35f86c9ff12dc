"""The daemon's TLS policy in memory: TLSMemoryBIOFactory over iosim (no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import protocol
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from pyd.config import DaemonConfig
from pyd.core import certs
from pyd.daemon.tls import ServerTLS


class Echo(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"echo:" + data)


class Collect(protocol.Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.lost: Any = None

    def connectionMade(self) -> None:
        self.transport.write(b"hello")

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = reason


def write(d: Path, name: str, data: bytes) -> str:
    p = d / name
    p.write_bytes(data)
    return str(p)


class TLSPolicyTests(SynchronousTestCase):
    """Only clients with a certificate from the configured CA get bytes through."""

    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.dir.mkdir()
        self.ca = certs.make_ca()
        srv = certs.make_server(self.ca, ["pyd.test"], [])
        self.config = DaemonConfig(
            tls=True,
            tlsverify=True,
            tlscacert=write(self.dir, "ca.pem", self.ca.cert_pem),
            tlscert=write(self.dir, "cert.pem", srv.cert_pem),
            tlskey=write(self.dir, "key.pem", srv.key_pem),
        )

    def talk(
        self, tls: ServerTLS, client_cert: certs.Issued | None, ca: certs.Issued | None = None
    ) -> Collect:
        clock = Clock()  # TLSMemoryBIOProtocol batches writes with callLater
        server_factory = TLSMemoryBIOFactory(
            tls, False, protocol.Factory.forProtocol(Echo), clock=clock
        )
        options = optionsForClientTLS(
            "pyd.test",
            trustRoot=Certificate.loadPEM((ca or self.ca).cert_pem),
            clientCertificate=(
                PrivateCertificate.loadPEM(client_cert.key_pem + client_cert.cert_pem)
                if client_cert
                else None
            ),
        )
        client = Collect()
        client_factory = TLSMemoryBIOFactory(
            options, True, protocol.Factory.forProtocol(lambda: client), clock=clock
        )
        server_proto = server_factory.buildProtocol(None)
        client_proto = client_factory.buildProtocol(None)
        _s, _c, pump = connectedServerAndClient(
            lambda: server_proto, lambda: client_proto, clock=clock
        )
        pump.flush()
        return client

    def test_ca_signed_client_gets_bytes(self) -> None:
        """A client certificate from the CA completes the handshake and gets an answer."""
        client = self.talk(ServerTLS(self.config), certs.make_client(self.ca, "a", "admin"))
        self.assertEqual(client.data, b"echo:hello")

    def test_no_certificate_or_other_ca_fails(self) -> None:
        """No client certificate, or one from another CA: no bytes, connection lost."""
        tls = ServerTLS(self.config)
        for cert in (None, certs.make_client(certs.make_ca("other"), "m", "admin")):
            client = self.talk(tls, cert)
            self.assertEqual(client.data, b"")
            self.assertIsNotNone(client.lost)

    def test_crl_and_reload(self) -> None:
        """A revoked certificate is refused once the new CRL is loaded (prepare + commit)."""
        c = certs.make_client(self.ca, "m", "admin")
        crl_path = write(self.dir, "crl.pem", certs.crl_pem(certs.make_crl(self.ca, [])))
        cfg = DaemonConfig(**{**self._kw(), "tlscrl": crl_path})
        tls = ServerTLS(cfg)
        self.assertEqual(self.talk(tls, c).data, b"echo:hello")
        import datetime

        write(
            self.dir,
            "crl.pem",
            certs.crl_pem(
                certs.make_crl(
                    self.ca, [(c.cert.serial_number, datetime.datetime.now(datetime.UTC))]
                )
            ),
        )
        self.assertEqual(self.talk(tls, c).data, b"echo:hello")  # not until reload
        tls.prepare(cfg)
        tls.commit(cfg, cfg)
        self.assertEqual(self.talk(tls, c).data, b"")
        self.assertEqual(
            self.talk(tls, certs.make_client(self.ca, "ok", "admin")).data, b"echo:hello"
        )

    def test_broken_reload_keeps_old_context(self) -> None:
        """A new config whose key does not parse is refused; the old context stays."""
        from pyd.config import ConfigError

        tls = ServerTLS(self.config)
        bad = DaemonConfig(**{**self._kw(), "tlskey": write(self.dir, "bad.pem", b"nope")})
        with self.assertRaises(ConfigError):
            tls.prepare(bad)
        self.assertEqual(self.talk(tls, certs.make_client(self.ca, "a", None)).data, b"echo:hello")

    def _kw(self) -> dict[str, Any]:
        return {
            k: getattr(self.config, k)
            for k in ("tls", "tlsverify", "tlscacert", "tlscert", "tlskey")
        }

    def test_tls_without_verify_serves_anyone(self) -> None:
        """--tls without --tlsverify (server auth only) works, with a warning, like dockerd."""
        from twisted.logger import LogLevel, capturedLogs

        cfg = DaemonConfig(tls=True, tlscert=self.config.tlscert, tlskey=self.config.tlskey)
        with capturedLogs() as events:
            tls = ServerTLS(cfg)
        self.assertTrue(
            any(e["log_level"] == LogLevel.warn and "tlsverify" in e["log_format"] for e in events)
        )
        self.assertEqual(self.talk(tls, None).data, b"echo:hello")
