"""File work of a build, all blocking (run it through the io L{Blocking}; layer: engine).

Reading the uploaded context tar safely, applying C{.dockerignore}, resolving COPY/ADD sources inside
the context (or another stage's root), hashing them for the cache, and copying them into a root
filesystem with the owners and modes the classic builder gives. Paths inside a root filesystem are
resolved like a chroot would (L{resolve_in_root}): symlinks are followed but never leave the root.
"""

from __future__ import annotations

import bz2
import errno
import fnmatch
import gzip
import hashlib
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import IO, BinaryIO, cast

import attrs

from pyd.core.errors import InvalidParameter
from pyd.engine.build.ignore import PatternMatcher, read_patterns

MAX_SYMLINKS = 255


class BuildFileError(InvalidParameter):
    """A COPY/ADD or context problem the user must fix (the message is dockerd's)."""


# --- path resolution ---------------------------------------------------------------------------


def clean_rel(path: str) -> str:
    """C{path} made relative to a root and cleaned (C{..} cannot climb above the root)."""
    p = posixpath.normpath("/" + path)
    while p.startswith("//"):
        p = p[1:]
    return p.lstrip("/")


def resolve_in_root(root: str, path: str, follow_last: bool = True) -> str:
    """The host path of C{path} inside C{root}, following symlinks as if C{root} were C{/}."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if resolved:
                resolved.pop()
            continue
        host = os.path.join(root, *resolved, name)
        if not parts and not follow_last:
            resolved.append(name)
            break
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            resolved.append(name)
            resolved.extend(p for p in parts if p not in ("", "."))
            parts = []
            break
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise BuildFileError(f"too many symlinks resolving {path}")
            target = os.readlink(host)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(name)
    # Normalise any ".." left in the tail of a missing path.
    rel = clean_rel("/".join(resolved))
    return os.path.join(root, rel) if rel else root


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


def extract_context(src: BinaryIO, dest: str) -> int:
    """Extract the uploaded context tar into the empty directory C{dest}; return bytes written.

    Only directories, regular files, symlinks and hardlinks are created; owners are not kept
    (the CLI sends 0:0). An entry whose name leaves the root is refused.

    @raise BuildFileError: a broken tar or an entry escaping the context.
    """
    total = 0
    if src is None or not src.read(1):
        return 0  # an empty body: an empty context
    src.seek(0)
    stream = _open_maybe_compressed(src)
    try:
        tf = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - closed in the finally below
    except tarfile.TarError as e:
        raise BuildFileError(f"failed to read the build context: {e}") from e
    dirs: list[tuple[str, int, int]] = []
    try:
        while True:
            try:
                m = tf.next()
            except tarfile.ReadError as e:
                # The CLI's tar of a context with an outside Dockerfile ends right after the
                # last member's data (no padding, no end blocks); that is the end.
                if "unexpected end of data" in str(e):
                    break
                raise
            if m is None:
                break
            name = m.name
            norm = posixpath.normpath(name)
            if name.startswith("/") or norm == ".." or norm.startswith("../"):
                raise BuildFileError(
                    f"Error processing tar file: invalid build context entry {name!r}: "
                    "it points outside of the context"
                )
            rel = clean_rel(name)
            if not rel:
                continue
            parent = resolve_in_root(dest, posixpath.dirname(rel))
            os.makedirs(parent, exist_ok=True)
            target = os.path.join(parent, posixpath.basename(rel))
            if m.isdir():
                if not os.path.isdir(target) or os.path.islink(target):
                    _unlink_any(target)
                    os.mkdir(target, 0o755)
                dirs.append((target, m.mode & 0o7777, int(m.mtime)))
                continue
            _unlink_any(target)
            if m.isreg():
                f = tf.extractfile(m)
                assert f is not None
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(f, out, 1 << 20)
                    if out.tell() != m.size:
                        raise BuildFileError(
                            f"Error processing tar file: unexpected EOF in {name!r}"
                        )
                os.chmod(target, m.mode & 0o7777)
                os.utime(target, (m.mtime, m.mtime))
                total += m.size
            elif m.issym():
                os.symlink(m.linkname, target)
            elif m.islnk():
                lrel = clean_rel(m.linkname)
                src_path = resolve_in_root(dest, lrel, follow_last=False)
                if not os.path.lexists(src_path):
                    raise BuildFileError(
                        f"Error processing tar file: hardlink {name!r} to missing {m.linkname!r}"
                    )
                os.link(src_path, target, follow_symlinks=False)
            # devices, fifos: not meaningful in a build context; skipped
    except (tarfile.TarError, EOFError, OSError, zlib_error()) as e:
        raise BuildFileError(f"Error processing tar file: {e}") from e
    finally:
        tf.close()
    for path, mode, mtime in reversed(dirs):
        os.chmod(path, mode or 0o755)
        os.utime(path, (mtime, mtime))
    return total


def zlib_error() -> type[Exception]:
    """The exception class a corrupt gzip stream raises."""
    import zlib

    return zlib.error


def _unlink_any(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def apply_dockerignore(root: str, keep: tuple[str, ...] = ()) -> list[str]:
    """Delete what C{root/.dockerignore} excludes (the CLI already filtered; other clients may
    not). Files named in C{keep} (the Dockerfile) survive. Returns the removed paths."""
    path = os.path.join(root, ".dockerignore")
    try:
        with open(path, "rb") as f:
            patterns = read_patterns(f.read())
    except (FileNotFoundError, IsADirectoryError):
        return []
    if not patterns:
        return []
    matcher = PatternMatcher(patterns)
    removed: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        reldir = os.path.relpath(dirpath, root)
        reldir = "" if reldir == "." else reldir
        for name in list(dirnames):
            rel = posixpath.join(reldir, name)
            if matcher.matches(rel) and not matcher.has_exclusions:
                shutil.rmtree(os.path.join(dirpath, name))
                dirnames.remove(name)
                removed.append(rel)
        for name in filenames:
            rel = posixpath.join(reldir, name)
            if rel in keep:
                continue
            if matcher.matches(rel):
                os.unlink(os.path.join(dirpath, name))
                removed.append(rel)
    if matcher.has_exclusions:
        # Remove excluded directories that ended up empty.
        for dirpath, _dirnames, _filenames in os.walk(root, topdown=False):
            rel = os.path.relpath(dirpath, root)
            if rel != "." and matcher.matches(rel) and not os.listdir(dirpath):
                os.rmdir(dirpath)
    return removed


# --- sources and hashing -----------------------------------------------------------------------


@attrs.frozen
class Source:
    """One resolved COPY/ADD source: its host path and the name it is copied under."""

    path: str  # host path (resolved, inside the source root)
    name: str  # base name used when the destination is a directory
    is_dir: bool


def _has_wildcard(p: str) -> bool:
    return any(c in p for c in "*?[")


def resolve_sources(root: str, patterns: list[str], cmd: str) -> list[Source]:
    """Resolve COPY/ADD source arguments against C{root} (the context, or another stage's root).

    @raise BuildFileError: a path outside the root, or a missing file (dockerd's messages).
    """
    out: list[Source] = []
    for orig in patterns:
        norm = posixpath.normpath(orig)
        if norm == ".." or norm.startswith("../"):
            raise BuildFileError(
                f"{cmd} failed: forbidden path outside the build context: {orig} ()"
            )
        rel = clean_rel(orig)
        if _has_wildcard(rel):
            matches = _glob(root, rel)
            for m in matches:
                host = resolve_in_root(root, m)
                out.append(Source(host, posixpath.basename(m), os.path.isdir(host)))
            continue
        host = resolve_in_root(root, rel)
        if not os.path.lexists(host) or (os.path.islink(host) and not os.path.exists(host)):
            raise BuildFileError(
                f"{cmd} failed: file not found in build context or excluded by .dockerignore: "
                f"stat {rel or '.'}: file does not exist"
            )
        name = posixpath.basename(rel) if rel else ""
        out.append(Source(host, name, os.path.isdir(host)))
    return out


def _glob(root: str, pattern: str) -> list[str]:
    """Every path under C{root} matching C{pattern} (Go filepath.Match per element)."""
    parts = pattern.split("/")
    results = [""]
    for part in parts:
        nxt = []
        for base in results:
            host = resolve_in_root(root, base) if base else root
            if not _has_wildcard(part):
                cand = posixpath.join(base, part) if base else part
                if os.path.lexists(resolve_in_root(root, cand, follow_last=False)):
                    nxt.append(cand)
                continue
            try:
                names = sorted(os.listdir(host))
            except (NotADirectoryError, FileNotFoundError):
                continue
            for nm in names:
                if fnmatch.fnmatchcase(nm, part) and not (nm.startswith(".") and False):
                    nxt.append(posixpath.join(base, nm) if base else nm)
        results = nxt
    return results


def _hash_file(h: hashlib._Hash, path: str) -> None:
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)


def hash_sources(sources: list[Source]) -> str:
    """A digest of the sources' names, types, modes, link targets and contents (mtimes and owners
    excluded), the COPY/ADD part of the cache key, written as dockerd writes it in the history:
    C{file:<hex>} or C{dir:<hex>} for one source, C{multi:<hex>} for several."""
    hashes = []
    for src in sources:
        h = hashlib.sha256()
        h.update(b"\x00src\x00" + src.name.encode("utf-8", "surrogateescape"))
        for rel, st, full in _walk(src.path):
            h.update(b"\x00" + rel.encode("utf-8", "surrogateescape"))
            h.update(f"\x00{stat.S_IFMT(st.st_mode)}:{stat.S_IMODE(st.st_mode):o}".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(full).encode("utf-8", "surrogateescape"))
            elif stat.S_ISREG(st.st_mode):
                h.update(f":{st.st_size}:".encode())
                _hash_file(h, full)
        hashes.append(("dir:" if src.is_dir else "file:") + h.hexdigest())
    if len(hashes) == 1:
        return hashes[0]
    return "multi:" + hashlib.sha256(",".join(hashes).encode()).hexdigest()


def _walk(path: str) -> Iterator[tuple[str, os.stat_result, str]]:
    st = os.stat(path)  # a named source is followed
    yield "", st, path
    if stat.S_ISDIR(st.st_mode):
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            rel = os.path.relpath(dirpath, path)
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                yield posixpath.normpath(posixpath.join(rel, name)), os.lstat(full), full


# --- owners --------------------------------------------------------------------------------------


def _lookup(root: str, file: str, name: str) -> tuple[int, int] | None:
    path = resolve_in_root(root, f"/etc/{file}")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 3 and fields[0] == name:
                    gid = int(fields[3]) if file == "passwd" and len(fields) > 3 else -1
                    return int(fields[2]), gid
    except (OSError, ValueError):
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


# --- copying into a root filesystem ---------------------------------------------------------------


@attrs.frozen
class CopyOptions:
    """How to copy: owner (None = keep the source's), mode override, unpack local archives."""

    owner: tuple[int, int] | None = (0, 0)
    mode: int | None = None
    unpack: bool = False
    chowned: bool = False  # --chown given: also applies to unpacked archive members


def _mkdir_all(root: str, rel: str, owner: tuple[int, int] | None, mode: int | None) -> str:
    """Create C{rel} under C{root} (and missing parents, 0755 and owned like the copy)."""
    final = resolve_in_root(root, rel)
    resolved_rel = os.path.relpath(final, root)
    host = root
    if resolved_rel != ".":
        for part in resolved_rel.split("/"):
            host = os.path.join(host, part)
            if os.path.isdir(host) and not os.path.islink(host):
                continue
            if os.path.lexists(host):
                raise BuildFileError(f"cannot copy to non-directory: {host[len(root) :] or '/'}")
            os.mkdir(host, 0o755)
            os.chmod(host, mode if mode is not None else 0o755)
            if owner is not None:
                os.lchown(host, *owner)
    return final


def _apply_meta(path: str, st: os.stat_result, opts: CopyOptions) -> None:
    if opts.owner is not None:
        os.lchown(path, *opts.owner)
    else:
        os.lchown(path, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        mode = opts.mode if opts.mode is not None else stat.S_IMODE(st.st_mode)
        os.chmod(path, mode)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_entry(src: str, dst: str, opts: CopyOptions) -> None:
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        if os.path.lexists(dst) and not os.path.isdir(dst):
            os.unlink(dst)
        if not os.path.isdir(dst):
            os.mkdir(dst, 0o755)
        for name in sorted(os.listdir(src)):
            _copy_entry(os.path.join(src, name), os.path.join(dst, name), opts)
        _apply_meta(dst, st, opts)
        return
    if os.path.isdir(dst) and not os.path.islink(dst):
        raise BuildFileError(f"cannot replace to directory {dst} with file")
    if os.path.lexists(dst):
        os.unlink(dst)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        os.mknod(dst, st.st_mode, st.st_rdev)
    else:
        return
    _apply_meta(dst, st, opts)


def is_archive(path: str) -> bool:
    """Whether a local file is a tar archive (plain, gzip, bzip2 or xz), judged by content."""
    try:
        with open(path, "rb") as f:
            head = f.read(262)
    except OSError:
        return False
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        try:
            with tarfile.open(path, "r:*") as tf:
                tf.next()
            return True
        except (tarfile.TarError, OSError, EOFError, zlib_error()):
            return False
    return len(head) >= 262 and head[257:262] == b"ustar"


def _unpack(archive: str, root: str, dest_rel: str, opts: CopyOptions) -> None:
    """Extract a local archive into C{dest_rel}, keeping its owners unless --chown."""
    with tarfile.open(archive, "r:*") as tf:
        for m in tf:
            rel = clean_rel(posixpath.join(dest_rel, m.name))
            parent = resolve_in_root(root, posixpath.dirname(rel))
            os.makedirs(parent, exist_ok=True)
            target = os.path.join(parent, posixpath.basename(rel))
            owner = opts.owner if opts.chowned and opts.owner is not None else (m.uid, m.gid)
            if m.isdir():
                if not os.path.isdir(target):
                    _unlink_any(target)
                    os.mkdir(target, 0o755)
            else:
                _unlink_any(target)
                if m.isreg():
                    f = tf.extractfile(m)
                    assert f is not None
                    with open(target, "wb") as out:
                        shutil.copyfileobj(f, out, 1 << 20)
                elif m.issym():
                    os.symlink(m.linkname, target)
                elif m.islnk():
                    os.link(
                        resolve_in_root(
                            root, clean_rel(posixpath.join(dest_rel, m.linkname)), follow_last=False
                        ),
                        target,
                    )
                    continue
                elif m.isfifo():
                    os.mkfifo(target)
                elif m.ischr() or m.isblk():
                    kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                    os.mknod(target, kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor))
                else:
                    continue
            os.lchown(target, *owner)
            if not m.issym():
                os.chmod(target, m.mode & 0o7777)
                os.utime(target, (m.mtime, m.mtime))


def copy_into(
    root: str,
    sources: list[Source],
    dest: str,
    workdir: str,
    opts: CopyOptions,
    cmd: str = "COPY",
    multi: bool = False,
) -> None:
    """Copy C{sources} to C{dest} inside the root filesystem C{root} with dockerd's rules:
    a directory's contents are copied; a file lands inside C{dest} when it ends with C{/} or is
    an existing directory; several sources need a directory destination.

    @raise BuildFileError: on a rule violation.
    """
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
        if dest.endswith("/.") or dest == ".":
            dest = dest[:-1]
    dest_is_dir = dest.endswith("/") or dest.endswith("/.")
    dest_rel = clean_rel(dest)
    if (multi or len(sources) > 1) and not dest_is_dir:
        raise BuildFileError(
            f"When using {cmd} with more than one source file, the destination must be a "
            "directory and end with a /"
        )
    host_dest = resolve_in_root(root, dest_rel)
    if os.path.isdir(host_dest):
        dest_is_dir = True
    for src in sources:
        if src.is_dir:
            target = _mkdir_all(root, dest_rel, opts.owner, None)
            for name in sorted(os.listdir(src.path)):
                _copy_entry(os.path.join(src.path, name), os.path.join(target, name), opts)
            continue
        if opts.unpack and is_archive(src.path):
            _mkdir_all(root, dest_rel, opts.owner, None)
            _unpack(src.path, root, dest_rel, opts)
            continue
        if dest_is_dir:
            parent = _mkdir_all(root, dest_rel, opts.owner, None)
            target = os.path.join(parent, src.name)
        else:
            parent = _mkdir_all(root, posixpath.dirname(dest_rel), opts.owner, None)
            target = os.path.join(parent, posixpath.basename(dest_rel))
        st = os.stat(src.path)
        if os.path.isdir(target) and not os.path.islink(target):
            raise BuildFileError(f"cannot replace to directory {target[len(root) :]} with file")
        if os.path.lexists(target):
            os.unlink(target)
        shutil.copyfile(src.path, target)
        _apply_meta(target, st, opts)


def make_workdir(root: str, path: str, owner: tuple[int, int] | None) -> None:
    """WORKDIR: create the directory (0755) if missing."""
    _mkdir_all(root, clean_rel(path), owner, None)


def write_file(dir_: str, name: str, content: bytes, mode: int = 0o644) -> Source:
    """A heredoc body as a source file under C{dir_}."""
    path = os.path.join(dir_, name)
    with open(path, "wb") as f:
        f.write(content)
    os.chmod(path, mode)
    return Source(path, name, False)


def download(url: str, dir_: str, timeout: float = 60.0) -> Source:
    """ADD from a URL: fetch it into C{dir_} (0600), named after the URL path's last element.

    @raise BuildFileError: the request failed.
    """
    parsed = urllib.parse.urlsplit(url)
    name = posixpath.basename(parsed.path) or "__unnamed__"
    fd, path = tempfile.mkstemp(dir=dir_)
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "pyd-builder"})  # noqa: S310
        with urllib.request.urlopen(req, timeout=timeout) as resp, os.fdopen(fd, "wb") as out:  # noqa: S310
            shutil.copyfileobj(resp, out, 1 << 20)
            last = resp.headers.get("Last-Modified")
    except OSError as e:
        os.unlink(path)
        raise BuildFileError(f"failed to download {url}: {e}") from e
    final = os.path.join(dir_, "url-" + hashlib.sha256(url.encode()).hexdigest()[:16])
    os.makedirs(final, exist_ok=True)
    target = os.path.join(final, name)
    os.replace(path, target)
    os.chmod(target, 0o600)
    if last:
        from email.utils import parsedate_to_datetime

        try:
            ts = parsedate_to_datetime(last).timestamp()
            os.utime(target, (ts, ts))
        except (TypeError, ValueError):
            pass
    return Source(target, name, False)


def read_dockerfile(root: str, name: str) -> bytes:
    """The Dockerfile named by the request (relative to the context root).

    @raise BuildFileError: missing (dockerd's C{Cannot locate specified Dockerfile}).
    """
    rel = clean_rel(name)
    path = resolve_in_root(root, rel)
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass
    # dockerd also accepts the lower-case spelling of the default name.
    if name == "Dockerfile":
        try:
            with open(resolve_in_root(root, "dockerfile"), "rb") as f:
                return f.read()
        except OSError:
            pass
    raise BuildFileError(f"Cannot locate specified Dockerfile: {name}")


def remove_tree(path: str) -> None:
    """rmtree that tolerates a missing path."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
