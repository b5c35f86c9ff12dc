"""The registry wire protocol's vocabulary (layer: drivers): media types, the errors a registry
answers, digests, C{WWW-Authenticate} challenges, and transport failures in Go's words.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
from twisted.internet.error import ConnectError, DNSLookupError, TimeoutError
from twisted.logger import Logger

from pyd.core import tlsstack

log = Logger()


DOCKER_HUB = "docker.io"


DOCKER_HUB_API = "registry-1.docker.io"


MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"


MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


MT_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
)


MANIFEST_ACCEPT = (MT_DOCKER_MANIFEST, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_OCI_INDEX)


_CHUNK = 1 << 20  # upload read size


_HIGH_WATER = 8 << 20  # pause a download when this much waits to be written


_TIMEOUT = 60.0


# --- errors -------------------------------------------------------------------------------------


class RegistryError(Exception):
    """The registry answered with an error status.

    C{errors} are the Distribution error entries (C{code}, C{message}, C{detail}) if the body had
    them; C{str()} is Go's C{errcode.Errors} rendering: C{"denied: requested access ..."}.
    """

    def __init__(self, status: int, errors: list[dict[str, Any]], url: str, text: str = "") -> None:
        self.status = status
        self.errors = errors
        self.url = url
        super().__init__(self.render() or text or f"unexpected status {status} from {url}")

    @property
    def codes(self) -> list[str]:
        """The Distribution error codes (C{MANIFEST_UNKNOWN}, C{DENIED}...)."""
        return [str(e.get("code", "")) for e in self.errors]

    def render(self) -> str:
        """Like Go's errcode rendering: C{code: message} (lower-case code, underscores as spaces)."""
        parts = []
        for e in self.errors:
            code = str(e.get("code", "unknown")).lower().replace("_", " ")
            msg = str(e.get("message", ""))
            parts.append(f"{code}: {msg}" if msg else code)
        if not parts:
            return ""
        if len(parts) == 1:
            return parts[0]
        return "errors:\n" + "\n".join(parts) + "\n"


class AuthenticationFailed(RegistryError):
    """The registry (or its token server) refused the credentials."""


class TransportFailed(Exception):
    """The registry could not be reached (connection, TLS, timeout); the next endpoint may work."""


class DigestMismatch(Exception):
    """Downloaded content does not hash to the expected digest (or has the wrong size)."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


# --- helpers --------------------------------------------------------------------------------------


def sha256_digest(data: bytes) -> str:
    """C{sha256:<hex>} of C{data}."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """Validate a C{sha256:<64 hex>} digest and return it (ValueError otherwise)."""
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ValueError(f"invalid digest {digest!r}")
    return digest


_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@attrs.frozen
class Challenge:
    """One parsed C{WWW-Authenticate} challenge."""

    scheme: str  # "basic" | "bearer" (lower case)
    params: dict[str, str]


def parse_challenges(values: Sequence[bytes | str]) -> list[Challenge]:
    """Parse C{WWW-Authenticate} header values into challenges (scheme + quoted parameters)."""
    out = []
    for raw in values:
        v = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        v = v.strip()
        scheme, _, rest = v.partition(" ")
        params = {
            m.group(1).lower(): (m.group(2) or m.group(3) or "") for m in _PARAM.finditer(rest)
        }
        out.append(Challenge(scheme.lower(), params))
    return out


def _errors_of(body: bytes) -> list[dict[str, Any]]:
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    errs = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errs, list):
        return [e for e in errs if isinstance(e, dict)]
    if isinstance(doc, dict) and "details" in doc:  # token servers: {"details": "..."}
        return [{"code": "UNAUTHORIZED", "message": str(doc["details"])}]
    return []


@attrs.frozen
class Manifest:
    """A manifest or index as fetched: exact bytes, media type and digest."""

    media_type: str
    data: bytes
    digest: str

    def json(self) -> dict[str, Any]:
        """The parsed document."""
        doc = json.loads(self.data)
        if not isinstance(doc, dict):
            raise ValueError("manifest is not a JSON object")
        return doc


def _describe(e: BaseException, url: str = "") -> str:
    """A transport failure in the words of Go's net/http (what dockerd's messages carry)."""
    parts = urlsplit(url) if url else None
    host = (parts.hostname or "") if parts else ""
    port = (parts.port or (443 if parts.scheme == "https" else 80)) if parts else 0
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if parts is not None:
        if isinstance(e, DNSLookupError):
            return f"dial tcp: lookup {host}: no such host"
        if isinstance(e, ConnectError) and "refused" in str(e).lower():
            return f"dial tcp {hostport}: connect: connection refused"
        if isinstance(e, TimeoutError):
            return f"dial tcp {hostport}: i/o timeout"
        if _plain_http_answer(e):
            return "http: server gave HTTP response to HTTPS client"
    # twisted.web.client's, without its TLS imports; loaded by the first request (the client)
    from twisted.web._newclient import ResponseFailed

    if isinstance(e, ResponseFailed) and e.reasons:
        return "; ".join(str(r.value) for r in e.reasons)
    return str(e) or type(e).__name__


def _plain_http_answer(e: BaseException) -> bool:
    """Whether a TLS handshake failed because the server answered in plain HTTP."""
    from twisted.web._newclient import ResponseFailed

    reasons = [r.value for r in e.reasons] if isinstance(e, ResponseFailed) else [e]
    text = " ".join(str(r) for r in reasons).lower()
    return any(isinstance(r, tlsstack.tls_errors()) for r in reasons) and any(
        m in text for m in ("wrong version number", "packet length too long", "record layer")
    )
