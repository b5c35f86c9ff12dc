"""The build's inputs, read inside their roots; all blocking (run it through the io L{Blocking};
layer: engine).

The uploaded context tar is unpacked into a daemon-owned directory, then treated as an untrusted
tree: C{.dockerignore}, the Dockerfile (C{-f}), COPY/ADD sources and their hashing are reached only
through L{pyd.drivers.inroot.InRoot} over it (or over another stage's root for C{COPY --from}), so
a symlink in the context or in an image (C{a -> missing/../evil}, C{evil -> /root}) stays inside
that root. Below a source's top element nothing is followed: links are read as links, and only
regular files are ever opened for reading (a device or FIFO is never opened). Heredoc bodies and
ADD downloads are written into a scratch directory under generated names. User and group names
are looked up in the image's C{/etc/passwd} and C{/etc/group}, read with L{InRoot.read_small}.
"""

from __future__ import annotations

import bz2
import errno
import fnmatch
import gzip
import hashlib
import http.client
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import IO, BinaryIO, cast

import attrs

from pyd.core.errors import InvalidParameter
from pyd.drivers.inroot import InRoot, fd_path
from pyd.engine.builder import intar
from pyd.engine.builder.ignore import PatternMatcher, read_patterns
from pyd.engine.builder.parser import valid_file_name

MAX_DOCKERFILE = 32 << 20  # a Dockerfile larger than this is refused, not read into memory
MAX_ACCOUNTS = 16 << 20  # /etc/passwd, /etc/group


class BuildFileError(InvalidParameter):
    """A COPY/ADD or context problem the user must fix (the message is dockerd's)."""


def clean_rel(path: str) -> str:
    """C{path} made relative to a root and cleaned (C{..} cannot climb above the root)."""
    p = posixpath.normpath("/" + path)
    while p.startswith("//"):
        p = p[1:]
    return p.lstrip("/")


# --- opening what a root holds ---------------------------------------------------------------


def lstat_entry(dirfd: int, name: str) -> os.stat_result:
    """The entry C{name} of C{dirfd} (not followed); C{name == ""}: C{dirfd} itself."""
    if not name:
        return os.fstat(dirfd)
    return os.stat(name, dir_fd=dirfd, follow_symlinks=False)


def open_regular(dirfd: int, name: str) -> int:
    """A readable descriptor of the regular file C{name} in C{dirfd} (C{""}: C{dirfd} itself).

    The entry is opened C{O_PATH} and not followed, checked to be a regular file, and only then
    reopened for reading (non-blocking): a device node or FIFO is never opened.

    @raise OSError: C{EINVAL} when it is not a regular file.
    """
    opath = dirfd if not name else intar.open_entry(dirfd, name)
    try:
        if not stat.S_ISREG(os.fstat(opath).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        fd = os.open(fd_path(opath), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    finally:
        if opath != dirfd:
            os.close(opath)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    return fd


def open_dir(dirfd: int, name: str) -> int:
    """A readable descriptor of the directory C{name} in C{dirfd}, not followed (C{""}: itself)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    if not name:
        return os.open(".", flags, dir_fd=dirfd)
    return os.open(name, flags | os.O_NOFOLLOW, dir_fd=dirfd)


# --- the context -------------------------------------------------------------------------------


def _open_maybe_compressed(f: BinaryIO) -> IO[bytes]:
    """C{f}, or a decompressing reader over it when it starts with a gzip/bzip2/xz magic."""
    head = f.read(6)
    f.seek(0)
    if head[:2] == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=f))
    if head[:3] == b"BZh":
        return bz2.BZ2File(f)
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(f)
    return f


def _context_members(tf: tarfile.TarFile, max_size: int = 0) -> Iterator[tarfile.TarInfo]:
    total = 0
    while True:
        try:
            m = tf.next()
        except tarfile.ReadError as e:
            # The CLI's tar of a context with an outside Dockerfile ends right after the
            # last member's data (no padding, no end blocks); that is the end.
            if "unexpected end of data" in str(e):
                return
            raise
        if m is None:
            return
        norm = posixpath.normpath(m.name)
        if m.name.startswith("/") or norm == ".." or norm.startswith("../"):
            raise BuildFileError(
                f"Error processing tar file: invalid build context entry {m.name!r}: "
                "it points outside of the context"
            )
        total += max(m.size, 0) + tarfile.BLOCKSIZE
        if max_size and total > max_size:
            # before the entry is written: the context directory is removed by the caller
            raise BuildFileError(
                "the build context is larger than the maximum build context size of "
                f"{max_size} bytes (max-build-context-size)"
            )
        yield m


def extract_context(src: BinaryIO, dest: str, max_size: int = 0, keep_free: int = 0) -> int:
    """Extract the uploaded context tar into the empty directory C{dest}; return bytes written.

    Only directories, regular files, symlinks and hardlinks are created, each inside the context
    (L{intar}); owners are not kept (the CLI sends 0:0). An entry whose name leaves the root is
    refused. With C{max_size}, a context whose entries (data plus a header block each) add up
    to more is refused before the entry that crosses it is written. With C{keep_free}, the
    unpacking stops once the filesystem has less free (min-free-space).

    @raise BuildFileError: a broken tar, an entry escaping the context, or too large.
    """
    if src is None or not src.read(1):
        return 0  # an empty body: an empty context
    src.seek(0)
    try:
        stream = _open_maybe_compressed(src)
        tf = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - closed in the finally below
    except (tarfile.TarError, EOFError, OSError, zlib_error(), lzma.LZMAError) as e:
        # a truncated gzip or bzip2 stream ends (EOFError) while tarfile reads the first header
        raise BuildFileError("failed to read the build context: not a tar archive") from e
    try:
        with InRoot(dest) as ctx:
            policy = intar.Policy(
                space_check=(lambda: intar.check_free_space(dest, keep_free)) if keep_free else None
            )
            return intar.extract(tf, _context_members(tf, max_size), ctx, "/", policy)
    except intar.LimitReached as e:
        raise BuildFileError(str(e)) from e
    except intar.MemberError as e:
        raise BuildFileError(f"Error processing tar file: {e}") from e
    except OSError as e:
        raise BuildFileError(f"Error processing tar file: {intar.reason(e)}") from e
    except RecursionError as e:
        raise BuildFileError("Error processing tar file: too deeply nested") from e
    except (tarfile.TarError, EOFError, zlib_error(), lzma.LZMAError) as e:
        raise BuildFileError("Error processing tar file: the archive is corrupt") from e
    finally:
        tf.close()


def zlib_error() -> type[Exception]:
    """The exception class a corrupt gzip stream raises."""
    import zlib

    return zlib.error


def apply_dockerignore(root: str, keep: tuple[str, ...] = ()) -> list[str]:
    """What dockerd's classic builder does with C{.dockerignore} (moby
    builder/remotecontext/detect.go C{removeDockerfile}): the client filtered the context
    itself (the CLI and docker-py do), so only C{.dockerignore} and the Dockerfile (C{keep}, once
    read) are removed, each when the patterns exclude it (C{MatchesOrParentMatches}); other
    files stay whatever the patterns say, and patterns moby cannot compile remove nothing.
    Returns the removed paths.

    The file is read inside the context (a link to a host file is a link to the context's
    file of that name), and removals are resolved inside it, never following a link.
    """
    with InRoot(root) as ctx:
        try:
            data = ctx.read_small(".dockerignore", MAX_DOCKERFILE)
        except OSError:
            data = None
        if not data:
            return []
        try:
            matcher = PatternMatcher(read_patterns(data))
        except InvalidParameter:
            return []  # dockerd ignores the matcher's error here
        removed: list[str] = []
        for rel in (".dockerignore", *keep):
            if rel in removed or not matcher.matches(rel):
                continue
            try:
                ctx.remove(rel)
            except OSError:
                continue  # missing, or not reachable inside the context: nothing to delete
            removed.append(rel)
        return removed


def read_dockerfile(root: str, name: str) -> bytes:
    """The Dockerfile named by the request (relative to the context root, resolved inside it).

    @raise BuildFileError: missing or not a regular file (dockerd's C{Cannot locate specified
        Dockerfile}), or too large.
    """
    with InRoot(root) as ctx:
        candidates = [clean_rel(name)]
        if name == "Dockerfile":  # dockerd also accepts the lower-case spelling of the default
            candidates.append("dockerfile")
        for rel in candidates:
            try:
                data = ctx.read_small(rel or ".", MAX_DOCKERFILE)
            except OSError as e:
                if e.errno == errno.EFBIG:
                    raise BuildFileError(
                        f"the Dockerfile ({name}) is larger than {MAX_DOCKERFILE >> 20} MiB"
                    ) from None
                data = None
            if data is not None:
                return data
    raise BuildFileError(f"Cannot locate specified Dockerfile: {name}")


def remove_dockerfile(root: str, name: str) -> None:
    """Delete the Dockerfile C{name} from the context (inside it; a missing one is fine)."""
    with InRoot(root) as ctx:
        try:
            ctx.remove(clean_rel(name))
        except OSError:
            pass  # missing, or not reachable inside the context: nothing of ours to delete


# --- sources and hashing -----------------------------------------------------------------------


@attrs.frozen
class Source:
    """One resolved COPY/ADD source: a path inside a tree and the name it is copied under."""

    root: str  # host path of the daemon-owned tree it is in (context, stage root, scratch dir)
    path: str  # its path inside that tree (clean, absolute; the last element is followed)
    name: str  # base name used when the destination is a directory
    is_dir: bool
    keep: str = ""  # COPY --parents: the relative path kept below the destination


def _has_wildcard(p: str) -> bool:
    return any(c in p for c in "*?[")


def resolve_sources(
    root: str, patterns: list[str], cmd: str, parents: bool = False
) -> list[Source]:
    """Resolve COPY/ADD source arguments inside C{root} (the context, or another stage's root).
    With C{parents} (COPY --parents) each source keeps its path, relative to the root or to a
    C{/./} pivot in the argument, below the destination.

    @raise BuildFileError: a path outside the root, or a missing file (dockerd's messages).
    """
    out: list[Source] = []
    with InRoot(root) as tree:
        for orig in patterns:
            norm = posixpath.normpath(orig)
            if norm == ".." or norm.startswith("../"):
                raise BuildFileError(
                    f"{cmd} failed: forbidden path outside the build context: {orig} ()"
                )
            pivot = ""
            if parents and "/./" in orig:
                pivot = clean_rel(orig.split("/./", 1)[0])
            rel = clean_rel(orig)
            names = _glob(tree, rel) if _has_wildcard(rel) else [rel]
            for m in names:
                try:
                    info = tree.stat(m or ".")
                except OSError:
                    raise BuildFileError(
                        f"{cmd} failed: file not found in build context or excluded by "
                        f".dockerignore: stat {m or '.'}: file does not exist"
                    ) from None
                name = posixpath.basename(m) if m else ""
                keep = ""
                if parents:
                    keep = posixpath.relpath(m or ".", pivot or ".")
                    keep = "" if keep == "." else keep
                    name = keep or name
                out.append(Source(root, "/" + m, name, stat.S_ISDIR(info.st_mode), keep))
    return out


def file_digest(src: Source) -> str:
    """C{sha256:<hex>} of a regular file (ADD --checksum). Blocking."""
    h = hashlib.sha256()
    with InRoot(src.root) as tree, tree.at(src.path) as (dirfd, name):
        _hash_file(h, dirfd, name)
    return "sha256:" + h.hexdigest()


def _glob(tree: InRoot, pattern: str) -> list[str]:
    """Every path in C{tree} matching C{pattern} (Go filepath.Match per element)."""
    results = [""]
    for part in pattern.split("/"):
        nxt = []
        for base in results:
            if not _has_wildcard(part):
                cand = posixpath.join(base, part) if base else part
                if tree.exists(cand, follow=False):
                    nxt.append(cand)
                continue
            try:
                fd = tree.open(base or ".", os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue
            try:
                names = sorted(os.listdir(fd))
            finally:
                os.close(fd)
            nxt.extend(
                posixpath.join(base, nm) if base else nm
                for nm in names
                if fnmatch.fnmatchcase(nm, part)
            )
        results = nxt
    return results


def walk(tree: InRoot, path: str) -> Iterator[tuple[str, os.stat_result, int, str]]:
    """C{(rel, lstat, dirfd, name)} for C{path} (its top followed inside C{tree}; C{rel} and
    C{name} empty, C{dirfd} its own C{O_PATH} descriptor) and, for a directory, everything below
    it, never following a link: each directory's entries in name order, then its
    subdirectories'. The descriptors are valid until the next item."""
    top = tree.open(path, os.O_PATH)
    try:
        info = os.fstat(top)
        yield "", info, top, ""
        if stat.S_ISDIR(info.st_mode):
            d = open_dir(top, "")
            try:
                yield from _walk_below(d, "")
            finally:
                os.close(d)
    finally:
        os.close(top)


def _walk_below(dirfd: int, rel: str) -> Iterator[tuple[str, os.stat_result, int, str]]:
    subdirs = []
    for name in sorted(os.listdir(dirfd)):
        info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        yield posixpath.join(rel, name), info, dirfd, name
        if stat.S_ISDIR(info.st_mode):
            subdirs.append(name)
    for name in subdirs:
        sub = open_dir(dirfd, name)
        try:
            yield from _walk_below(sub, posixpath.join(rel, name))
        finally:
            os.close(sub)


def _hash_file(h: hashlib._Hash, dirfd: int, name: str) -> None:
    fd = open_regular(dirfd, name)
    try:
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
    finally:
        os.close(fd)


def hash_sources(sources: list[Source]) -> str:
    """A digest of the sources' names, types, modes, link targets and contents (mtimes and owners
    excluded), the COPY/ADD part of the cache key, written as dockerd writes it in the history:
    C{file:<hex>} or C{dir:<hex>} for one source, C{multi:<hex>} for several.

    @raise BuildFileError: a source cannot be read.
    """
    hashes = []
    for src in sources:
        h = hashlib.sha256()
        h.update(b"\x00src\x00" + src.name.encode("utf-8", "surrogateescape"))
        try:
            with InRoot(src.root) as tree:
                for rel, st, dirfd, name in walk(tree, src.path):
                    h.update(b"\x00" + rel.encode("utf-8", "surrogateescape"))
                    h.update(f"\x00{stat.S_IFMT(st.st_mode)}:{stat.S_IMODE(st.st_mode):o}".encode())
                    if stat.S_ISLNK(st.st_mode):
                        h.update(os.readlink(name, dir_fd=dirfd).encode("utf-8", "surrogateescape"))
                    elif stat.S_ISREG(st.st_mode):
                        h.update(f":{st.st_size}:".encode())
                        _hash_file(h, dirfd, name)
        except OSError as e:
            raise BuildFileError(f"failed to read {src.path}: {intar.reason(e)}") from None
        except RecursionError:
            raise BuildFileError(f"failed to read {src.path}: too deeply nested") from None
        hashes.append(("dir:" if src.is_dir else "file:") + h.hexdigest())
    if len(hashes) == 1:
        return hashes[0]
    return "multi:" + hashlib.sha256(",".join(hashes).encode()).hexdigest()


# --- owners --------------------------------------------------------------------------------------


def _lookup(root: str, file: str, name: str) -> tuple[int, int] | None:
    """C{(id, primary gid)} of C{name} in the root's C{/etc/<file>}, read inside the root (a
    regular file only, size-capped: a link or device there never reaches the host's)."""
    try:
        with InRoot(root) as tree:
            data = tree.read_small(f"/etc/{file}", MAX_ACCOUNTS)
    except OSError:
        return None
    if data is None:
        return None
    for line in data.decode("utf-8", "replace").split("\n"):
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name:
            try:
                gid = int(fields[3]) if file == "passwd" and len(fields) > 3 else -1
                return int(fields[2]), gid
            except ValueError:
                return None
    return None


def parse_chown(spec: str, root: str) -> tuple[int, int]:
    """C{user[:group]}, numeric or looked up in the destination's C{/etc/passwd} and C{/etc/group}.

    @raise BuildFileError: an unknown name.
    """
    user, _, group = spec.partition(":")
    if user.isdigit():
        uid, primary = int(user), int(user)
    else:
        found = _lookup(root, "passwd", user)
        if found is None:
            raise BuildFileError(
                "unable to convert uid/gid chown string to host mapping: can't find uid for "
                f"user {user}: no such user: {user}"
            )
        uid, primary = found
    if not group:
        return uid, primary if not user.isdigit() else uid
    if group.isdigit():
        return uid, int(group)
    g = _lookup(root, "group", group)
    if g is None:
        raise BuildFileError(
            "unable to convert uid/gid chown string to host mapping: can't find gid for "
            f"group {group}: no such group: {group}"
        )
    return uid, g[0]


def parse_chmod(spec: str) -> int:
    """An octal C{--chmod} value. @raise BuildFileError: not octal or above 07777."""
    try:
        mode = int(spec, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise BuildFileError(
            f"invalid chmod parameter: '{spec}'. it should be octal string and between 0 and 07777"
        )
    return mode


# --- scratch files (heredocs, downloads) -------------------------------------------------------


def write_file(dir_: str, name: str, content: bytes, mode: int = 0o644) -> Source:
    """A heredoc body as a source file: written into the daemon's scratch directory C{dir_}
    under a generated name (the Dockerfile's C{name} is only what it is copied as).

    @raise BuildFileError: C{name} is not a plain file name.
    """
    if not valid_file_name(name):
        raise BuildFileError(f"invalid heredoc name {name!r}: it must be a plain file name")
    fd, path = tempfile.mkstemp(prefix="heredoc-", dir=dir_)
    try:
        os.write(fd, content)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return Source(dir_, "/" + os.path.basename(path), name, False)


def download(url: str, dir_: str, timeout: float = 60.0) -> Source:
    """ADD from a URL: fetch it into C{dir_} (0600) under a generated name; it is copied under
    the URL path's last element.

    @raise BuildFileError: the request failed.
    """
    parsed = urllib.parse.urlsplit(url)
    name = posixpath.basename(parsed.path)
    if not valid_file_name(name):
        name = "__unnamed__"
    fd, path = tempfile.mkstemp(prefix="url-", dir=dir_)
    try:
        with os.fdopen(fd, "wb") as out:
            req = urllib.request.Request(url, headers={"User-Agent": "pyd-builder"})  # noqa: S310
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                shutil.copyfileobj(resp, out, 1 << 20)
                last = resp.headers.get("Last-Modified")
    except urllib.error.HTTPError as e:
        os.unlink(path)
        raise BuildFileError(f"failed to GET {url} with status {e.code}: {e.reason}") from None
    except (OSError, ValueError, http.client.HTTPException):
        os.unlink(path)
        raise BuildFileError(f"failed to download {url}: the request failed") from None
    os.chmod(path, 0o600)
    if last:
        from email.utils import parsedate_to_datetime

        try:
            ts = parsedate_to_datetime(last).timestamp()
            os.utime(path, (ts, ts))
        except (
            TypeError,
            ValueError,
        ):  # no usable Last-Modified: the file keeps its download time, as BuildKit does
            pass
    return Source(dir_, "/" + os.path.basename(path), name, False)


def remove_tree(path: str) -> None:
    """rmtree that tolerates a missing path (it never follows a link: Python's fd-based rmtree)."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:  # already removed: the goal is reached
        pass
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
