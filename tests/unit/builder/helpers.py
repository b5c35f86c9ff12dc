"""Shared helpers for the build unit tests."""

from __future__ import annotations

import io
import tarfile


def make_tar(
    files: dict[str, bytes | str], extra: list[tarfile.TarInfo] | None = None
) -> io.BytesIO:
    """A context tar: values are file contents; a value starting with C{->} is a symlink; a name
    ending in C{/} is a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in files.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = 1_700_000_000
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
                continue
            if isinstance(content, str) and content.startswith("->"):
                info.type = tarfile.SYMTYPE
                info.linkname = content[2:]
                tf.addfile(info)
                continue
            data = content.encode() if isinstance(content, str) else content
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tf.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tf.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    buf.seek(0)
    return buf
