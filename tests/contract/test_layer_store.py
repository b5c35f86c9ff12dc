"""Contract of the layer store seam (L{pyd.drivers.storage.layers.LayerStore}): what images and
containers rely on from layers and writable layers, run against the fake
(L{tests.fakes.layers.UnmountedLayerStore}, always) and, under the integration marker, the real
store with its overlay mount (root). A behaviour the fake shows and the real store does not (or
the reverse) fails here, not in a test that trusted the fake.

Both sides extract with L{InProcessExtractor} (the extraction helper is its own seam, tested in
tests/integration/test_image_storage.py); everything lives under a temporary directory and any
mount is undone afterwards.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator

import pytest

from pyd.core.seams import InlineBlocking
from pyd.drivers.storage import overlay
from pyd.drivers.storage.layers import InProcessExtractor, LayerStore
from tests.fakes.layers import UnmountedLayerStore
from tests.helpers.sync import run_sync

CID = "c" * 64


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.mode = 0o644
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _layer(store: LayerStore, cache_id: str, files: dict[str, bytes]) -> str:
    src = store.staging_file()
    with open(src, "wb") as f:
        f.write(_tar(files))
    extracted = run_sync(store.extract(src))
    store.discard(src)
    store.commit_layer(extracted.staging, cache_id)
    return cache_id


def _make(cls: type[LayerStore], root: str) -> LayerStore:
    store = cls(os.path.join(root, "storage"), InProcessExtractor(InlineBlocking()))
    store.ensure_dirs()
    return store


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest) -> Iterator[LayerStore]:
    if request.param == "real":
        if os.geteuid() != 0:
            pytest.skip("the overlay mount needs root")
        if not overlay.kernel_supports_lowerdir_plus():
            pytest.skip("mount_rw needs lowerdir+ (older kernels use mount_rw_legacy)")
    root = tempfile.mkdtemp(prefix="pyd-contract-layers-")
    s = _make(UnmountedLayerStore if request.param == "fake" else LayerStore, root)
    try:
        yield s
    finally:
        s.unmount_rw(CID)
        shutil.rmtree(root, ignore_errors=True)


def test_layer_extract_commit_remove(store: LayerStore) -> None:
    """An extracted layer is staged, committed under its cache id, and removed whole."""
    _layer(store, "a" * 64, {"etc/hostname": b"base\n"})
    with open(os.path.join(store.diff_dir("a" * 64), "etc", "hostname"), "rb") as f:
        assert f.read() == b"base\n"
    assert os.path.isfile(os.path.join(store.layers, "a" * 64, "layer.split"))
    with store.open_layer_tar("a" * 64) as tar:  # the layer's tar, given back whole
        data = tar.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = tf.getnames()
    assert "etc/hostname" in names
    assert os.listdir(store.tmp) == []
    store.remove_layer("a" * 64)
    assert not os.path.exists(os.path.join(store.layers, "a" * 64))


def test_mount_shows_layers_top_most_winning(store: LayerStore) -> None:
    """The merged view holds every layer's files; a file in an upper layer hides the lower one."""
    base = _layer(store, "a" * 64, {"etc/hostname": b"base\n", "bin/sh": b"sh"})
    top = _layer(store, "b" * 64, {"etc/hostname": b"top\n"})
    store.create_rw(CID)
    merged = store.mount_rw(CID, [top, base])
    assert merged == store.merged_dir(CID)
    with open(os.path.join(merged, "etc", "hostname"), "rb") as f:
        assert f.read() == b"top\n"
    assert os.path.isfile(os.path.join(merged, "bin", "sh"))
    assert store.mount_rw(CID, [top, base]) == merged


def test_mounted_state_and_idempotent_unmount(store: LayerStore) -> None:
    """is_mounted follows mount/unmount; unmount of an unmounted layer is quiet; the view is
    gone once unmounted and back on the next mount."""
    base = _layer(store, "a" * 64, {"f": b"x"})
    store.create_rw(CID)
    assert not store.is_mounted(CID)
    store.mount_rw(CID, [base])
    assert store.is_mounted(CID)
    store.unmount_rw(CID)
    assert not store.is_mounted(CID)
    assert os.listdir(store.merged_dir(CID)) == []
    store.unmount_rw(CID)
    store.mount_rw(CID, [base])
    assert os.listdir(store.merged_dir(CID)) == ["f"]


def test_changes_in_upper_dir(store: LayerStore) -> None:
    """What is in the upper dir is the container's diff and size, and shows in the view."""
    base = _layer(store, "a" * 64, {"f": b"x"})
    store.create_rw(CID)
    with open(os.path.join(store.upper_dir(CID), "new"), "wb") as f:
        f.write(b"12345")
    assert store.rw_changes(CID, [base]) == [("/new", 1)]
    assert store.rw_size(CID) == 5
    merged = store.mount_rw(CID, [base])
    assert sorted(os.listdir(merged)) == ["f", "new"]


def test_remove_rw_mounted_and_twice(store: LayerStore) -> None:
    """remove_rw unmounts and deletes a mounted writable layer; a second call is quiet."""
    base = _layer(store, "a" * 64, {"f": b"x"})
    store.create_rw(CID)
    store.mount_rw(CID, [base])
    store.remove_rw(CID)
    assert not store.is_mounted(CID)
    assert not os.path.exists(store.rw_dir(CID))
    store.remove_rw(CID)
