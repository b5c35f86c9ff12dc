"""The TLS material of the TCP listeners (layer: daemon): mutual TLS from the config's files,
swapped for new connections on SIGHUP."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.logger import Logger
from zope.interface import implementer

from pyd import config as cfgmod
from pyd.config import DaemonConfig

log = Logger()


# TLS 1.2 minimum; forward-secret AEAD suites only (TLS 1.3 suites are all modern).
TLS_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise cfgmod.ConfigError(f"could not read {what} file {path}: {e.strerror}") from e


def build_tls_context(config: DaemonConfig) -> Any:
    """An OpenSSL context for the TCP listeners, from the config's TLS files (blocking).

    Client certificates are required and checked against C{tlscacert} with C{--tlsverify}; the
    C{tlscrl} CRL, when set, must be signed by that CA and revokes client certificates.

    @raise ConfigError: a file is missing or does not parse, or the key does not match.
    """
    from pyd.core import tlsstack

    tlsstack.load()
    from OpenSSL import SSL
    from OpenSSL.crypto import X509, PKey, X509StoreFlags
    from twisted.internet import ssl

    from pyd.core import certs

    cert_data = _read(config.tlscert, "tlscert")
    key_data = _read(config.tlskey, "tlskey")
    try:
        chain = [certs.load_cert(b) for b in _split_pem(cert_data)]
        if not chain:
            raise ValueError("no certificate found")
        key = certs.load_key(key_data)
    except ValueError as e:
        raise cfgmod.ConfigError(f"could not load the server certificate/key: {e}") from e
    kwargs: dict[str, Any] = {}
    ca_cert = None
    if config.tlsverify:
        ca_data = _read(config.tlscacert, "tlscacert")
        try:
            cas = [certs.load_cert(b) for b in _split_pem(ca_data)]
            if not cas:
                raise ValueError("no certificate found")
        except ValueError as e:
            raise cfgmod.ConfigError(f"could not load tlscacert {config.tlscacert}: {e}") from e
        ca_cert = cas[0]
        kwargs["trustRoot"] = ssl.trustRootFromCertificates(
            [ssl.Certificate(X509.from_cryptography(c)) for c in cas]
        )
    try:
        options = ssl.CertificateOptions(
            privateKey=PKey.from_cryptography_key(key),
            certificate=X509.from_cryptography(chain[0]),
            extraCertChain=[X509.from_cryptography(c) for c in chain[1:]] or None,
            raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
            acceptableCiphers=ssl.AcceptableCiphers.fromOpenSSLCipherString(TLS_CIPHERS),
            **kwargs,
        )
        ctx = options.getContext()
    except (SSL.Error, ValueError) as e:
        raise cfgmod.ConfigError(f"TLS configuration unusable: {e}") from e
    ctx.set_options(SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_COMPRESSION)
    if config.tlscrl:
        crl_data = _read(config.tlscrl, "tlscrl")
        try:
            crl = certs.load_crl(crl_data)
        except ValueError as e:
            raise cfgmod.ConfigError(f"could not load tlscrl {config.tlscrl}: {e}") from e
        if ca_cert is not None and (
            crl.issuer != ca_cert.subject or not crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]  # public_key() may be a non-signing key type (X25519); a CA key signs
        ):
            raise cfgmod.ConfigError(f"tlscrl {config.tlscrl} is not signed by tlscacert")
        store = ctx.get_cert_store()
        assert store is not None
        store.add_crl(crl)
        store.set_flags(X509StoreFlags.CRL_CHECK)
    return ctx


def _split_pem(data: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    return [p + marker for p in data.split(marker) if b"-----BEGIN CERTIFICATE-----" in p]


@implementer(IOpenSSLContextFactory)
class ServerTLS:
    """The TLS context of the TCP listeners; SIGHUP swaps in a new one for new connections.

    L{TLSMemoryBIOFactory} asks C{getContext()} for every new connection, so replacing the context
    reloads the server certificate, key, CA and CRL without touching open connections, the Unix
    socket or containers.
    """

    def __init__(self, config: DaemonConfig) -> None:
        self._context = build_tls_context(config)
        self._pending: tuple[DaemonConfig, Any] | None = None
        if not config.tlsverify:
            log.warn(
                "TLS without --tlsverify: the server is authenticated but any client that "
                "connects is trusted (as {role})",
                role=config.tls_default_role,
            )

    def getContext(self) -> Any:
        """The current OpenSSL context (old-style context factory interface)."""
        return self._context

    def prepare(self, config: DaemonConfig) -> None:
        """Build the context of a new config (blocking, small files); raise to refuse it."""
        self._pending = (config, build_tls_context(config))

    def commit(self, old: DaemonConfig, new: DaemonConfig) -> None:
        """Switch to the context built by L{prepare}."""
        if self._pending is not None:
            self._context = self._pending[1]
            self._pending = None
            log.info("TLS material reloaded (certificate, key, CA and CRL)")
