"""Reference parsing and normalisation like dockerd's (pyd.core.reference)."""

from __future__ import annotations

import pytest

from pyd.core import reference as refs
from pyd.core.errors import InvalidParameter


class ReferenceTests:
    """Short names normalise to docker.io/library, registries with ports are kept."""

    @pytest.mark.parametrize(
        ("given", "full", "familiar"),
        [
            ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
            ("my/img:v1", "docker.io/my/img:v1", "my/img:v1"),
            ("docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
            ("index.docker.io/my/img", "docker.io/my/img:latest", "my/img:latest"),
            ("127.0.0.1:5000/img", "127.0.0.1:5000/img:latest", "127.0.0.1:5000/img:latest"),
            ("localhost/img:x", "localhost/img:x", "localhost/img:x"),
            ("reg.example.com/a/b/c:t", "reg.example.com/a/b/c:t", "reg.example.com/a/b/c:t"),
            ("[::1]:5000/img:t", "[::1]:5000/img:t", "[::1]:5000/img:t"),
        ],
    )
    def test_normalise(self, given: str, full: str, familiar: str) -> None:
        """Each reference normalises and displays like dockerd's."""
        r = refs.parse_with_tag(given)
        assert str(r) == full
        assert r.familiar() == familiar

    def test_digest(self) -> None:
        """name@sha256:... keeps the digest and gets no default tag."""
        d = "sha256:" + "a" * 64
        r = refs.parse_with_tag(f"busybox@{d}")
        assert r.tag is None and r.digest == d
        assert str(r) == f"docker.io/library/busybox@{d}"
        assert r.familiar() == f"busybox@{d}"

    @pytest.mark.parametrize(
        ("bad", "message"),
        [
            (
                "Busybox",
                "invalid reference format: repository name (library/Busybox) must be lowercase",
            ),
            (
                "a" * 64,
                "invalid repository name ("
                + "a" * 64
                + "), cannot specify 64-byte hexadecimal strings",
            ),
            ("busybox:", "invalid reference format"),
            ("bad name", "invalid reference format"),
            ("img@sha256:abc", "invalid reference format"),
        ],
    )
    def test_invalid(self, bad: str, message: str) -> None:
        """Malformed references raise dockerd's messages."""
        with pytest.raises(InvalidParameter) as e:
            refs.parse_normalized(bad)
        assert str(e.value).startswith(message)

    def test_parse_repository(self) -> None:
        """repo + tag query parameters combine; a bad tag is refused."""
        assert str(refs.parse_repository("docker.io/my/img", "v1")) == "docker.io/my/img:v1"
        assert str(refs.parse_repository("img", None)) == "docker.io/library/img:latest"
        with pytest.raises(InvalidParameter):
            refs.parse_repository("img", "bad tag")
