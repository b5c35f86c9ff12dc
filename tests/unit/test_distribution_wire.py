"""Pure functions of the registry area: progress rendering, X-Registry-Auth, platforms, chain ids."""

from __future__ import annotations

import base64
import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pyd.api.distribution import decode_registry_auth, progress_bar, progress_json
from pyd.core.errors import InvalidParameter
from pyd.core.records import RegistryAuth
from pyd.drivers.registry import RegistryError, parse_challenges
from pyd.engine.distribution import Progress, _select_platform, chain_ids, parse_platform


class ProgressRenderingTests(SynchronousTestCase):
    """dockerd's JSONMessage shapes."""

    def test_bar(self) -> None:
        """The bar is Go's JSONProgress.String at width 200 with units.HumanSize numbers."""
        self.assertEqual(
            progress_bar(32768, 2214397),
            "[>" + " " * 50 + "]  32.77kB/2.214MB",
        )
        self.assertEqual(progress_bar(2214397, 2214397), "[" + "=" * 50 + ">]  2.214MB/2.214MB")
        self.assertEqual(progress_bar(1000, 0), "     1kB")
        self.assertEqual(progress_bar(0, 0), "")

    def test_json_shapes(self) -> None:
        """Messages, actions, byte progress and aux lines keep Go's field order and omissions."""
        self.assertEqual(
            json.dumps(progress_json(Progress("Pulling from x", "latest"))),
            '{"status": "Pulling from x", "id": "latest"}',
        )
        self.assertEqual(
            progress_json(Progress("Pull complete", "abc", True)),
            {"status": "Pull complete", "progressDetail": {}, "id": "abc"},
        )
        got = progress_json(Progress("Downloading", "abc", True, 10, 100))
        self.assertEqual(list(got), ["status", "progressDetail", "progress", "id"])
        self.assertEqual(got["progressDetail"], {"current": 10, "total": 100})
        self.assertEqual(
            progress_json(Progress(detail=True, aux={"Tag": "v1"})),
            {"progressDetail": {}, "aux": {"Tag": "v1"}},
        )


class RegistryAuthHeaderTests(SynchronousTestCase):
    """X-Registry-Auth decoding is lenient."""

    def test_variants(self) -> None:
        """URL-safe with or without padding, standard alphabet, and the 'auth' field all decode."""
        doc = {"username": "u", "password": "p?>~", "serveraddress": "127.0.0.1:5000"}
        raw = json.dumps(doc).encode()
        want = RegistryAuth("u", "p?>~", "127.0.0.1:5000")
        for enc in (
            base64.urlsafe_b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
            base64.b64encode(raw).decode(),
        ):
            self.assertEqual(decode_registry_auth(enc), want)
        auth_field = base64.b64encode(b"u:p?>~").decode()
        enc = base64.urlsafe_b64encode(json.dumps({"auth": auth_field}).encode()).decode()
        self.assertEqual(decode_registry_auth(enc), RegistryAuth("u", "p?>~"))

    def test_anonymous(self) -> None:
        """Missing, empty-object and garbage headers mean anonymous."""
        for h in (None, "", "e30=", "e30", "!!!not base64", base64.b64encode(b"[1]").decode()):
            self.assertIsNone(decode_registry_auth(h))


class PlatformTests(SynchronousTestCase):
    """Platform parsing and manifest-list selection."""

    def test_parse(self) -> None:
        """os/arch/variant, arm64 normalisation, bad values refused."""
        self.assertEqual(parse_platform("linux/amd64"), ("linux", "amd64", ""))
        self.assertEqual(parse_platform("linux/arm/v7"), ("linux", "arm", "v7"))
        self.assertEqual(parse_platform("linux/aarch64"), ("linux", "arm64", ""))
        self.assertRaises(InvalidParameter, parse_platform, "linux//x")
        # containerd's platforms.Parse, as dockerd runs it on a pull's platform (docker-py's
        # test_pull_invalid_platform): one word is an OS or an architecture, nothing else
        with self.assertRaises(InvalidParameter) as cm:
            parse_platform("foobar")
        self.assertEqual(
            str(cm.exception),
            '"foobar": unknown operating system or architecture: invalid argument',
        )
        self.assertEqual(parse_platform("aarch64"), ("linux", "arm64", ""))
        self.assertEqual(parse_platform("linux")[0], "linux")

    def test_select(self) -> None:
        """The entry matching os/arch (and variant when asked) wins; no match is None."""
        index = {
            "manifests": [
                {
                    "digest": "sha256:a",
                    "platform": {"os": "linux", "architecture": "arm", "variant": "v6"},
                },
                {
                    "digest": "sha256:b",
                    "platform": {"os": "linux", "architecture": "arm", "variant": "v7"},
                },
                {"digest": "sha256:c", "platform": {"os": "linux", "architecture": "amd64"}},
                {"digest": "sha256:d", "platform": {"os": "unknown", "architecture": "unknown"}},
            ]
        }
        self.assertEqual(_select_platform(index, ("linux", "amd64", "")), "sha256:c")
        self.assertEqual(_select_platform(index, ("linux", "arm", "v7")), "sha256:b")
        self.assertIsNone(_select_platform(index, ("linux", "s390x", "")))


class MiscTests(SynchronousTestCase):
    """Chain ids, challenges, error rendering."""

    def test_chain_ids(self) -> None:
        """chain(n) = sha256(chain(n-1) + ' ' + diff(n))."""
        import hashlib

        a, b = "sha256:" + "1" * 64, "sha256:" + "2" * 64
        self.assertEqual(
            chain_ids([a, b]), [a, "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()]
        )

    def test_challenges(self) -> None:
        """Bearer parameters are parsed, quoted or not."""
        [c] = parse_challenges(
            [b'Bearer realm="http://h/token",service="reg",scope="repository:a/b:pull"']
        )
        self.assertEqual(c.scheme, "bearer")
        self.assertEqual(
            c.params, {"realm": "http://h/token", "service": "reg", "scope": "repository:a/b:pull"}
        )

    def test_error_rendering(self) -> None:
        """Go's errcode text: lower-case code with spaces, colon, message."""
        e = RegistryError(404, [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}], "u")
        self.assertEqual(str(e), "manifest unknown: manifest unknown")


class StreamCancelTests(SynchronousTestCase):
    """A client that goes away cancels the pull or push it started."""

    def test_disconnect_cancels(self) -> None:
        """After the first progress line, a lost connection cancels the engine operation."""
        from twisted.internet.defer import Deferred, ensureDeferred
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure
        from twisted.web.test.requesthelper import DummyRequest

        from pyd.api.distribution import _stream

        cancelled: list[bool] = []
        hang: Deferred[None] = Deferred(lambda _: cancelled.append(True))

        async def run(sink: Any) -> None:
            sink(Progress("Pulling from x", "latest"))
            await hang

        request = DummyRequest([b""])
        # DummyRequest drives any registered producer in a loop until it unregisters (a pull
        # producer's contract); the stream's back-pressure producer is a push producer.
        request.registerProducer = lambda producer, streaming: None
        request.unregisterProducer = lambda: None
        d = ensureDeferred(_stream(request, run))
        self.assertNoResult(d)
        self.assertEqual(request.written, [b"", b'{"status":"Pulling from x","id":"latest"}\r\n'])
        request.processingFailed(Failure(ConnectionLost()))
        self.assertEqual(cancelled, [True])
        self.assertIsNone(self.successResultOf(d))
