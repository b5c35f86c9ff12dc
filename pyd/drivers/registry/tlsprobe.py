"""Whether a registry host answers TLS, asked without loading the TLS stack (layer: drivers).

An insecure registry is tried over HTTPS first and over plain HTTP after, as dockerd does: a
registry on the host (C{localhost:5000}, any of 127.0.0.0/8, which is insecure by default) most
often speaks plain HTTP. The HTTPS attempt alone would load pyOpenSSL and cryptography (~12
MiB resident for the daemon's life, L{pyd.core.tlsstack}) to learn that. Instead the first
contact sends a TLS ClientHello (no credentials, nothing of the request) and reads the first
byte of the answer: a TLS record (a handshake or an alert) means TLS, and the real HTTPS
attempt follows with the stack; anything else (an HTTP 400, as a Go server answers) means the
HTTPS endpoint is skipped as its handshake would have failed. No answer (refused, closed,
timed out) decides nothing: the HTTPS attempt runs as before.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

# The first byte of a TLS record a server answers a ClientHello with: a handshake (its
# ServerHello) or an alert (it refused this hello, but speaks TLS).
_TLS_RECORDS = (b"\x16", b"\x15")
# TLS 1.2 suites every current server offers one of (ECDHE with AES-GCM or ChaCha20, then RSA
# key exchange with AES-GCM)
_SUITES = (0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0x009C, 0x009D)
_GROUPS = (0x001D, 0x0017, 0x0018)  # x25519, P-256, P-384
_SIGNATURES = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)


def _ext(kind: int, body: bytes) -> bytes:
    return struct.pack("!HH", kind, len(body)) + body


def _u16s(values: tuple[int, ...]) -> bytes:
    return b"".join(struct.pack("!H", v) for v in values)


def client_hello(host: str) -> bytes:
    """A TLS 1.2 ClientHello record for C{host} (server name sent for a name, not an address)."""
    exts = b""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna")
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        exts += _ext(0x0000, struct.pack("!H", len(entry)) + entry)
    exts += _ext(0x000A, struct.pack("!H", 2 * len(_GROUPS)) + _u16s(_GROUPS))
    exts += _ext(0x000B, b"\x01\x00")  # point formats: uncompressed
    exts += _ext(0x000D, struct.pack("!H", 2 * len(_SIGNATURES)) + _u16s(_SIGNATURES))
    body = (
        b"\x03\x03"  # TLS 1.2
        + os.urandom(32)
        + b"\x00"  # no session id
        + struct.pack("!H", 2 * len(_SUITES))
        + _u16s(_SUITES)
        + b"\x01\x00"  # compression: none
        + struct.pack("!H", len(exts))
        + exts
    )
    handshake = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


class _Sniff(Protocol):
    """Sends the hello, reports what the first byte of the answer says."""

    def __init__(self, hello: bytes, verdict: Deferred[bool | None]) -> None:
        self._hello = hello
        self._verdict = verdict

    def connectionMade(self) -> None:
        """Say hello."""
        self.transport.write(self._hello)  # type: ignore[union-attr]  # connected

    def dataReceived(self, data: bytes) -> None:
        """The first byte decides; the connection is dropped."""
        if not self._verdict.called:
            self._verdict.callback(data[:1] in _TLS_RECORDS)
        self.transport.abortConnection()  # type: ignore[union-attr]  # connected

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Closed without a word: nothing decided."""
        if not self._verdict.called:
            self._verdict.callback(None)


async def speaks_tls(reactor: Any, host: str, port: int, timeout: float = 10.0) -> bool | None:
    """True when C{host:port} answers a ClientHello as TLS, False when it answers something
    else, None when it does not answer (refused, closed, timed out: the caller's own HTTPS
    attempt finds out why)."""
    clock: IReactorTime = reactor
    tcp: IReactorTCP = reactor
    verdict: Deferred[bool | None] = Deferred()
    factory = Factory.forProtocol(lambda: _Sniff(client_hello(host), verdict))
    try:
        proto: Any = await HostnameEndpoint(tcp, host, port, timeout=timeout).connect(factory)
    except Exception:  # noqa: BLE001 - any failure to connect decides nothing
        return None

    def too_slow() -> None:
        if not verdict.called:
            verdict.callback(None)
            proto.transport.abortConnection()

    timer = clock.callLater(timeout, too_slow)
    try:
        return await verdict
    finally:
        if timer.active():
            timer.cancel()
