"""Pull and push (engine + driver) against a real docker-registry, with a fake image store."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile

import pytest
from twisted.trial.unittest import TestCase

from pyd.core.errors import NotFound, PydError, SystemError_, Unauthorized
from pyd.core.records import RegistryAuth
from pyd.core.reference import parse_normalized
from pyd.core.seams import InlineBlocking
from pyd.drivers.registry import HTTPClients
from pyd.drivers.storage.tarsplit import SplitError
from pyd.engine.distribution import DistributionService, DistributionSettings, Progress
from tests.fakes import distribution as fake_distribution
from tests.fakes.distribution import FakeRegistryImages
from tests.helpers.registry import PASSWORD, USER, CuttingProxy, Registry, seed_multiplatform

pytestmark = pytest.mark.integration


def layer_tar(seed: str, size: int = 300_000) -> bytes:
    """A small layer tar with one file of pseudo-random-ish content."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        data = hashlib.sha256(seed.encode()).digest() * (size // 32)
        ti = tarfile.TarInfo(f"{seed}.bin")
        ti.size = len(data)
        ti.mtime = 0
        t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class _Base(TestCase):
    auth: str | None = None

    def setUp(self) -> None:
        self.registry = Registry(self.auth)
        self.addCleanup(self.registry.stop)
        self.registry.start()
        from twisted.internet import reactor

        self.http = HTTPClients(reactor)
        self.addCleanup(self.http.close)
        self.tmp = tempfile.mkdtemp(prefix="pyd-dist-")
        self.addCleanup(lambda: __import__("shutil").rmtree(self.tmp, True))
        self.events: list[Progress] = []

    def service(
        self, name: str, downloads: int = 3
    ) -> tuple[DistributionService, FakeRegistryImages]:
        store = FakeRegistryImages(os.path.join(self.tmp, name, "store"))
        staging = os.path.join(self.tmp, name, "staging")
        os.makedirs(staging)
        self.actions: list[str] = []
        svc = DistributionService(
            store,
            self.http,
            InlineBlocking(),
            staging,
            lambda: DistributionSettings(max_concurrent_downloads=downloads),
            on_action=lambda action, seconds: self.actions.append(action),
        )
        return svc, store

    def statuses(self) -> list[tuple[str, str]]:
        return [(e.status, e.id) for e in self.events]

    def good(self) -> RegistryAuth:
        return RegistryAuth(USER, PASSWORD, self.registry.host)


class PullPushTests(_Base):
    """Open registry: push from one store, pull into another."""

    async def test_push_pull_roundtrip(self) -> None:
        """Layers, config and tags survive a push and a pull; progress follows dockerd's sequence."""
        src, sstore = self.service("src")
        name = f"{self.registry.host}/pyd/app"
        tars = [layer_tar("a"), layer_tar("b"), layer_tar("c")]
        iid = sstore.add_local_image(tars, [parse_normalized(name + ":v1")])
        await src.push(name, "v1", None, self.events.append)
        st = [s for s, _ in self.statuses()]
        self.assertEqual(st[0], f"The push refers to repository [{name}]")
        self.assertEqual(st.count("Preparing"), 3)
        self.assertEqual(st.count("Pushed"), 3)
        self.assertTrue(st[-2].startswith("v1: digest: sha256:"))
        aux = self.events[-1].aux
        assert aux is not None
        self.assertEqual(aux["Tag"], "v1")
        digest = aux["Digest"]
        self.assertIn(f"{name}@{digest}", sstore.refs)
        # a second push finds every layer in place
        self.events.clear()
        await src.push(name, "v1", None, self.events.append)
        self.assertEqual([s for s, _ in self.statuses()].count("Layer already exists"), 3)

        dst, dstore = self.service("dst", downloads=2)
        self.events.clear()
        await dst.pull(name, "v1", "", None, self.events.append)
        st = self.statuses()
        self.assertEqual(st[0], ("Pulling from pyd/app", "v1"))
        self.assertEqual([s for s, _ in st].count("Pulling fs layer"), 3)
        self.assertEqual([s for s, _ in st].count("Waiting"), 1)
        self.assertEqual([s for s, _ in st].count("Pull complete"), 3)
        self.assertEqual(st[-2][0], f"Digest: {digest}")
        self.assertEqual(st[-1][0], f"Status: Downloaded newer image for {name}:v1")
        self.assertEqual(dstore.refs[f"{name}:v1"], iid)
        self.assertEqual(dstore.refs[f"{name}@{digest}"], iid)
        dl = [e for e in self.events if e.status == "Downloading"]
        self.assertTrue(dl and all(e.total and e.current for e in dl))
        # again: up to date, nothing downloaded, and (dockerd) no layer lines at all
        self.events.clear()
        await dst.pull(name, "v1", "", None, self.events.append)
        st = self.statuses()
        self.assertEqual([s for s, _ in st].count("Already exists"), 0)
        self.assertEqual(len(st), 3, st)  # Pulling from, Digest, Status
        self.assertNotIn("Downloading", [s for s, _ in st])
        self.assertEqual(st[-1][0], f"Status: Image is up to date for {name}:v1")
        # by digest into a fresh store
        d3, s3 = self.service("d3")
        self.events.clear()
        await d3.pull(name, digest, "", None, self.events.append)
        self.assertEqual(self.statuses()[0], ("Pulling from pyd/app", f"{name}@{digest}"))
        self.assertEqual(s3.refs, {f"{name}@{digest}": iid})
        # all tags
        sstore.refs[name + ":v2"] = iid
        await src.push(name, "v2", None, lambda e: None)
        d4, s4 = self.service("d4")
        self.events.clear()
        await d4.pull(name, "", "", None, self.events.append)
        self.assertIn(f"{name}:v1", s4.refs)
        self.assertIn(f"{name}:v2", s4.refs)
        self.assertEqual(self.events[-1].status, f"Status: Downloaded newer image for {name}")

    async def test_tampered_blob_leaves_store_unchanged(self) -> None:
        """A layer whose bytes changed in the registry fails the pull; the store is as before."""
        src, sstore = self.service("src")
        name = f"{self.registry.host}/pyd/bad"
        sstore.add_local_image(
            [layer_tar("x"), layer_tar("y")], [parse_normalized(name + ":latest")]
        )
        await src.push(name, "latest", None, lambda e: None)
        blobs = [e.aux for e in []]
        del blobs
        m = json.loads(
            self.registry.request(
                "GET",
                "/v2/pyd/bad/manifests/latest",
                headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
            )[2]
        )
        path = self.registry.blob_data_path(m["layers"][1]["digest"])
        with open(path, "r+b") as f:
            f.seek(50)
            b = f.read(1)
            f.seek(50)
            f.write(bytes([b[0] ^ 0xFF]))
        dst, dstore = self.service("dst")
        before = dstore.snapshot()
        with self.assertRaises(PydError) as cm:
            await dst.pull(name, "latest", "", None, self.events.append)
        self.assertIn(
            "verification failed for digest " + m["layers"][1]["digest"], str(cm.exception)
        )
        self.assertEqual(dstore.snapshot(), before)
        self.assertEqual(os.listdir(dst.staging_dir), [])

    async def test_stored_layer_changed_fails_the_push(self) -> None:
        """A layer whose stored files changed (the tar cannot be rebuilt) fails the push with
        a plain 500 naming the reason; nothing is left in the push's staging."""
        src, sstore = self.service("src")
        name = f"{self.registry.host}/pyd/changed"
        sstore.add_local_image([layer_tar("z")], [parse_normalized(name + ":v1")])

        def changed(path: str) -> object:
            raise SplitError("a file of the layer changed on disk: 'x'")

        self.patch(fake_distribution, "PlainTar", changed)
        with self.assertRaises(SystemError_) as cm:
            await src.push(name, "v1", None, self.events.append)
        self.assertEqual(
            str(cm.exception),
            "failed to read a stored layer: a file of the layer changed on disk: 'x'",
        )
        self.assertEqual(os.listdir(src.staging_dir), [])

    async def test_unknown_tag(self) -> None:
        """An unknown tag is dockerd's 'manifest for ... not found' NotFound, before any progress."""
        dst, _ = self.service("dst")
        name = f"{self.registry.host}/pyd/none"
        with self.assertRaises(NotFound) as cm:
            await dst.pull(name, "nope", "", None, self.events.append)
        self.assertTrue(
            str(cm.exception).startswith(f"manifest for {name}:nope not found: "),
            str(cm.exception),
        )
        self.assertEqual(self.events, [])
        self.assertEqual(self.actions, ["pull"])  # timed failed or not, as dockerd


class TokenAuthTests(_Base):
    """Token-auth registry: credentials needed to push; login checks them."""

    auth = "token"

    async def test_login_push_pull(self) -> None:
        """Login succeeds with good and fails with bad credentials; push needs them."""
        svc, store = self.service("s")
        self.assertEqual(await svc.login(self.good()), "Login Succeeded")
        with self.assertRaises(Unauthorized):
            await svc.login(RegistryAuth(USER, "bad", self.registry.host))
        name = f"{self.registry.host}/pyd/tok"
        store.add_local_image([layer_tar("t")], [parse_normalized(name + ":latest")])
        with self.assertRaises(PydError) as cm:
            await svc.push(name, "latest", None, self.events.append)
        self.assertIn("unauthorized", str(cm.exception))
        await svc.push(name, "latest", self.good(), self.events.append)
        d, dstore = self.service("d")
        await d.pull(name, "latest", "", self.good(), lambda e: None)
        self.assertIn(name + ":latest", dstore.refs)


class BasicAuthTests(_Base):
    """htpasswd registry."""

    auth = "basic"

    async def test_login(self) -> None:
        """Basic auth login reports dockerd's failure text."""
        svc, _ = self.service("s")
        self.assertEqual(await svc.login(self.good()), "Login Succeeded")
        with self.assertRaises(Unauthorized) as cm:
            await svc.login(RegistryAuth(USER, "bad", self.registry.host))
        self.assertIn("failed with status: 401 Unauthorized", str(cm.exception))


class MirrorTests(_Base):
    """registry-mirrors serve Docker Hub names."""

    async def test_hub_name_from_mirror(self) -> None:
        """`mirrortest` (docker.io/library/mirrortest) is pulled from the configured mirror."""
        src, sstore = self.service("src")
        name = f"{self.registry.host}/library/mirrortest"
        iid = sstore.add_local_image([layer_tar("m")], [parse_normalized(name + ":latest")])
        await src.push(name, "latest", None, lambda e: None)
        store = FakeRegistryImages(os.path.join(self.tmp, "m", "store"))
        staging = os.path.join(self.tmp, "m", "staging")
        os.makedirs(staging)
        svc = DistributionService(
            store,
            self.http,
            InlineBlocking(),
            staging,
            lambda: DistributionSettings(registry_mirrors=(self.registry.url,)),
        )
        await svc.pull("mirrortest", "latest", "", None, self.events.append)
        self.assertEqual(store.refs["docker.io/library/mirrortest:latest"], iid)
        self.assertEqual(self.events[0].status, "Pulling from library/mirrortest")
        self.assertEqual(
            self.events[-1].status, "Status: Downloaded newer image for mirrortest:latest"
        )


class InspectTests(_Base):
    """GET /distribution/{name}/json's engine side."""

    async def test_inspect(self) -> None:
        """Descriptor of the manifest and the platform from its config."""
        src, sstore = self.service("src")
        name = f"{self.registry.host}/pyd/insp"
        sstore.add_local_image([layer_tar("i")], [parse_normalized(name + ":latest")])
        await src.push(name, "latest", None, self.events.append)
        aux = self.events[-1].aux
        assert aux is not None
        mt, digest, size, platforms = await src.inspect(name, None)
        self.assertEqual(
            (mt, digest, size),
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                aux["Digest"],
                aux["Size"],
            ),
        )
        self.assertEqual(platforms, [{"architecture": "amd64", "os": "linux"}])
        with self.assertRaises(NotFound):
            await src.inspect(name + ":nope", None)


class MountTests(_Base):
    """Cross-repository blob mount on push."""

    async def test_mounted_from(self) -> None:
        """Pushing an image known under another repository of the registry mounts its layers."""
        src, sstore = self.service("src")
        a = f"{self.registry.host}/pyd/a"
        b = f"{self.registry.host}/pyd/b"
        iid = sstore.add_local_image(
            [layer_tar("q"), layer_tar("r")], [parse_normalized(a + ":v1")]
        )
        await src.push(a, "v1", None, lambda e: None)
        sstore.refs[b + ":v1"] = iid
        await src.push(b, "v1", None, self.events.append)
        st = [e.status for e in self.events]
        self.assertEqual(st.count("Mounted from pyd/a"), 2, st)
        self.assertNotIn("Pushed", st)


class PlatformPullTests(_Base):
    """Manifest lists and OCI indexes: the host platform by default, --platform otherwise."""

    async def _check(self, oci: bool) -> None:
        ids = seed_multiplatform(self.registry, "pyd/multi", "latest", oci)
        name = f"{self.registry.host}/pyd/multi"
        svc, store = self.service("a")
        await svc.pull(name, "latest", "", None, self.events.append)
        self.assertEqual(store.refs[name + ":latest"], ids["amd64"])
        self.assertEqual(store.refs[f"{name}@{ids['index']}"], ids["amd64"])
        self.assertEqual(self.events[-2].status, f"Digest: {ids['index']}")
        svc2, store2 = self.service("b")
        await svc2.pull(name, "latest", "linux/arm64", None, lambda e: None)
        self.assertEqual(store2.refs[name + ":latest"], ids["arm64"])
        svc3, store3 = self.service("c")
        with self.assertRaises(NotFound) as cm:
            await svc3.pull(name, "latest", "linux/s390x", None, lambda e: None)
        self.assertEqual(
            str(cm.exception),
            "no matching manifest for linux/s390x in the manifest list entries",
        )
        self.assertEqual(store3.refs, {})

    async def test_docker_manifest_list(self) -> None:
        """A Docker manifest list of schema 2 manifests."""
        await self._check(False)

    async def test_oci_index(self) -> None:
        """An OCI index of OCI manifests (with an attestation-like unknown/unknown entry)."""
        await self._check(True)


class RetryTests(_Base):
    """A layer download that breaks mid-way is retried, like dockerd."""

    async def test_broken_download_retried(self) -> None:
        """The first GET of the layer is cut; 'Retrying in 1 second', then the pull completes."""
        src, sstore = self.service("src")
        name = f"{self.registry.host}/pyd/retry"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            data = os.urandom(300_000)  # incompressible: the cut lands in the body
            ti = tarfile.TarInfo("random.bin")
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        iid = sstore.add_local_image([buf.getvalue()], [parse_normalized(name + ":1")])
        await src.push(name, "1", None, lambda e: None)
        _, _, body = self.registry.request(
            "GET",
            "/v2/pyd/retry/manifests/1",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        layer = json.loads(body)["layers"][0]["digest"]
        proxy = CuttingProxy(self.registry.port, layer.encode(), keep=50_000)
        self.addCleanup(proxy.stop)
        dst, dstore = self.service("dst")
        await dst.pull(f"{proxy.host}/pyd/retry", "1", "", None, self.events.append)
        self.assertEqual(proxy.cuts, 1)
        st = [e.status for e in self.events]
        self.assertIn("Retrying in 1 second", st)
        self.assertEqual(dstore.refs[f"{proxy.host}/pyd/retry:1"], iid)


class DuplicateLayerTests(_Base):
    """The same layer twice in one image."""

    async def test_duplicate_layer_roundtrip(self) -> None:
        """It is uploaded once, listed twice in the manifest, and pulled back."""
        src, sstore = self.service("src")
        name = f"{self.registry.host}/pyd/dup"
        t = layer_tar("d")
        iid = sstore.add_local_image([t, layer_tar("e"), t], [parse_normalized(name + ":1")])
        await src.push(name, "1", None, self.events.append)
        self.assertEqual([e.status for e in self.events].count("Pushed"), 2)
        _, _, body = self.registry.request(
            "GET",
            "/v2/pyd/dup/manifests/1",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        layers = json.loads(body)["layers"]
        self.assertEqual(len(layers), 3)
        self.assertEqual(layers[0], layers[2])
        dst, dstore = self.service("dst")
        await dst.pull(name, "1", "", None, lambda e: None)
        self.assertEqual(dstore.refs[name + ":1"], iid)
