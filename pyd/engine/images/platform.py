"""The platform an image request names (C{platform=} of inspect, history, save, load, push;
C{platforms=} of delete) and whether an image is of it (layer: engine).

As moby 28's graph-driver image service (daemon/images/image.go GetImage with
C{OnlyPlatformWithFallback}): the image config's OS, architecture and variant are compared with
the requested platform, architectures normalised as containerd's platforms package does, a
variant counting only when both name one.
"""

from __future__ import annotations

from typing import Any

import attrs

from pyd.core.errors import InvalidParameter, NotFound
from pyd.core.records import Image
from pyd.engine.spec.rules import normalize_arch


@attrs.frozen
class Platform:
    """An OCI platform: C{os}/C{architecture}[/C{variant}]."""

    os: str
    architecture: str
    variant: str = ""

    def format(self) -> str:
        """containerd's C{platforms.FormatAll}: C{linux/amd64}, C{linux/arm/v7}."""
        out = f"{self.os}/{self.architecture}"
        return f"{out}/{self.variant}" if self.variant else out


def image_platform(config: dict[str, Any]) -> Platform:
    """The platform an image config declares."""
    return Platform(
        str(config.get("os") or ""),
        str(config.get("architecture") or ""),
        str(config.get("variant") or ""),
    )


def matches(want: Platform, have: Platform) -> bool:
    """Whether an image of C{have} serves a request for C{want}."""
    if want.os.lower() != have.os.lower():
        return False
    if normalize_arch(want.architecture) != normalize_arch(have.architecture):
        return False
    return not (want.variant and have.variant) or want.variant == have.variant


def check_image(img: Image, want: Platform | None, name: str) -> None:
    """Refuse C{img}, found as C{name}, when it is not of the platform asked for.

    @raise NotFound: moby 28's text (the image was found, its platform is another).
    """
    if want is None:
        return
    have = image_platform(img.config)
    if not matches(want, have):
        raise NotFound(
            f"image with reference {name} was found but its platform ({have.format()}) does "
            f"not match the specified platform ({want.format()})"
        )


def single(platforms: list[Platform]) -> Platform | None:
    """The one platform of a delete (moby 28 daemon/images/image_delete.go ImageDelete).

    @raise InvalidParameter: more than one.
    """
    if len(platforms) > 1:
        raise InvalidParameter("multiple platforms are not supported")
    return platforms[0] if platforms else None
