"""Distribution (registry v2) HTTP client on twisted.web's Agent (layer: drivers).

The only package of pyd that speaks HTTP to registries (C{webclient}: requests and answers). It does
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

The submodules are imported when one of their names is first asked of the package (PEP 562):
a daemon that never pulls, pushes or searches loads only what its start needs (the clients
with their certificates and proxies: C{hosts}, C{proxy}, C{wire}), not the registry API
client, the blob transfers or the index client (with twisted.web's HTTP client protocol).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyd.core.lean import names_from_submodules

if TYPE_CHECKING:
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

# the submodule that defines each name
_WHERE = {
    "RegistryClient": "client",
    "Endpoint": "hosts",
    "HostCerts": "hosts",
    "HTTPClients": "hosts",
    "RegistryHosts": "hosts",
    "_TLSPolicy": "hosts",
    "load_certs_dir": "hosts",
    "INDEX_SERVER": "index",
    "IndexClient": "index",
    "BlobSink": "transfer",
    "DOCKER_HUB": "wire",
    "DOCKER_HUB_API": "wire",
    "MANIFEST_ACCEPT": "wire",
    "MT_DOCKER_CONFIG": "wire",
    "MT_DOCKER_LAYER": "wire",
    "MT_DOCKER_LIST": "wire",
    "MT_DOCKER_MANIFEST": "wire",
    "MT_OCI_CONFIG": "wire",
    "MT_OCI_INDEX": "wire",
    "MT_OCI_LAYER": "wire",
    "MT_OCI_LAYER_GZIP": "wire",
    "MT_OCI_MANIFEST": "wire",
    "MT_SCHEMA1": "wire",
    "AuthenticationFailed": "wire",
    "Challenge": "wire",
    "DigestMismatch": "wire",
    "Manifest": "wire",
    "RegistryError": "wire",
    "TransportFailed": "wire",
    "check_digest": "wire",
    "parse_challenges": "wire",
    "sha256_digest": "wire",
}

__getattr__ = names_from_submodules(__name__, _WHERE)


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
