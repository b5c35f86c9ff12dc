"""A digest-verified, content-addressed blob store (layer: drivers).

Blobs live at C{<root>/blobs/sha256/<hex>}. Writing stages the bytes under C{<root>/tmp/}, hashes
them while copying, fsyncs, checks the digest when one is expected, and only then renames the file
into place: a blob is either complete and verified or absent. Every method blocks (file I/O):
call it from the io pool.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import IO

import attrs

CHUNK = 1 << 20


class DigestMismatch(Exception):
    """The content does not hash to the digest it was announced with."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class SizeMismatch(Exception):
    """The content is shorter or longer than announced (e.g. a truncated download)."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"size mismatch: expected {expected} bytes, got {actual}")
        self.expected = expected
        self.actual = actual


@attrs.frozen
class BlobInfo:
    """A stored blob."""

    digest: str
    size: int


def fsync_dir(path: str) -> None:
    """Persist a directory's entries (after a rename into it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: str) -> tuple[str, int]:
    """The digest and size of a file."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    return "sha256:" + h.hexdigest(), n


def _hex(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"invalid digest {digest!r}")
    return hexpart


class BlobStore:
    """Blobs by sha256 digest under C{root}."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.tmp = os.path.join(root, "tmp")
        self.dir = os.path.join(root, "blobs", "sha256")

    def ensure_dirs(self) -> None:
        """Create the directories."""
        os.makedirs(self.tmp, mode=0o700, exist_ok=True)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)

    def path(self, digest: str) -> str:
        """Where the blob with C{digest} lives (whether or not it exists)."""
        return os.path.join(self.dir, _hex(digest))

    def has(self, digest: str) -> bool:
        """Whether the blob is stored."""
        return os.path.exists(self.path(digest))

    def open(self, digest: str) -> IO[bytes]:
        """Open a stored blob for reading. @raise FileNotFoundError: not stored."""
        return open(self.path(digest), "rb")

    def read(self, digest: str) -> bytes:
        """A stored blob's bytes."""
        with self.open(digest) as f:
            return f.read()

    def put(
        self, src: IO[bytes], expected: str | None = None, expected_size: int | None = None
    ) -> BlobInfo:
        """Store what C{src} yields; verify it against C{expected}/C{expected_size} if given.

        @raise DigestMismatch: the content hashes differently; nothing is stored.
        @raise SizeMismatch: the content has another length; nothing is stored.
        """
        self.ensure_dirs()
        h = hashlib.sha256()
        n = 0
        fd, tmp = tempfile.mkstemp(prefix="blob-", dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    n += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = "sha256:" + h.hexdigest()
            if expected_size is not None and n != expected_size:
                raise SizeMismatch(expected_size, n)
            if expected is not None and digest != expected:
                raise DigestMismatch(expected, digest)
            os.replace(tmp, self.path(digest))
            fsync_dir(self.dir)
            return BlobInfo(digest, n)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:  # the partial file was never created: nothing to clean
                pass
            raise

    def put_bytes(self, data: bytes, expected: str | None = None) -> BlobInfo:
        """Store C{data}."""
        import io

        return self.put(io.BytesIO(data), expected)

    def adopt(self, path: str, expected: str | None = None) -> BlobInfo:
        """Move a file already staged under C{tmp/} into the store, after checking its digest."""
        digest, n = sha256_file(path)
        if expected is not None and digest != expected:
            os.unlink(path)
            raise DigestMismatch(expected, digest)
        os.replace(path, self.path(digest))
        fsync_dir(self.dir)
        return BlobInfo(digest, n)

    def delete(self, digest: str) -> None:
        """Remove a blob (no error when absent)."""
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:  # already removed: the goal is reached
            pass

    def list(self) -> list[str]:
        """Every stored digest."""
        try:
            return ["sha256:" + n for n in os.listdir(self.dir) if len(n) == 64]
        except FileNotFoundError:
            return []
