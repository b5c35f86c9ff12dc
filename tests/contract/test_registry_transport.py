"""Contract of the registry transport seam: what L{RegistryClient} (treq over the daemon's
L{HTTPClients}) gets from a registry, run against the in-memory L{tests.fakes.registry.FakeRegistry}
(served on loopback, always) and, under the integration marker, Debian's C{docker-registry} on
loopback (L{tests.helpers.registry.Registry}). Blobs (monolithic and chunked uploads, HEAD, a
verified GET, mounts), manifests by tag and digest, tags, and the errors pull and push act on.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
from typing import Any

import pytest
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from pyd.core.seams import InlineBlocking
from pyd.drivers.registry import (
    MT_DOCKER_CONFIG,
    MT_DOCKER_LAYER,
    MT_DOCKER_MANIFEST,
    HTTPClients,
    RegistryClient,
    RegistryError,
    RegistryHosts,
)
from tests.fakes.registry import FakeRegistry
from tests.helpers.registry import Registry


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Sink:
    def __init__(self) -> None:
        self.buf = io.BytesIO()

    def write(self, data: bytes) -> None:
        self.buf.write(data)


class RegistryTransportContract:
    """The contract; subclasses start a registry and set C{host} (C{127.0.0.1:port})."""

    host: str
    http: HTTPClients

    def client(self, repo: str) -> RegistryClient:
        ep = next(e for e in RegistryHosts().endpoints(self.host) if e.scheme == "http")
        return RegistryClient(self.http, InlineBlocking(), ep, repo, None, ("pull", "push"))

    async def test_ping(self) -> None:
        """An open registry answers the ping without challenges."""
        assert await self.client("pyd/ping").ping() == []

    async def test_blob_roundtrip(self) -> None:
        """A pushed blob has its size on HEAD and comes back verified on GET; an unknown one is
        None on HEAD and a 404 BLOB_UNKNOWN on GET."""
        c = self.client("pyd/blobs")
        data = gzip.compress(os.urandom(70_000))
        await c.put_blob(_digest(data), data)
        assert await c.head_blob(_digest(data)) == len(data)
        sink = _Sink()
        assert await c.get_blob(_digest(data), sink, len(data)) == len(data)
        assert sink.buf.getvalue() == data
        unknown = _digest(b"nothing")
        assert await c.head_blob(unknown) is None
        try:
            await c.get_blob(unknown, _Sink())
        except RegistryError as e:
            assert (e.status, e.codes) == (404, ["BLOB_UNKNOWN"]), (e.status, e.codes)
        else:
            raise AssertionError("GET of an unknown blob succeeded")

    async def test_chunked_upload(self) -> None:
        """A file streamed in one PATCH, then PUT ?digest=, is stored whole."""
        c = self.client("pyd/chunked")
        data = os.urandom(300_000)
        path = os.path.join(self.tmp, "blob")
        with open(path, "wb") as f:
            f.write(data)
        await c.upload_blob(_digest(data), path, len(data))
        assert await c.head_blob(_digest(data)) == len(data)

    async def test_digest_mismatch_refused(self) -> None:
        """Bytes that do not hash to the digest given are refused: 400 DIGEST_INVALID, and the
        blob is not there."""
        c = self.client("pyd/mismatch")
        wrong = _digest(b"other bytes")
        try:
            await c.put_blob(wrong, b"these bytes")
        except RegistryError as e:
            assert (e.status, e.codes) == (400, ["DIGEST_INVALID"]), (e.status, e.codes)
        else:
            raise AssertionError("an upload with a wrong digest was accepted")
        assert await c.head_blob(wrong) is None

    async def _push_image(self, c: RegistryClient, tag: str) -> tuple[bytes, str]:
        layer = gzip.compress(os.urandom(1000))
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": [_digest(gzip.decompress(layer))]}}).encode()  # fmt: skip
        await c.put_blob(_digest(layer), layer)
        await c.put_blob(_digest(config), config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MT_DOCKER_MANIFEST,
                "config": {
                    "mediaType": MT_DOCKER_CONFIG,
                    "size": len(config),
                    "digest": _digest(config),
                },
                "layers": [
                    {"mediaType": MT_DOCKER_LAYER, "size": len(layer), "digest": _digest(layer)}
                ],
            }
        ).encode()
        digest = await c.put_manifest(tag, MT_DOCKER_MANIFEST, manifest)
        return manifest, digest

    async def test_manifest_roundtrip(self) -> None:
        """A manifest pushed under a tag comes back byte for byte by tag and by digest, with
        its media type; HEAD gives its digest; the tag is listed; unknown references are None
        on HEAD and a 404 MANIFEST_UNKNOWN on GET."""
        c = self.client("pyd/manifests")
        manifest, digest = await self._push_image(c, "v1")
        assert digest == _digest(manifest)
        for ref in ("v1", digest):
            got = await c.get_manifest(ref)
            assert (got.media_type, got.data, got.digest) == (MT_DOCKER_MANIFEST, manifest, digest)
        assert await c.head_manifest("v1") == digest
        assert await c.head_manifest("nope") is None
        try:
            await c.get_manifest("nope")
        except RegistryError as e:
            assert (e.status, e.codes) == (404, ["MANIFEST_UNKNOWN"]), (e.status, e.codes)
        else:
            raise AssertionError("GET of an unknown manifest succeeded")
        assert await c.list_tags() == ["v1"]

    async def test_manifest_needs_its_blobs(self) -> None:
        """A manifest naming a blob the repository lacks is refused (400
        MANIFEST_BLOB_UNKNOWN)."""
        c = self.client("pyd/missing")
        missing = _digest(b"never pushed")
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MT_DOCKER_MANIFEST,
                "config": {"mediaType": MT_DOCKER_CONFIG, "size": 12, "digest": missing},
                "layers": [],
            }
        ).encode()
        try:
            await c.put_manifest("v1", MT_DOCKER_MANIFEST, manifest)
        except RegistryError as e:
            assert e.status == 400 and "MANIFEST_BLOB_UNKNOWN" in e.codes, (e.status, e.codes)
        else:
            raise AssertionError("a manifest with a missing blob was accepted")

    async def test_mount(self) -> None:
        """A blob of another repository is mounted (True, and it is there); from a repository
        that lacks it the client gets False (the registry started an upload, cancelled)."""
        a, b = self.client("pyd/mount-a"), self.client("pyd/mount-b")
        data = os.urandom(5000)
        await a.put_blob(_digest(data), data)
        assert await b.mount_blob(_digest(data), "pyd/mount-a") is True
        assert await b.head_blob(_digest(data)) == len(data)
        other = os.urandom(10)
        assert await b.mount_blob(_digest(other), "pyd/mount-a") is False
        assert await b.head_blob(_digest(other)) is None


class FakeRegistryTransportContract(RegistryTransportContract, TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-contract-rg-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        port = _reactor().listenTCP(0, Site(FakeRegistry()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.host = f"127.0.0.1:{port.getHost().port}"
        self.http = HTTPClients(_reactor())
        self.addCleanup(self.http.close)


@pytest.mark.integration
class DockerRegistryTransportContract(RegistryTransportContract, TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-contract-rg-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        registry = Registry(None)
        self.addCleanup(registry.stop)
        registry.start()
        self.host = registry.host
        self.http = HTTPClients(_reactor())
        self.addCleanup(self.http.close)
