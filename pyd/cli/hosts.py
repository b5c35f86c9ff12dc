"""C{pyd hosts ls [--check]}: the inventory as C{docker context ls} shows it, and a health check
of every host at once: reachable, API version, and when its certificates expire (layer: cli).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from pyd.cli import contexts
from pyd.cli.contexts import Context
from pyd.cli.fleet import HostError, describe_failure, endpoint
from pyd.cli.output import Column
from pyd.core import certs
from pyd.core.seams import ICliReactor

COLUMNS: tuple[Column, ...] = (
    ("NAME", "Name"),
    ("DESCRIPTION", "Description"),
    ("DOCKER ENDPOINT", "DockerEndpoint"),
    ("TLS", "TLS"),
    ("LABELS", "Labels"),
)
CHECK_COLUMNS: tuple[Column, ...] = (
    ("NAME", "Name"),
    ("DOCKER ENDPOINT", "DockerEndpoint"),
    ("REACHABLE", "Reachable"),
    ("API", "APIVersion"),
    ("VERSION", "ServerVersion"),
    ("SERVER CERT EXPIRES", "ServerCertExpires"),
    ("CLIENT CERT EXPIRES", "ClientCertExpires"),
    ("ERROR", "Error"),
)


def inventory() -> list[Context]:
    """C{default} first, then every stored context, as C{docker context ls} lists them."""
    return [contexts.default_context(), *contexts.list_all()]


def ls_rows(items: Sequence[Context], current: str) -> list[dict[str, Any]]:
    """One row per context, with C{Current} set on the one in use (as C{docker context ls
    --format json}); L{mark_current} adds the table's C{*}."""
    return [
        {
            "Name": c.name,
            "Current": c.name == current,
            "Description": c.description,
            "DockerEndpoint": c.host,
            "TLS": "yes" if c.has_tls else "no",
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(c.labels.items())),
            "Error": "",
        }
        for c in items
    ]


def mark_current(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's form: the current context's name followed by C{ *}, as docker prints it."""
    return [{**r, "Name": r["Name"] + " *"} if r.get("Current") else dict(r) for r in rows]


def _iso(when: datetime.datetime | None) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else ""


def client_cert_expiry(ctx: Context) -> datetime.datetime | None:
    """When the context's client certificate expires (None: it has none or it is unreadable)."""
    if ctx.tls_dir is None:
        return None
    try:
        return certs.load_cert((ctx.tls_dir / "cert.pem").read_bytes()).not_valid_after_utc
    except (OSError, ValueError):
        return None


class _Probe(Protocol):
    """Sends C{GET /version} and collects the answer; notes the server certificate's expiry."""

    def __init__(self) -> None:
        self.data = b""
        self.server_expiry: datetime.datetime | None = None
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(
            b"GET /version HTTP/1.1\r\nHost: pyd\r\nUser-Agent: pyd-hosts\r\n"
            b"Connection: close\r\n\r\n"
        )

    def dataReceived(self, data: bytes) -> None:
        if self.server_expiry is None:
            peer = getattr(self.transport, "getPeerCertificate", lambda: None)()
            if peer is not None:
                stamp = peer.get_notAfter()  # b"YYYYmmddHHMMSSZ"
                if stamp:
                    self.server_expiry = datetime.datetime.strptime(
                        stamp.decode(), "%Y%m%d%H%M%SZ"
                    ).replace(tzinfo=datetime.UTC)
        self.data += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]  # Twisted's own default
        if self.data:
            self.done.callback(self.data)
        else:
            self.done.errback(reason)


def _parse_version(raw: bytes) -> dict[str, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200":
        raise HostError(f"/version answered {b' '.join(status[1:]).decode('latin-1')}")
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2 :]
        body = out
    try:
        data = json.loads(body)
    except ValueError:
        raise HostError("/version is not JSON") from None
    return data if isinstance(data, dict) else {}


async def check_one(reactor: ICliReactor, ctx: Context, timeout: float) -> dict[str, Any]:
    """Reachability, API version and certificate expiry of one host (never raises)."""
    row: dict[str, Any] = {
        "Name": ctx.name,
        "DockerEndpoint": ctx.host,
        "Reachable": False,
        "APIVersion": "",
        "ServerVersion": "",
        "ServerCertExpires": "",
        "ClientCertExpires": _iso(client_cert_expiry(ctx)),
        "Error": "",
    }
    probe = _Probe()
    try:
        ep = endpoint(reactor, ctx, timeout)
        connecting = ep.connect(Factory.forProtocol(lambda: probe))
        connecting.addTimeout(timeout, reactor)
        await connecting
        raw = await probe.done.addTimeout(timeout, reactor)
        version = _parse_version(raw)
    except HostError as e:
        row["Error"] = str(e)
        return row
    except Exception as e:  # noqa: BLE001  # each host's failure is its own row
        row["Error"] = describe_failure(e)
        transport: Any = probe.transport  # a TCP or TLS transport: both can abort
        if transport is not None:
            transport.abortConnection()
        return row
    row.update(
        Reachable=True,
        APIVersion=str(version.get("ApiVersion", "")),
        ServerVersion=str(version.get("Version", "")),
        ServerCertExpires=_iso(probe.server_expiry),
    )
    return row


async def check_all(
    reactor: ICliReactor, items: Sequence[Context], timeout: float
) -> list[dict[str, Any]]:
    """L{check_one} for every context at once."""
    rows = await defer.gatherResults(
        [defer.Deferred.fromCoroutine(check_one(reactor, c, timeout)) for c in items],
        consumeErrors=True,
    )
    return list(rows)
