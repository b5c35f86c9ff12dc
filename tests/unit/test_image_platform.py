"""The platform parameters of the image endpoints: moby 28's decoding and its platform match."""

from __future__ import annotations

from types import SimpleNamespace

from twisted.trial.unittest import SynchronousTestCase

from pyd.api.platform_param import decode_platform, platform_param, platforms_param
from pyd.core.errors import InvalidParameter, NotFound
from pyd.core.records import Image
from pyd.engine.images import platform as plat


def _req(version: tuple[int, int], **args: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        pyd_api_version=version,
        args={k.encode(): [v.encode() for v in vs] for k, vs in args.items()},
    )


class DecodeTests(SynchronousTestCase):
    def test_texts(self) -> None:
        """httputils.DecodePlatform's checks, in its words."""
        self.assertEqual(
            decode_platform('{"os":"linux","architecture":"arm","variant":"v7"}'),
            plat.Platform("linux", "arm", "v7"),
        )
        for raw, msg in (
            ("x", "failed to parse platform: invalid character 'x' looking for beginning of value"),
            ("{", "failed to parse platform: unexpected end of JSON input"),
            ('{"os":"linux"}', "both OS and Architecture must be provided"),
            (
                '{"variant":"v7"}',
                "optional platform fields provided, but OS and Architecture are missing",
            ),
        ):
            with self.assertRaises(InvalidParameter, msg=raw) as cm:
                decode_platform(raw)
            self.assertEqual(str(cm.exception), msg)

    def test_versions_and_counts(self) -> None:
        """Ignored below the route's API version; save and load take one, delete one too."""
        amd = '{"os":"linux","architecture":"amd64"}'
        self.assertIsNone(platform_param(_req((1, 48), platform=["x"]), (1, 49)))
        self.assertEqual(
            platform_param(_req((1, 49), platform=[amd]), (1, 49)), plat.Platform("linux", "amd64")
        )
        with self.assertRaises(InvalidParameter):
            platform_param(_req((1, 50), platform=[amd, amd]), (1, 48), single=True)
        self.assertEqual(platforms_param(_req((1, 49), platforms=["x"]), (1, 50)), [])
        two = platforms_param(_req((1, 50), platforms=[amd, amd]), (1, 50))
        with self.assertRaises(InvalidParameter) as cm:
            plat.single(two)
        self.assertEqual(str(cm.exception), "multiple platforms are not supported")


class MatchTests(SynchronousTestCase):
    def test_match_and_refusal(self) -> None:
        """Architectures compare normalised, a variant only when both have one; another
        platform is moby 28's NotFound naming both."""
        amd = plat.Platform("linux", "amd64")
        self.assertTrue(plat.matches(plat.Platform("linux", "x86_64"), amd))
        self.assertTrue(
            plat.matches(plat.Platform("linux", "arm", "v7"), plat.Platform("linux", "arm"))
        )
        self.assertFalse(
            plat.matches(plat.Platform("linux", "arm", "v7"), plat.Platform("linux", "arm", "v6"))
        )
        img = Image("sha256:" + "a" * 64, {"os": "linux", "architecture": "amd64"}, (), (), 0, 0)
        plat.check_image(img, None, "x")
        plat.check_image(img, amd, "x")
        with self.assertRaises(NotFound) as cm:
            plat.check_image(img, plat.Platform("linux", "arm64"), "busybox:1")
        self.assertEqual(
            str(cm.exception),
            "image with reference busybox:1 was found but its platform (linux/amd64) does not "
            "match the specified platform (linux/arm64)",
        )
