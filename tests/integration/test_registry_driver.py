"""The registry driver against a real docker-registry on loopback (trial: real reactor, loopback only)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tempfile
from typing import Any

from twisted.trial.unittest import TestCase

from pyd.core.records import RegistryAuth
from pyd.core.seams import InlineBlocking
from pyd.drivers.registry import (
    MT_DOCKER_CONFIG,
    MT_DOCKER_LAYER,
    MT_DOCKER_MANIFEST,
    AuthenticationFailed,
    DigestMismatch,
    HTTPClients,
    RegistryClient,
    RegistryError,
    RegistryHosts,
)
from tests.helpers.registry import PASSWORD, USER, Registry


class _Sink:
    def __init__(self) -> None:
        self.buf = io.BytesIO()

    def write(self, data: bytes) -> None:
        self.buf.write(data)


def _layer(seed: bytes, size: int = 200_000) -> bytes:
    return gzip.compress(hashlib.sha256(seed).digest() * (size // 32), compresslevel=1)


class _Base(TestCase):
    auth: str | None = None

    def setUp(self) -> Any:
        self.registry = Registry(self.auth)
        self.addCleanup(self.registry.stop)
        self.registry.start()
        from twisted.internet import reactor

        self.http = HTTPClients(reactor)
        self.addCleanup(self.http.close)
        self.hosts = RegistryHosts()

    def client(
        self, repo: str, auth: RegistryAuth | None = None, actions=("pull",), **kw: Any
    ) -> RegistryClient:
        ep = next(e for e in self.hosts.endpoints(self.registry.host) if e.scheme == "http")
        return RegistryClient(self.http, InlineBlocking(), ep, repo, auth, actions, **kw)

    def good(self) -> RegistryAuth:
        return RegistryAuth(USER, PASSWORD, self.registry.host)


class NoAuthTests(_Base):
    """Open registry."""

    async def test_push_then_pull_roundtrip(self) -> None:
        """Blobs and a manifest pushed by the client come back identical and verified."""
        c = self.client("pyd/t", actions=("pull", "push"))
        layer = _layer(b"a")
        ld = "sha256:" + hashlib.sha256(layer).hexdigest()
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(layer)
        self.addCleanup(os.unlink, f.name)
        self.assertIsNone(await c.head_blob(ld))
        seen: list[int] = []
        await c.upload_blob(ld, f.name, len(layer), seen.append)
        self.assertEqual(sum(seen), len(layer))
        self.assertEqual(await c.head_blob(ld), len(layer))
        cfg = json.dumps({"os": "linux", "architecture": "amd64"}).encode()
        cd = "sha256:" + hashlib.sha256(cfg).hexdigest()
        await c.put_blob(cd, cfg)
        m = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MT_DOCKER_MANIFEST,
                "config": {"mediaType": MT_DOCKER_CONFIG, "size": len(cfg), "digest": cd},
                "layers": [{"mediaType": MT_DOCKER_LAYER, "size": len(layer), "digest": ld}],
            }
        ).encode()
        md = await c.put_manifest("v1", MT_DOCKER_MANIFEST, m)
        got = await c.get_manifest("v1")
        self.assertEqual((got.digest, got.data, got.media_type), (md, m, MT_DOCKER_MANIFEST))
        got2 = await c.get_manifest(md)
        self.assertEqual(got2.data, m)
        sink = _Sink()
        prog: list[int] = []
        n = await c.get_blob(ld, sink, len(layer), prog.append)
        self.assertEqual((n, sink.buf.getvalue(), sum(prog)), (len(layer), layer, len(layer)))
        self.assertEqual(await c.list_tags(), ["v1"])
        other = self.client(
            "pyd/other", actions=("pull", "push"), extra_scopes=("repository:pyd/t:pull",)
        )
        self.assertTrue(await other.mount_blob(ld, "pyd/t"))
        self.assertEqual(await other.head_blob(ld), len(layer))

    async def test_tampered_blob_refused(self) -> None:
        """A blob whose stored bytes were changed fails with DigestMismatch."""
        layer = _layer(b"b")
        d = self.registry.put_blob("pyd/t", layer)
        path = self.registry.blob_data_path(d)
        with open(path, "r+b") as f:
            f.seek(100)
            f.write(b"XXXX")
        c = self.client("pyd/t")
        with self.assertRaises(DigestMismatch):
            await c.get_blob(d, _Sink())

    async def test_missing_manifest(self) -> None:
        """An unknown tag is a 404 RegistryError carrying the registry's error code."""
        with self.assertRaises(RegistryError) as cm:
            await self.client("pyd/none").get_manifest("latest")
        self.assertEqual(cm.exception.status, 404)
        self.assertIn(cm.exception.codes[0], ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"))


class BasicAuthTests(_Base):
    """htpasswd registry."""

    auth = "basic"

    async def test_login_and_pull(self) -> None:
        """Good credentials log in and read; bad ones fail with dockerd's login text; anonymous gets 401."""
        await self.client("pyd/t", self.good()).login()
        with self.assertRaises(AuthenticationFailed) as cm:
            await self.client("pyd/t", RegistryAuth(USER, "wrong")).login()
        self.assertIn("failed with status: 401 Unauthorized", str(cm.exception))
        d = self.registry.put_blob("pyd/t", b"data")
        sink = _Sink()
        await self.client("pyd/t", self.good()).get_blob(d, sink)
        self.assertEqual(sink.buf.getvalue(), b"data")
        with self.assertRaises(AuthenticationFailed):
            await self.client("pyd/t").get_blob(d, _Sink())


class TokenAuthTests(_Base):
    """Bearer-token registry with the test token server."""

    auth = "token"

    async def test_login_and_push_pull(self) -> None:
        """Tokens are fetched from the realm with scopes; bad credentials are refused."""
        await self.client("pyd/t", self.good()).login()
        with self.assertRaises(AuthenticationFailed):
            await self.client("pyd/t", RegistryAuth(USER, "wrong")).login()
        c = self.client("pyd/t", self.good(), actions=("pull", "push"))
        await c.put_blob("sha256:" + hashlib.sha256(b"x").hexdigest(), b"x")
        self.assertEqual(await c.head_blob("sha256:" + hashlib.sha256(b"x").hexdigest()), 1)
        ts = self.registry.token_server
        assert ts is not None
        scopes = [r["query"].get("scope") for r in ts.requests if r["ok"]]
        self.assertIn(["repository:pyd/t:pull,push"], scopes)
        with self.assertRaises(AuthenticationFailed):
            await self.client("pyd/t").head_blob("sha256:" + "0" * 64) or None
            await self.client("pyd/t").get_manifest("latest")


class HostsTests(TestCase):
    """Endpoint selection."""

    def test_loopback_insecure(self) -> None:
        """127.0.0.0/8 is insecure by default: HTTPS without verification, then HTTP."""
        eps = RegistryHosts().endpoints("127.0.0.1:5000")
        self.assertEqual(
            [(e.scheme, e.verify_tls) for e in eps], [("https", False), ("http", True)]
        )

    def test_secure_by_default_and_configured(self) -> None:
        """Other hosts are verified HTTPS unless listed (by name or CIDR)."""
        h = RegistryHosts(["reg.example:5000", "10.9.0.0/16"])
        self.assertEqual(len(h.endpoints("other.example")), 1)
        self.assertTrue(h.is_insecure("reg.example:5000"))
        self.assertTrue(h.is_insecure("10.9.3.4:443"))
        self.assertFalse(h.is_insecure("10.8.3.4"))

    def test_mirrors_for_hub_pulls_only(self) -> None:
        """Mirrors come first for docker.io pulls; pushes go to the official registry."""
        h = RegistryHosts(mirrors=["http://127.0.0.1:9999"])
        self.assertEqual(
            [e.base for e in h.endpoints("docker.io")],
            ["http://127.0.0.1:9999", "https://registry-1.docker.io"],
        )
        self.assertEqual(
            [e.base for e in h.endpoints("docker.io", push=True)], ["https://registry-1.docker.io"]
        )
