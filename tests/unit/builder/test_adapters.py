"""The adapters from the image service to the builder's store seam."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import NotFound
from pyd.core.records import Image
from pyd.engine.builder.adapters import ImageStoreAdapter, split_tag


def _img(iid: str, parent: str | None) -> Image:
    return Image(iid, {}, (), (), 0, 0, parent_id=parent)


class _Images:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.imgs = {"sha256:c": _img("sha256:c", "sha256:p")}

    async def resolve(self, ref: str) -> Image:
        raise NotFound(f"No such image: {ref}")

    async def get(self, image_id: str) -> Image | None:
        return self.imgs.get(image_id)

    async def create_rw_layer(self, container_id: str, image_id: str | None) -> None:
        self.calls.append(("rw", container_id, image_id))

    async def mount_rw_layer(self, container_id: str) -> str:
        return "/m"

    async def remove_rw_layer(self, container_id: str) -> None:
        raise NotFound("gone")

    async def commit(
        self,
        container_id: str,
        image_config: dict[str, Any],
        repo_tag: str | None = None,
        parent_id: str | None = None,
        cache_key: str | None = None,
    ) -> Image:
        self.calls.append(("commit", container_id, image_config, parent_id, cache_key))
        return self.imgs["sha256:c"]

    async def tag(self, source: str, repo: str, tag: str | None) -> str:
        self.calls.append(("tag", source, repo, tag))
        return f"{repo}:{tag}"


class _Index:
    def by_cache_key(self, cache_key: str) -> Deferred[str | None]:
        return succeed("sha256:c" if cache_key == "k" else None)


class AdapterTests(SynchronousTestCase):
    """L{ImageStoreAdapter}."""

    def setUp(self) -> None:
        self.images = _Images()
        self.a = ImageStoreAdapter(self.images, _Index())

    def run_(self, coro: Any) -> Any:
        return self.successResultOf(Deferred.fromCoroutine(coro))

    def test_split_tag(self) -> None:
        """The tag colon is told apart from a registry port."""
        self.assertEqual(split_tag("a"), ("a", None))
        self.assertEqual(split_tag("a:1"), ("a", "1"))
        self.assertEqual(split_tag("127.0.0.1:5000/a"), ("127.0.0.1:5000/a", None))
        self.assertEqual(split_tag("127.0.0.1:5000/a:v"), ("127.0.0.1:5000/a", "v"))

    def test_find_child_checks_parent(self) -> None:
        """A cache key hit counts only with the same parent."""
        self.assertEqual(self.run_(self.a.find_child("sha256:p", "k")).id, "sha256:c")
        self.assertIsNone(self.run_(self.a.find_child("sha256:other", "k")))
        self.assertIsNone(self.run_(self.a.find_child("sha256:p", "nope")))

    def test_commit_passes_history(self) -> None:
        """Commit passes the history entry and allows empty layers."""
        self.run_(self.a.commit("L", {"Env": []}, "/bin/sh -c x", "me", "sha256:p", "k"))
        (_, lid, cfg, parent, key) = self.images.calls[-1]
        self.assertEqual((lid, parent, key), ("L", "sha256:p", "k"))
        self.assertEqual(
            cfg["_commit"], {"created_by": "/bin/sh -c x", "author": "me", "empty_layer_ok": True}
        )

    def test_tag_and_remove(self) -> None:
        """Tags default to latest; removing a missing layer is fine."""
        self.assertEqual(self.run_(self.a.tag("sha256:c", "app")), "app:latest")
        self.run_(self.a.remove_rw_layer("L"))


class _Dist:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def pull(self, image: str, tag: str, platform: str, auth: Any, progress: Any) -> None:
        self.calls.append((image, tag))
        progress({"status": "pulled"})


class _Resolver:
    async def resolve(self, ref: str) -> Image:
        return _img("sha256:" + ref.replace("/", "_"), None)


class _Progress:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def pull_status(self, status: Any) -> None:
        self.seen.append(status)


class DistributionPullerTests(SynchronousTestCase):
    """L{DistributionPuller}."""

    def test_pull_tag_defaults_to_latest(self) -> None:
        """A reference without a tag pulls :latest (not every tag); progress is passed on."""
        from pyd.engine.builder.adapters import DistributionPuller

        dist = _Dist()
        progress = _Progress()
        p = DistributionPuller(lambda: dist, _Resolver())
        self.successResultOf(Deferred.fromCoroutine(p.pull("127.0.0.1:5000/a", progress)))
        self.successResultOf(Deferred.fromCoroutine(p.pull("b:1", progress)))
        self.assertEqual(dist.calls, [("127.0.0.1:5000/a", "latest"), ("b", "1")])
        self.assertEqual(progress.seen, [{"status": "pulled"}] * 2)

    def test_no_registry(self) -> None:
        """Without a distribution service the pull fails with a clear message."""
        from pyd.engine.builder.adapters import DistributionPuller

        p = DistributionPuller(lambda: None, _Resolver())
        f = self.failureResultOf(Deferred.fromCoroutine(p.pull("x:1", _Progress())), NotFound)
        self.assertIn("pull access denied for x", str(f.value))


class AuthForTests(SynchronousTestCase):
    """L{auth_for}: which X-Registry-Config entry applies."""

    def test_match(self) -> None:
        """Entries are matched by registry host; Docker Hub has several spellings."""
        from pyd.core.records import RegistryAuth
        from pyd.engine.builder.adapters import auth_for

        a = RegistryAuth(username="u")
        hub = RegistryAuth(username="hub")
        auths = {"127.0.0.1:5000": a, "https://index.docker.io/v1/": hub}
        self.assertEqual(auth_for("127.0.0.1:5000/x", auths), a)
        self.assertEqual(auth_for("library/busybox", auths), hub)
        self.assertIsNone(auth_for("other.example:1/x", auths))
