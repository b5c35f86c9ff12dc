"""max-layer-size with the real CLI (issue 18's check): with C{--max-layer-size 64MiB}, a 1 MiB
layer expanding to 1 GiB is refused by C{docker load} with a plain message, and the data root
keeps under 16 MiB of it."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.fsusage import tree_bytes

pytestmark = pytest.mark.e2e

GIB = 1 << 30


@functools.cache
def _bomb_layer() -> tuple[bytes, str]:
    """A gzip'd tar of one file of zeros: 1 GiB expanded, about 1 MiB stored; with the plain
    tar's digest."""
    layer = io.BytesIO()
    plain_hash = hashlib.sha256()

    class Tee(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]  # narrower than the base's buffer type: only bytes are written
            plain_hash.update(b)
            gz.write(b)
            return len(b)

    chunk = bytes(1 << 20)
    with gzip.GzipFile(fileobj=layer, mode="wb", compresslevel=9) as gz:
        tee = Tee()
        info = tarfile.TarInfo("zeros")
        info.size = GIB
        tee.write(info.tobuf(format=tarfile.PAX_FORMAT))
        for _ in range(GIB // len(chunk)):
            tee.write(chunk)
        tee.write(bytes(1024))  # end-of-archive
    return layer.getvalue(), plain_hash.hexdigest()


def _bomb_image(path: Path) -> int:
    """A docker-archive whose one layer is L{_bomb_layer}."""
    layer, plain_digest = _bomb_layer()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["true"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + plain_digest]},
        }
    ).encode()
    cfg_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": cfg_name, "RepoTags": ["pyd-t-bomb:latest"], "Layers": ["layer.tar.gz"]}]
    ).encode()
    with tarfile.open(path, "w") as out:
        for name, data in (
            ("layer.tar.gz", layer),
            (cfg_name, config),
            ("manifest.json", manifest),
        ):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            out.addfile(ti, io.BytesIO(data))
    return len(layer)


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[PydDaemon]:
    d = PydDaemon(str(tmp_path / "pyd"), extra_args=["--max-layer-size", "64MiB"])
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


class LayerLimitTests:
    def test_bomb_refused_leaves_nothing(self, limited: PydDaemon, tmp_path: Path) -> None:
        """docker load of the bomb fails naming the limit; no image; the data root grew by
        under 16 MiB."""
        archive = tmp_path / "bomb.tar"
        stored = _bomb_image(archive)
        assert stored < 2 << 20, stored
        before = tree_bytes(limited.data_root)
        r = limited.docker("load", "-i", str(archive), check=False)
        assert r.returncode != 0
        assert "maximum layer size" in r.stderr, r.stderr
        for leak in ("Errno", "Traceback", limited.data_root):
            assert leak not in r.stderr, r.stderr
        assert limited.docker("image", "inspect", "pyd-t-bomb", check=False).returncode != 0
        assert tree_bytes(limited.data_root) - before < 16 << 20

    def test_import_refused_leaves_nothing(self, limited: PydDaemon, tmp_path: Path) -> None:
        """docker import of the bomb layer fails naming the limit, as load does."""
        layer, _ = _bomb_layer()
        path = tmp_path / "bomb.tar.gz"
        path.write_bytes(layer)
        before = tree_bytes(limited.data_root)
        r = limited.docker("import", str(path), "pyd-t-bomb-import", check=False)
        assert r.returncode != 0
        assert "maximum layer size" in r.stderr, r.stderr
        for leak in ("Errno", "Traceback", limited.data_root):
            assert leak not in r.stderr, r.stderr
        assert tree_bytes(limited.data_root) - before < 16 << 20

    def test_build_add_refused_leaves_nothing(self, limited: PydDaemon, tmp_path: Path) -> None:
        """A build's ADD of the bomb (a local archive, unpacked) fails naming the limit; no
        image, no container, and the data root keeps under 16 MiB of it."""
        from tests.helpers.images import load_busybox

        load_busybox(limited)
        layer, _ = _bomb_layer()
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "bomb.tar.gz").write_bytes(layer)
        (ctx / "Dockerfile").write_text("FROM pyd-test/busybox:latest\nADD bomb.tar.gz /data/\n")
        before = tree_bytes(limited.data_root)
        r = limited.docker(
            "build", "-t", "pyd-t-bomb-build", str(ctx), check=False, env={"DOCKER_BUILDKIT": "0"}
        )
        assert r.returncode != 0
        out = r.stdout + r.stderr
        assert "maximum layer size of 67108864 bytes (max-layer-size)" in out, out
        for leak in ("Errno", "Traceback", limited.data_root):
            assert leak not in out, out
        assert limited.docker("image", "inspect", "pyd-t-bomb-build", check=False).returncode
        assert limited.docker("ps", "-aq").stdout.strip() == ""
        assert tree_bytes(limited.data_root) - before < 16 << 20
