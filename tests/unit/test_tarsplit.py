"""A layer's tar is given back byte for byte from its record and its extracted files
(pyd.drivers.storage.tarsplit), whatever the tar does; and nothing on disk can make the reader
read outside the layer or give back a wrong tar silently."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import tarfile
from pathlib import Path

import pytest

from pyd.drivers.storage import tarsplit, untar
from pyd.drivers.storage.tarsplit import SPLIT_NAME, SplitError, SplitTar, SplitWriter


def _ti(name: str, kind: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    ti.mtime = 1_700_000_000
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def _tar(*members: tuple[tarfile.TarInfo, bytes | None], fmt: int = tarfile.PAX_FORMAT,
         tail: bytes = b"") -> bytes:  # fmt: skip
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue() + tail


def _store(tmp_path: Path, data: bytes) -> Path:
    """Extract C{data} as the daemon stores a layer: diff/ and layer.split (plus keep/)."""
    layer = tmp_path / "layer"
    (layer / "diff").mkdir(parents=True)
    staging_fd = os.open(layer, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with open(layer / SPLIT_NAME, "xb") as out:
            untar.run(str(layer / "diff"), io.BytesIO(data), SplitWriter(out, staging_fd),
                      chroot=False, sync=False)  # fmt: skip
    finally:
        os.close(staging_fd)
    return layer


def _back(layer: Path) -> bytes:
    with tarsplit.open_layer_tar(str(layer)) as tar:
        data = tar.read()
        assert tar.size == len(data)
    return data


def _round_trip(tmp_path: Path, data: bytes) -> Path:
    layer = _store(tmp_path, data)
    assert _back(layer) == data
    out = tmp_path / "sent.tar"  # the kernel-copy path gives the same bytes
    with tarsplit.open_layer_tar(str(layer)) as tar, open(out, "wb") as f:
        assert tar.send_to(f.fileno()) == len(data)
    assert out.read_bytes() == data
    assert tarsplit.layer_tar_size(str(layer)) == len(data)
    return layer


def test_everyday_layer(tmp_path: Path) -> None:
    """Directories, files (empty, odd-sized, bigger than a read), pax xattrs and long names,
    symlinks, hardlinks, devices, whiteouts: the same tar comes back; the file contents are not
    in the record (it stays small)."""
    big = os.urandom(3 << 20) + b"tail"
    data = _tar(
        (_ti("etc/", tarfile.DIRTYPE), None),
        (_ti("etc/empty"), b""),
        (_ti("etc/odd"), b"x" * 777),
        (_ti("big.bin"), big),
        (_ti("p/" + "n" * 150 + "/file"), b"long name"),
        (_ti("cap", pax_headers={"SCHILY.xattr.user.k": "v"}), b"with xattr"),
        (_ti("link", tarfile.SYMTYPE, linkname="etc/odd"), None),
        (_ti("hard", tarfile.LNKTYPE, linkname="etc/odd"), None),
        (_ti("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3), None),
        (_ti("gone/.wh.old"), b""),
        (_ti("opq/", tarfile.DIRTYPE), None),
        (_ti("opq/.wh..wh..opq"), b""),
    )
    layer = _round_trip(tmp_path, data)
    assert (layer / "diff" / "big.bin").read_bytes() == big
    assert os.path.getsize(layer / SPLIT_NAME) < 64 << 10
    assert not (layer / "keep").exists()


def test_gnu_and_ustar_formats_and_trailing_bytes(tmp_path: Path) -> None:
    """GNU long names, plain ustar, and bytes after the end blocks (some writers pad to 10 KiB
    and more) are all part of the diff id and come back."""
    for i, fmt in enumerate((tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT)):
        name = ("g" * 120 + "/f") if fmt == tarfile.GNU_FORMAT else "u/f"
        data = _tar((_ti(name), b"content"), fmt=fmt, tail=b"\0" * 4096)
        _round_trip(tmp_path / str(i), data)


def test_compressed_input_gives_back_the_plain_tar(tmp_path: Path) -> None:
    """A pulled layer is gzip: the record gives back the uncompressed tar (its diff id)."""
    plain = _tar((_ti("a"), b"alpha" * 1000), (_ti("b"), b"beta"))
    layer = tmp_path / "layer"
    (layer / "diff").mkdir(parents=True)
    with open(layer / SPLIT_NAME, "xb") as out:
        r = untar.run(str(layer / "diff"), io.BytesIO(gzip.compress(plain)), SplitWriter(out),
                      chroot=False, sync=False)  # fmt: skip
    assert r["diff_id"] == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert _back(layer) == plain


def test_a_name_given_twice_keeps_the_first_content(tmp_path: Path) -> None:
    """The second entry replaces the first file on disk; the first content is kept (hard link
    in keep/), so the tar still comes back whole."""
    data = _tar((_ti("f"), b"first version"), (_ti("f"), b"second"), (_ti("g"), b"g"))
    layer = _round_trip(tmp_path, data)
    assert (layer / "diff" / "f").read_bytes() == b"second"
    assert (layer / "keep" / "0").read_bytes() == b"first version"


def test_a_directory_replaced_keeps_the_files_below(tmp_path: Path) -> None:
    """A file entry replacing a directory (and a whiteout of a file of the same layer) removes
    files already referenced: their contents are kept first."""
    data = _tar(
        (_ti("d/", tarfile.DIRTYPE), None),
        (_ti("d/a"), b"A" * 600),
        (_ti("d/sub/b"), b"B"),
        (_ti("w"), b"whited out later"),
        (_ti("d"), b"now a file"),
        (_ti(".wh.w"), b""),
    )
    layer = _round_trip(tmp_path, data)
    assert sorted(os.listdir(layer / "keep")) == ["0", "1", "2"]


def test_files_written_through_an_inside_symlink(tmp_path: Path) -> None:
    """C{d -> real}, then C{d/f}: the file is recorded at its real path, so removing the link
    later does not lose it, and replacing the real directory keeps its content."""
    data = _tar(
        (_ti("real/", tarfile.DIRTYPE), None),
        (_ti("d", tarfile.SYMTYPE, linkname="real"), None),
        (_ti("d/f"), b"through the link"),
        (_ti("d"), b"the link replaced by a file"),
    )
    _round_trip(tmp_path / "1", data)
    data2 = _tar(
        (_ti("real/", tarfile.DIRTYPE), None),
        (_ti("d", tarfile.SYMTYPE, linkname="real"), None),
        (_ti("d/f"), b"through the link"),
        (_ti("real"), b"the directory replaced by a file"),
    )
    layer = _round_trip(tmp_path / "2", data2)
    assert (layer / "keep" / "0").read_bytes() == b"through the link"


def _sparse(content: bytes, then: tuple[tarfile.TarInfo, bytes] | None = None) -> bytes:
    """A tar whose first member is an old-GNU sparse file of one region holding C{content}."""
    members = [(_ti("s"), content)] + ([then] if then else [])
    raw = bytearray(_tar(*members, fmt=tarfile.GNU_FORMAT))
    hdr = raw[:512]
    hdr[156:157] = tarfile.GNUTYPE_SPARSE
    hdr[386:398] = b"%011o\0" % 0  # the region's offset
    hdr[398:410] = b"%011o\0" % len(content)  # its size
    hdr[483:495] = b"%011o\0" % len(content)  # the file's size
    hdr[148:156] = b"        "
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    raw[:512] = hdr
    return bytes(raw)


def test_sparse_files_stay_in_the_record(tmp_path: Path) -> None:
    """A GNU sparse member is not a plain copy on disk: its bytes stay in the record."""
    layer = _round_trip(tmp_path, _sparse(b"data" * 200))
    assert (layer / "diff" / "s").read_bytes() == b"data" * 200


class _Watched(SplitWriter):
    """Records the most bytes the writer held unclassified."""

    peak = 0

    def write(self, data: bytes) -> None:
        super().write(data)
        self.peak = max(self.peak, len(self._pending))


def test_unreferenced_contents_pass_through(tmp_path: Path) -> None:
    """The bytes of a big member kept in the record (a sparse one) are written out as they
    arrive: the writer never holds much more than one read (1 MiB), not the whole member."""
    big = os.urandom(6 << 20)
    data = _sparse(big, (_ti("after"), b"a regular file after it"))
    (tmp_path / "diff").mkdir()
    with open(tmp_path / SPLIT_NAME, "xb") as out:
        w = _Watched(out)
        untar.run(str(tmp_path / "diff"), io.BytesIO(data), w, chroot=False, sync=False)
    assert w.peak < (1 << 20) + 64 * 1024
    assert _back(tmp_path) == data


def test_changed_files_are_refused_not_given_back_wrong(tmp_path: Path) -> None:
    """A referenced file truncated, grown, removed, or replaced by a symlink to a host file:
    the reader refuses (SplitError), it never gives back other bytes or follows the link."""
    data = _tar((_ti("f"), b"content of f"), (_ti("g"), b"g"))
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"host data!!!")  # same size as f's content
    for change in ("truncate", "grow", "remove", "symlink"):
        layer = _store(tmp_path / change, data)
        f = layer / "diff" / "f"
        if change == "truncate":
            f.write_bytes(b"short")
        elif change == "grow":
            f.write_bytes(b"content of f and more")
        elif change == "remove":
            f.unlink()
        else:
            f.unlink()
            f.symlink_to(secret)
        with pytest.raises(SplitError), tarsplit.open_layer_tar(str(layer)) as tar:
            tar.read()


def test_a_damaged_record_is_refused(tmp_path: Path) -> None:
    """A truncated or corrupt record is an error, not a short tar."""
    data = _tar((_ti("f"), b"x" * 5000), (_ti("g"), b"y"))
    layer = _store(tmp_path, data)
    rec = (layer / SPLIT_NAME).read_bytes()
    body, size = rec[len(tarsplit.MAGIC) : -8], rec[-8:]
    for bad in (
        tarsplit.MAGIC + body[: len(body) // 2] + size,
        tarsplit.MAGIC + b"\x00" * len(body) + size,
        b"not a record at all" + size,
        tarsplit.MAGIC + body + struct.pack(">Q", len(data) + 1),
    ):
        (layer / SPLIT_NAME).write_bytes(bad)
        with pytest.raises(SplitError):
            _back(layer)


def test_older_stores_keep_their_whole_tar(tmp_path: Path) -> None:
    """A layer stored by an earlier pyd has layer.tar and no record: given back as it is."""
    layer = tmp_path / "old"
    (layer / "diff").mkdir(parents=True)
    data = _tar((_ti("f"), b"old layer"))
    (layer / "layer.tar").write_bytes(data)
    assert _back(layer) == data
    assert tarsplit.layer_tar_size(str(layer)) == len(data)
    with tarsplit.open_layer_tar(str(layer)) as tar, open(tmp_path / "o", "wb") as f:
        tar.send_to(f.fileno())
    assert (tmp_path / "o").read_bytes() == data


def test_reads_in_any_sizes(tmp_path: Path) -> None:
    """read(n) gives exactly n bytes until the end (tarfile's copy relies on it)."""
    data = _tar(*((_ti(f"f{i}"), os.urandom(i * 997)) for i in range(12)))
    layer = _store(tmp_path, data)
    for n in (1, 511, 512, 4096, 100_000):
        got = bytearray()
        with SplitTar(str(layer)) as tar:
            while chunk := tar.read(n):
                assert len(chunk) == n or len(got) + len(chunk) == len(data)
                got += chunk
        assert bytes(got) == data
