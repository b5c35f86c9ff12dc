"""Distribution (registry v2) HTTP client on treq (layer: drivers).

The only package of pyd that speaks HTTP to registries (and the only one using treq). It does
what it is told and holds no Docker rules beyond the wire protocol:

  - endpoints (C{hosts}): HTTPS with host-name checks (service_identity), or, for insecure
    registries, HTTPS without verification then plain HTTP (like dockerd); mirrors are tried
    first for Docker Hub names (L{RegistryHosts}); per-registry certs.d material;
  - authentication and the registry API (C{client}): the C{/v2/} ping, then
    C{WWW-Authenticate: Basic} (credentials sent as is) or C{Bearer} (a token fetched from the
    realm with the service and scopes, with Basic credentials, an identity (refresh) token, or
    anonymously); a registry token is used directly; manifests (any media type; the caller
    chooses), blob HEAD, monolithic and chunked uploads, cross-repository mount, tags list;
  - blob bodies (C{transfer}): streamed to a sink with sha256 verification and back-pressure,
    uploads read through the L{Blocking} seam;
  - media types, errors and challenges (C{wire}); the v1 search API of an index (C{index}).
"""

from pyd.drivers.registry.client import RegistryClient
from pyd.drivers.registry.hosts import (
    Endpoint,
    HostCerts,
    HTTPClients,
    RegistryHosts,
    _TLSPolicy,
    load_certs_dir,
)
from pyd.drivers.registry.index import INDEX_SERVER, IndexClient
from pyd.drivers.registry.transfer import BlobSink
from pyd.drivers.registry.wire import (
    DOCKER_HUB,
    DOCKER_HUB_API,
    MANIFEST_ACCEPT,
    MT_DOCKER_CONFIG,
    MT_DOCKER_LAYER,
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_OCI_CONFIG,
    MT_OCI_INDEX,
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_MANIFEST,
    MT_SCHEMA1,
    AuthenticationFailed,
    Challenge,
    DigestMismatch,
    Manifest,
    RegistryError,
    TransportFailed,
    check_digest,
    parse_challenges,
    sha256_digest,
)

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "INDEX_SERVER",
    "MANIFEST_ACCEPT",
    "MT_DOCKER_CONFIG",
    "MT_DOCKER_LAYER",
    "MT_DOCKER_LIST",
    "MT_DOCKER_MANIFEST",
    "MT_OCI_CONFIG",
    "MT_OCI_INDEX",
    "MT_OCI_LAYER",
    "MT_OCI_LAYER_GZIP",
    "MT_OCI_MANIFEST",
    "MT_SCHEMA1",
    "AuthenticationFailed",
    "BlobSink",
    "Challenge",
    "DigestMismatch",
    "Endpoint",
    "HTTPClients",
    "HostCerts",
    "IndexClient",
    "Manifest",
    "RegistryClient",
    "RegistryError",
    "RegistryHosts",
    "TransportFailed",
    "_TLSPolicy",
    "check_digest",
    "load_certs_dir",
    "parse_challenges",
    "sha256_digest",
]
