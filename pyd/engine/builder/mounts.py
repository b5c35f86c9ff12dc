"""The mounts of a C{RUN --mount=...} step and the persistent cache-mount store (layer: engine).

Every host path a step container gets is one the daemon made: a cache mount is a directory under
C{<data-root>/builder-cache/<digest of the id>/data} (the id is hashed, never used as a path); a bind
mount is a copy the daemon made of the source (from the context, a stage or an image), resolved
inside its root through L{pyd.drivers.inroot} (a link in the source can never lead outside it), in
the build's scratch directory; a tmpfs is the runtime's. What the step writes into a bind or tmpfs
mount is discarded with it. The stub directories the runtime creates for mount targets that did
not exist are removed before the step is committed, so nothing of a mount is left in the image.

The file work here is blocking: the builder calls it through its io pool.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import time
from typing import Any

import attrs

from pyd.drivers.inroot import InRoot, SpecialFile, copy_tree, remove_at
from pyd.engine.builder import intar
from pyd.engine.builder.frontend import Mount


class MountError(ValueError):
    """A mount that cannot be prepared (the message names container paths only)."""


@attrs.define
class CacheEntry:
    """One cache mount's directory and its bookkeeping."""

    key: str  # directory name under the store
    id: str  # the Dockerfile's id (or target)
    path: str  # the directory mounted into the step
    created: float = 0.0
    last_used: float = 0.0
    usage: int = 0


def _dir_size(path: str) -> int:
    total = 0
    for dirpath, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:  # removed while walking: it takes no space
                pass
    return total


class CacheStore:
    """Cache mounts kept between builds under C{root} (blocking methods; the builder serialises
    C{sharing=locked} users and tracks who uses which entry)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.in_use: dict[str, int] = {}

    def key_of(self, mount: Mount) -> str:
        """The directory name of a cache id: a digest, so an id is never a path."""
        return hashlib.sha256(("cache:" + mount.id).encode()).hexdigest()[:40]

    def _meta_path(self, key: str) -> str:
        return os.path.join(self.root, key, "meta.json")

    def _read_meta(self, key: str) -> dict[str, Any]:
        try:
            with open(self._meta_path(key), encoding="utf-8") as f:
                doc = json.load(f)
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_meta(self, key: str, doc: dict[str, Any]) -> None:
        tmp = self._meta_path(key) + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        os.replace(tmp, self._meta_path(key))

    def open(self, mount: Mount, key: str, seed: tuple[str, str] | None) -> str:
        """The cache directory for C{mount} under C{key} (made on first use: owner, mode and
        the optional seed C{(root, path)} of C{from=}/C{source=} applied then); returns its
        host path. Blocking."""
        base = os.path.join(self.root, key)
        data = os.path.join(base, "data")
        os.makedirs(self.root, 0o700, exist_ok=True)
        now = time.time()
        if not os.path.isdir(data):
            tmp = os.path.join(self.root, f".new-{secrets.token_hex(8)}")
            os.makedirs(os.path.join(tmp, "data"), 0o700)
            try:
                if seed is not None:
                    _seed(seed[0], seed[1], os.path.join(tmp, "data"))
                fd = os.open(os.path.join(tmp, "data"), os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fchmod(fd, mount.mode if mount.mode is not None else 0o755)
                    os.fchown(fd, mount.uid or 0, mount.gid or 0)
                finally:
                    os.close(fd)
                with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
                    json.dump({"id": mount.id, "created": now, "last_used": now, "usage": 0}, f)
                os.rename(tmp, base)
            except BaseException:
                intar_remove(tmp)
                raise
        doc = self._read_meta(key)
        doc["last_used"] = now
        doc["usage"] = int(doc.get("usage", 0)) + 1
        self._write_meta(key, doc)
        return data

    def entries(self) -> list[CacheEntry]:
        """Every cache directory with its bookkeeping. Blocking."""
        out = []
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        for name in names:
            if name.startswith("."):
                continue
            doc = self._read_meta(name)
            out.append(
                CacheEntry(
                    key=name,
                    id=str(doc.get("id", "")),
                    path=os.path.join(self.root, name, "data"),
                    created=float(doc.get("created", 0) or 0),
                    last_used=float(doc.get("last_used", 0) or 0),
                    usage=int(doc.get("usage", 0) or 0),
                )
            )
        return out

    def usage(self) -> list[dict[str, Any]]:
        """C{/system/df}'s C{BuildCache} records (wire shape). Blocking."""
        out = []
        for e in self.entries():
            out.append(
                {
                    "ID": e.key[:25],
                    "Parent": "",
                    "Parents": None,
                    "Type": "exec.cachemount",
                    "Description": f"cached mount {e.id}",
                    "InUse": self.in_use.get(e.key, 0) > 0,
                    "Shared": False,
                    "Size": _dir_size(os.path.join(self.root, e.key)),
                    "CreatedAt": _rfc3339(e.created),
                    "LastUsedAt": _rfc3339(e.last_used) if e.last_used else None,
                    "UsageCount": e.usage,
                }
            )
        return out

    def prune(self) -> tuple[list[str], int]:
        """Remove every cache directory no running step uses; (ids, bytes). Blocking."""
        removed: list[str] = []
        total = 0
        for e in self.entries():
            if self.in_use.get(e.key, 0) > 0:
                continue
            path = os.path.join(self.root, e.key)
            total += _dir_size(path)
            intar_remove(path)
            removed.append(e.key[:25])
        try:
            for name in os.listdir(self.root):
                if name.startswith(".new-"):
                    intar_remove(os.path.join(self.root, name))
        except FileNotFoundError:  # no root yet: no leftovers
            pass
        return removed, total


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


def intar_remove(path: str) -> None:
    """C{rm -rf} of a daemon-owned directory, never following links inside it."""
    parent, name = os.path.split(path.rstrip("/"))
    try:
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    try:
        remove_at(fd, name)
    except FileNotFoundError:  # already removed: the goal is reached
        pass
    finally:
        os.close(fd)


def _seed(root: str, source: str, dest_dir: str) -> None:
    """Copy C{source} of the tree C{root} (resolved inside it) into the new directory."""
    with InRoot(root) as src, InRoot(dest_dir) as dst:
        try:
            copy_tree(src, "/" + source.lstrip("/"), dst, "/", owner=None)
        except SpecialFile:
            raise MountError(f"{source}: a device node or FIFO cannot be mounted") from None
        except FileNotFoundError:
            raise MountError(f"{source}: not found") from None
        except NotADirectoryError:
            raise MountError(f"{source}: not a directory") from None
        except OSError as e:
            raise MountError(f"{source}: {intar.reason(e)}") from None


def bind_copy(root: str, source: str, scratch: str) -> str:
    """A private copy of C{source} (resolved inside the tree C{root}, its top followed there)
    in the build's scratch directory: a directory, or a file in a directory; returns the host
    path to mount. Blocking.

    @raise MountError: the source is missing, or a device node/FIFO.
    """
    base = os.path.join(scratch, "mnt-" + secrets.token_hex(8))
    os.makedirs(base, 0o700)
    src_path = "/" + source.lstrip("/")
    try:
        with InRoot(root) as src:
            info = src.stat(src_path)
    except OSError:
        raise MountError(f"failed to mount {source}: not found") from None
    if stat.S_ISDIR(info.st_mode):
        _seed(root, source, base)
        # The mount shows the top directory's own owner and mode, as the source's.
        os.chown(base, info.st_uid, info.st_gid)
        os.chmod(base, stat.S_IMODE(info.st_mode))
        return base
    if not stat.S_ISREG(info.st_mode):
        raise MountError(f"failed to mount {source}: not a regular file or directory")
    with InRoot(root) as src, InRoot(base) as dst:
        try:
            copy_tree(src, src_path, dst, "/file", owner=None)
        except OSError as e:
            raise MountError(f"failed to mount {source}: {intar.reason(e)}") from None
    return os.path.join(base, "file")


def missing_targets(root: str, targets: list[str]) -> list[str]:
    """For each mount target, the first element of its path missing in the step's root
    filesystem (what the runtime will create as a stub), resolved inside the root. Blocking."""
    out: list[str] = []
    with InRoot(root) as tree:
        for t in targets:
            cur = ""
            for part in (p for p in t.split("/") if p):
                cur = cur + "/" + part
                try:
                    tree.lstat(cur)
                except FileNotFoundError:
                    out.append(cur)
                    break
                except OSError:
                    break
    return out


def remove_stubs(root: str, stubs: list[str], targets: list[str]) -> None:
    """Remove the stubs L{missing_targets} found when they hold only empty stub directories or
    empty files on the way to a mount target (what the step wrote there stays). Blocking."""
    with InRoot(root) as tree:
        for stub in stubs:
            if _only_stub(tree, stub, targets):
                try:
                    tree.remove(stub)
                except OSError:  # a stub that cannot go stays: it is an empty placeholder
                    pass


def _only_stub(tree: InRoot, path: str, targets: list[str]) -> bool:
    try:
        info = tree.lstat(path)
    except OSError:
        return False
    if stat.S_ISREG(info.st_mode):
        return info.st_size == 0 and path in targets
    if not stat.S_ISDIR(info.st_mode):
        return False
    try:
        fd = tree.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        names = os.listdir(fd)
    finally:
        os.close(fd)
    if not names:
        return True
    # Only directories on the way to a target may be inside.
    return all(
        any(t == f"{path}/{n}" or t.startswith(f"{path}/{n}/") for t in targets)
        and _only_stub(tree, f"{path}/{n}", targets)
        for n in names
    )
