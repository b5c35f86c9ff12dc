"""The adapters from the distribution service to the builder's puller seam, and split_tag."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import NotFound
from pyd.core.records import Image
from pyd.engine.builder.base import split_tag
from tests.helpers.sync import run_sync


def _img(iid: str, parent: str | None) -> Image:
    return Image(iid, {}, (), (), 0, 0, parent_id=parent)


class SplitTagTests(SynchronousTestCase):
    """L{split_tag}."""

    def test_split_tag(self) -> None:
        """The tag colon is told apart from a registry port."""
        self.assertEqual(split_tag("a"), ("a", None))
        self.assertEqual(split_tag("a:1"), ("a", "1"))
        self.assertEqual(split_tag("127.0.0.1:5000/a"), ("127.0.0.1:5000/a", None))
        self.assertEqual(split_tag("127.0.0.1:5000/a:v"), ("127.0.0.1:5000/a", "v"))


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
        run_sync(p.pull("127.0.0.1:5000/a", progress))
        run_sync(p.pull("b:1", progress))
        self.assertEqual(dist.calls, [("127.0.0.1:5000/a", "latest"), ("b", "1")])
        self.assertEqual(progress.seen, [{"status": "pulled"}] * 2)

    def test_no_registry(self) -> None:
        """Without a distribution service the pull fails with a clear message."""
        from pyd.engine.builder.adapters import DistributionPuller

        p = DistributionPuller(lambda: None, _Resolver())
        e = self.assertRaises(NotFound, run_sync, p.pull("x:1", _Progress()))
        self.assertIn("pull access denied for x", str(e))


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
