"""Hostile archives, as the suite's attack tests build them (tests/e2e/test_archive_escapes.py,
test_attack_content.py, tests/integration/test_image_storage.py), for the message audits
(tests/integration/test_hostile_messages.py: image layers; tests/unit/test_hostile_context.py:
build contexts; tests/integration/test_cp_messages.py: docker cp into and out of a container)."""

from __future__ import annotations

import bz2
import gzip
import io
import tarfile


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
    "absolute symlink as a parent": (
        _tar(
            (_ti("l", tarfile.SYMTYPE, linkname="/etc"), None), (_ti("l/pyd-through-link"), _FILE)
        ),
        "l/pyd-through-link",
    ),
    "climbing symlink as a parent": (
        _tar(
            (_ti("up", tarfile.SYMTYPE, linkname="../../../../.."), None),
            (_ti("up/pyd-through-climb"), _FILE),
        ),
        "up/pyd-through-climb",
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
}

_THROUGH_LINK = "made by the same archive that leads out of its root, and an archive may not write"
# name -> the rule the image-layer refusal states, in plain words (the untar helper's text)
LAYER_RULES: dict[str, str] = {
    "dot-dot file": "is outside of the layer",
    "deep dot-dot file": "is outside of the layer",
    "hard link out": "is outside of the layer",
    "hard link to a missing name": "which does not exist",
    "block device": "image layers may only hold the character devices",
    "character device of a disk": "image layers may only hold the character devices",
    "symlink loop as a parent": _THROUGH_LINK,
    "absolute symlink as a parent": _THROUGH_LINK,
    "climbing symlink as a parent": _THROUGH_LINK,
    "file under a file": "not a directory",
    "not a tar": "not a tar archive",
    "truncated": "unexpected end of",
    "bad gzip": "invalid gzip data",
    "truncated gzip": "unexpected end of archive",
    "bad bzip2": "unexpected end of archive",
    "zstd": "unsupported compression: zstd",
}
# name -> the rule the build-context refusal states (device nodes are skipped in a context)
CONTEXT_RULES: dict[str, str] = {
    "dot-dot file": "it points outside of the context",
    "deep dot-dot file": "it points outside of the context",
    "hard link out": "to missing",
    "hard link to a missing name": "to missing",
    "symlink loop as a parent": _THROUGH_LINK,
    "absolute symlink as a parent": _THROUGH_LINK,
    "climbing symlink as a parent": _THROUGH_LINK,
    "file under a file": "a path element is not a directory",
    "not a tar": "not a tar archive",
    "truncated": "the archive is corrupt",
    "bad gzip": "not a tar archive",
    "truncated gzip": "not a tar archive",
    "bad bzip2": "not a tar archive",
    "zstd": "not a tar archive",
}
# name -> the rule the refusal of C{docker cp} into a container states (the helper's text in
# dockerd's C{Error processing tar file(...)}); device nodes are created, as dockerd creates them
CP_RULES: dict[str, str] = {
    "dot-dot file": "is outside of the destination directory",
    "deep dot-dot file": "is outside of the destination directory",
    "hard link out": "is outside of the destination directory",
    "hard link to a missing name": "which does not exist",
    "symlink loop as a parent": _THROUGH_LINK,
    "absolute symlink as a parent": _THROUGH_LINK,
    "climbing symlink as a parent": _THROUGH_LINK,
    "file under a file": "not a directory",
    "not a tar": "not a tar archive",
    "truncated": "unexpected end of",
    "bad gzip": "invalid gzip data",
    "truncated gzip": "unexpected end of archive",
    "bad bzip2": "unexpected end of archive",
    "zstd": "unsupported compression: zstd",
}
CP_ACCEPTED = ("block device", "character device of a disk")

# Hostile paths for docker cp out of (and into) a container, over the tree the audit builds:
# path -> the text its refusal holds (None: it is served, from inside the container's root)
CP_PATHS: dict[str, str | None] = {
    "/../../../etc/shadow": "Could not find the file /../../../etc/shadow",
    "../../etc/passwd": None,  # climbs no higher than the container's root: its /etc/passwd
    "/abs/shadow": "Could not find the file /abs/shadow",  # abs -> /etc of the container
    "/abs/passwd": None,
    "/up/etc/shadow": "Could not find the file /up/etc/shadow",  # up -> ../../../..
    "/loop/x": "too many links in /loop",
    "/loop": "too many links in /loop",
    "/file/x": "Could not find the file /file/x",
    "/dangling/x": "Could not find the file /dangling/x",
    "/proc/self/environ": "Could not find the file /proc/self/environ",
    "/" + "a" * 300: "file name too long",
    "/" + "a/" * 3000: "file name too long",
    "/data/../../..": None,
}
