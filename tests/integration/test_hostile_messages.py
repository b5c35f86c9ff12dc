"""Every refusal of a hostile layer names the entry or the rule, and shows no internals.

The hostile archives of the suite (tests/e2e/test_archive_escapes.py, test_attack_content.py, the
layer cases of test_image_storage.py) are fed here to the refusal path they reach in the daemon:
the untar helper, run exactly as the daemon spawns it (the same isolated command line, chrooted
into the staging directory, the layer on stdin), whose last stderr line the image store reports
as C{failed to extract layer: <line>} (pyd/engine/images/store.py). Each message must name the
entry (when an entry is at fault) and contain no Python exception class, no errno text in
Python's form and no host path (the staging directory, the temporary directory). An archive
that is not refused must have stayed inside its root (root; the chroot is real).
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from pyd.drivers import sealed
from tests.helpers.leaks import leaks

pytestmark = pytest.mark.integration


def _ti(name: str, kind: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = 0o644 if kind != tarfile.DIRTYPE else 0o755
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


_FILE = b"x\n"
_BIG = _tar((_ti("big"), b"y" * 4096))

# name -> (layer bytes, the entry the refusal must name, or None when the rule is the point)
REFUSED: dict[str, tuple[bytes, str | None]] = {
    "dot-dot file": (_tar((_ti("../escape"), _FILE)), "../escape"),
    "deep dot-dot file": (_tar((_ti("a/../../../etc/cron.d/x"), _FILE)), "a/../../../etc/cron.d/x"),
    "hard link out": (
        _tar((_ti("passwd", tarfile.LNKTYPE, linkname="../../../etc/passwd"), None)),
        "../../../etc/passwd",
    ),
    "hard link to a missing name": (
        _tar((_ti("h", tarfile.LNKTYPE, linkname="tmp/nowhere"), None)),
        "tmp/nowhere",
    ),
    "block device": (
        _tar((_ti("etc/passwd", tarfile.BLKTYPE, devmajor=8, devminor=0), None)),
        "etc/passwd",
    ),
    "character device of a disk": (
        _tar((_ti("dev/mem", tarfile.CHRTYPE, devmajor=1, devminor=1), None)),
        "dev/mem",
    ),
    "symlink loop as a parent": (
        _tar((_ti("a", tarfile.SYMTYPE, linkname="a"), None), (_ti("a/b"), _FILE)),
        "a/b",
    ),
    "file under a file": (
        _tar((_ti("f"), _FILE), (_ti("f/g"), _FILE)),
        "f/g",
    ),
    "not a tar": (b"\x00garbage" * 100, None),
    "truncated": (_BIG[: 512 + 100], None),
    "bad gzip": (b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"garbage" * 20, None),
    "truncated gzip": (gzip.compress(_BIG)[:40], None),
    "bad bzip2": (bz2.compress(_BIG)[:30] + b"junk", None),
    "zstd": (b"\x28\xb5\x2f\xfd" + b"\x00" * 64, None),
}

# Archives that are contained rather than refused: what they name lands inside the root.
CONTAINED: dict[str, bytes] = {
    "absolute name": _tar((_ti("/etc/pyd-abs"), _FILE)),
    "absolute symlink as a parent": _tar(
        (_ti("l", tarfile.SYMTYPE, linkname="/etc"), None), (_ti("l/pyd-through-link"), _FILE)
    ),
    "climbing symlink as a parent": _tar(
        (_ti("up", tarfile.SYMTYPE, linkname="../../../../.."), None),
        (_ti("up/pyd-through-climb"), _FILE),
    ),
}


def _untar(dest: Path, data: bytes) -> subprocess.CompletedProcess[bytes]:
    """The helper as L{pyd.drivers.storage.layers.HelperExtractor} spawns it."""
    dest.mkdir(parents=True, exist_ok=True)
    argv = sealed.helper_argv("pyd.drivers.storage.untar", str(dest))
    return subprocess.run(argv, input=data, capture_output=True, timeout=60)


def _message(result: subprocess.CompletedProcess[bytes]) -> str:
    """What a client reads: the store's prefix and the helper's last stderr line."""
    lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
    return "failed to extract layer: " + (
        lines[-1] if lines else f"untar exited {result.returncode}"
    )


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refusal_messages(case: str, tmp_path: Path) -> None:
    """The hostile layer is refused with a message naming its entry, without internals."""
    data, entry = REFUSED[case]
    dest = tmp_path / "staging" / "diff"
    result = _untar(dest, data)
    assert result.returncode == 1, (case, result)
    message = _message(result)
    assert "Traceback" not in result.stderr.decode("utf-8", "replace"), (case, result.stderr)
    found = leaks(message, [str(tmp_path), str(dest), tempfile.gettempdir() + "/"])
    assert found == [], (case, message, found)
    if entry is not None:
        assert entry in message, (case, message)


@pytest.mark.parametrize("case", sorted(CONTAINED))
def test_contained(case: str, tmp_path: Path) -> None:
    """What is not refused stayed under the root: nothing appeared outside it."""
    before = set(os.listdir("/etc"))
    dest = tmp_path / "staging" / "diff"
    result = _untar(dest, CONTAINED[case])
    assert set(os.listdir("/etc")) == before, case
    outside = list((tmp_path / "staging").iterdir())
    assert outside == [dest], (case, outside)
    if result.returncode != 0:
        message = _message(result)
        assert leaks(message, [str(tmp_path)]) == [], (case, message)
