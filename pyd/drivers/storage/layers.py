"""The layer store on disk: extracted layers, writable layers, overlay mounts (layer: drivers).

Layout under the storage root::

    tmp/                      staging; everything here is garbage after a crash
    layers/<cache_id>/diff    an extracted, read-only layer (overlay lowerdir)
    layers/<cache_id>/layer.split  its uncompressed tar (sha256 = diff id) without the contents of
                              the files in diff/, to give the exact tar back for save/push
                              (L{pyd.drivers.storage.tarsplit}); keep/ holds files it replaced
    layers/<cache_id>/layer.tar   instead of layer.split, in stores of pyd before 2026-12: the tar
    l/<short>                 short symlinks to layers/<cache_id>/diff (legacy mount fallback)
    containers/<id>/{diff,work,merged}   a container's writable layer and its mount point
    blobs/sha256/<hex>        content-addressed blobs (L{BlobStore})

A layer is extracted into C{tmp/<x>/diff} by the chroot'ed helper (L{pyd.drivers.storage.untar}),
then renamed to C{layers/<cache_id>} in one step; the engine records the row after that, and the
start-up sweep deletes directories that have no row. Methods are blocking unless they return a
Deferred; call them from the io pool. The driver holds no Docker rules.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred

from pyd.core.seams import Blocking
from pyd.drivers import sealed
from pyd.drivers.process import ProcessResult, ProcessRunner
from pyd.drivers.storage import diff as diffmod
from pyd.drivers.storage import overlay, tarsplit
from pyd.drivers.storage.blobs import BlobStore, fsync_dir
from pyd.drivers.trees import force_remove, remove_tree


@attrs.frozen
class FileRange:
    """A layer stored inside a bigger open file (e.g. a member of an uploaded, uncompressed
    archive): extracted from there without copying it out first."""

    fd: int
    offset: int
    length: int


LayerSource = str | FileRange  # a path, or a range of an open file


class ExtractFailed(Exception):
    """The layer could not be extracted (hostile, malformed or truncated); the reason is given."""


@attrs.frozen
class Extracted:
    """What extracting one layer produced."""

    staging: str  # tmp/<x>: holds diff/ and layer.split (and keep/)
    digest: str  # sha256 of the bytes as given (compressed digest)
    diff_id: str  # sha256 of the uncompressed tar
    size: int
    compressed_size: int


class Extractor(Protocol):
    """Runs the untar helper: C{src} (a file or a range of one) into C{dest}, recording the
    plain tar in C{split_dir}/layer.split (L{tarsplit})."""

    def extract(self, src: LayerSource, dest: str, split_dir: str) -> Deferred[dict[str, Any]]:
        """Fire with the helper's JSON result. @raise ExtractFailed: extraction failed."""
        ...


class HelperExtractor:
    """The real L{Extractor}: the L{pyd.drivers.storage.untar} helper with the file on stdin."""

    def __init__(
        self,
        runner: ProcessRunner,
        python: str = sys.executable,
        max_size: int = 0,
        keep_free: int = 0,
    ) -> None:
        self._runner = runner
        self._python = python
        self._max_size = max_size  # expanded bytes per layer (0: no limit)
        self._keep_free = keep_free  # bytes the filesystem keeps free (0: no reserve)

    def extract(self, src: LayerSource, dest: str, split_dir: str) -> Deferred[dict[str, Any]]:
        """Spawn the helper (it chroots into C{dest})."""
        # isolated, without site-packages (sealed before it enters the layer: see untar)
        argv = sealed.helper_argv("pyd.drivers.storage.untar", dest, "--split", split_dir)
        argv[0] = self._python
        if self._max_size:
            argv += ["--max-size", str(self._max_size)]
        if self._keep_free:
            argv += ["--keep-free", str(self._keep_free)]
        if isinstance(src, FileRange):
            fd = os.dup(src.fd)
            argv += ["--range", f"{src.offset}:{src.length}"]
        else:
            fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        try:
            d = self._runner.run(
                argv,
                child_fds={0: fd},
            )
        except BaseException:
            os.close(fd)
            raise

        def done(result: ProcessResult) -> dict[str, Any]:
            os.close(fd)
            if result.rc != 0:
                msg = result.stderr.decode("utf-8", "replace").strip().splitlines()
                raise ExtractFailed(msg[-1] if msg else f"untar exited {result.rc}")
            value: dict[str, Any] = json.loads(result.stdout)
            return value

        def failed(f: Any) -> Any:
            try:
                os.close(fd)
            except OSError:  # best effort: the extraction failure is what is reported
                pass
            return f

        return d.addCallbacks(done, failed)


class InProcessExtractor:
    """An L{Extractor} for unit tests: same code, no chroot, run through a L{Blocking}."""

    def __init__(self, blocking: Blocking, max_size: int = 0, keep_free: int = 0) -> None:
        self._blocking = blocking
        self._max_size = max_size
        self._keep_free = keep_free

    def extract(self, src: LayerSource, dest: str, split_dir: str) -> Deferred[dict[str, Any]]:
        """Extract in this process."""
        from pyd.drivers.storage import untar

        def thd() -> dict[str, Any]:
            staging_fd = os.open(split_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                with open(os.path.join(split_dir, tarsplit.SPLIT_NAME), "xb") as record:
                    out = tarsplit.SplitWriter(record, staging_fd)
                    if isinstance(src, FileRange):
                        reader = untar.RangeReader(src.fd, src.offset, src.length)
                        return untar.run(dest, reader, out, chroot=False,
                                         max_size=self._max_size, keep_free=self._keep_free)  # fmt: skip
                    with open(src, "rb") as f:
                        return untar.run(dest, f, out, chroot=False,
                                         max_size=self._max_size, keep_free=self._keep_free)  # fmt: skip
            except untar.UntarError as e:
                raise ExtractFailed(str(e)) from e
            finally:
                os.close(staging_fd)

        return self._blocking.run(thd)


class LayerStore:
    """Directories of layers and writable layers under C{root}."""

    def __init__(
        self,
        root: str,
        extractor: Extractor,
        runner: ProcessRunner | None = None,
        use_fsconfig: bool | None = None,
    ) -> None:
        self.root = root
        self.tmp = os.path.join(root, "tmp")
        self.layers = os.path.join(root, "layers")
        self.links = os.path.join(root, "l")
        self.containers = os.path.join(root, "containers")
        self.empty = os.path.join(root, "empty")
        self.blobs = BlobStore(root)
        self._extractor = extractor
        self._runner = runner
        self.use_fsconfig = (
            overlay.kernel_supports_lowerdir_plus() if use_fsconfig is None else use_fsconfig
        )

    # --- housekeeping -----------------------------------------------------------------------

    def ensure_dirs(self) -> None:
        """Create the layout."""
        for d in (self.tmp, self.layers, self.links, self.containers, self.empty):
            os.makedirs(d, mode=0o700, exist_ok=True)
        self.blobs.ensure_dirs()

    def sweep(self, known_layers: set[str], known_containers: set[str]) -> list[str]:
        """Delete staging leftovers and directories without rows; return what was removed."""
        removed: list[str] = []
        self.ensure_dirs()
        for name in os.listdir(self.tmp):
            p = os.path.join(self.tmp, name)
            force_remove(p)
            removed.append(p)
        for name in os.listdir(self.layers):
            if name not in known_layers:
                p = os.path.join(self.layers, name)
                force_remove(p)
                removed.append(p)
        for name in os.listdir(self.links):
            p = os.path.join(self.links, name)
            if not os.path.exists(p):  # dangling: its layer is gone
                os.unlink(p)
        for name in os.listdir(self.containers):
            if name not in known_containers:
                p = os.path.join(self.containers, name)
                overlay.unmount(os.path.join(p, "merged"))
                force_remove(p)
                removed.append(p)
        return removed

    def staging_dir(self) -> str:
        """A fresh directory under C{tmp/}."""
        os.makedirs(self.tmp, mode=0o700, exist_ok=True)
        return tempfile.mkdtemp(prefix="s-", dir=self.tmp)

    def staging_file(self) -> str:
        """A fresh empty file under C{tmp/}."""
        os.makedirs(self.tmp, mode=0o700, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="f-", dir=self.tmp)
        os.close(fd)
        return path

    def discard(self, path: str) -> None:
        """Remove a staging file or directory (no error when gone)."""
        force_remove(path)

    # --- read-only layers -------------------------------------------------------------------

    def diff_dir(self, cache_id: str) -> str:
        """The extracted content of a layer."""
        return os.path.join(self.layers, cache_id, "diff")

    def layer_tar_size(self, cache_id: str) -> int:
        """The size of a layer's uncompressed tar."""
        return tarsplit.layer_tar_size(os.path.join(self.layers, cache_id))

    def open_layer_tar(self, cache_id: str) -> tarsplit.LayerTar:
        """A layer's uncompressed tar, byte for byte, as a stream (close it)."""
        return tarsplit.open_layer_tar(os.path.join(self.layers, cache_id))

    def prepare_extract(self) -> tuple[str, str]:
        """A staging dir with an empty C{diff/} (mode 0755): (staging, diff)."""
        staging = self.staging_dir()
        dest = os.path.join(staging, "diff")
        os.mkdir(dest, 0o755)
        os.chmod(dest, 0o755)  # noqa: S103 - a root filesystem is world-readable
        return staging, dest

    async def extract(self, src_path: LayerSource) -> Extracted:
        """Extract the (maybe compressed) layer tar C{src_path} into a new staging dir.

        The caller checks the digests, then calls L{commit_layer} or L{discard}.
        @raise ExtractFailed: the helper refused or failed; nothing is left behind.
        """
        staging, dest = self.prepare_extract()
        try:
            r = await self._extractor.extract(src_path, dest, staging)
        except BaseException:
            force_remove(staging)
            raise
        return Extracted(
            staging=staging,
            digest=r["digest"],
            diff_id=r["diff_id"],
            size=int(r["size"]),
            compressed_size=int(r["compressed_size"]),
        )

    def commit_layer(self, staging: str, cache_id: str) -> None:
        """Move an extracted layer into place (atomic rename), then persist the rename."""
        final = os.path.join(self.layers, cache_id)
        os.replace(staging, final)
        fsync_dir(self.layers)

    def remove_layer(self, cache_id: str) -> None:
        """Delete a layer's directory and its short link."""
        link_file = os.path.join(self.layers, cache_id, "link")
        try:
            with open(link_file) as f:
                short = f.read().strip()
            if short:
                os.unlink(os.path.join(self.links, short))
        except OSError:  # no short link (never mounted with one): nothing to remove
            pass
        force_remove(os.path.join(self.layers, cache_id))

    def short_link(self, cache_id: str) -> str:
        """The C{l/<short>} name of a layer (created on first use)."""
        link_file = os.path.join(self.layers, cache_id, "link")
        try:
            with open(link_file) as f:
                short = f.read().strip()
            if short and os.path.islink(os.path.join(self.links, short)):
                return "l/" + short
        except FileNotFoundError:  # no link file yet: one is made below
            pass
        import base64

        short = base64.b32encode(os.urandom(16)).decode().rstrip("=")[:26]
        os.symlink(os.path.join("..", "layers", cache_id, "diff"), os.path.join(self.links, short))
        with open(link_file, "w") as f:
            f.write(short)
        return "l/" + short

    # --- writable layers --------------------------------------------------------------------

    def rw_dir(self, container_id: str) -> str:
        """A container's directory."""
        return os.path.join(self.containers, container_id)

    def upper_dir(self, container_id: str) -> str:
        """A container's overlay upper dir (its changes)."""
        return os.path.join(self.containers, container_id, "diff")

    def merged_dir(self, container_id: str) -> str:
        """Where a container's root filesystem gets mounted."""
        return os.path.join(self.containers, container_id, "merged")

    def create_rw(self, container_id: str) -> None:
        """Make C{containers/<id>/{diff,work,merged}} (idempotent)."""
        base = self.rw_dir(container_id)
        for sub in ("diff", "work", "merged"):
            os.makedirs(os.path.join(base, sub), mode=0o755, exist_ok=True)
        os.chmod(os.path.join(base, "diff"), 0o755)  # noqa: S103 - the container's root dir

    def is_mounted(self, container_id: str) -> bool:
        """Whether the container's root filesystem is mounted."""
        return os.path.ismount(self.merged_dir(container_id))

    def mount_rw(self, container_id: str, lower_cache_ids: Sequence[str]) -> str:
        """Mount the overlay (C{lower_cache_ids} top-most first) with the new mount API.

        Blocking. Callers on kernels without C{lowerdir+} use L{mount_rw_legacy} instead.
        """
        target = self.merged_dir(container_id)
        if os.path.ismount(target):
            return target
        base = self.rw_dir(container_id)
        lowers = [self.diff_dir(c) for c in lower_cache_ids] or [self.empty]
        overlay.mount_overlay_fsconfig(
            lowers, os.path.join(base, "diff"), os.path.join(base, "work"), target
        )
        return target

    def legacy_mount_argv(self, container_id: str, lower_cache_ids: Sequence[str]) -> list[str]:
        """The C{mount(8)} command (run with cwd = storage root) for kernels before 6.8."""
        base = os.path.relpath(self.rw_dir(container_id), self.root)
        shorts = [self.short_link(c) for c in lower_cache_ids] or ["empty"]
        opts = overlay.legacy_mount_options(shorts, f"{base}/diff", f"{base}/work")
        return ["mount", "-t", "overlay", "overlay", "-o", opts, self.merged_dir(container_id)]

    async def mount_rw_legacy(
        self, blocking: Blocking, container_id: str, lower_cache_ids: Sequence[str]
    ) -> str:
        """Mount through C{mount(8)} with short relative lowerdirs (Docker's page-size trick)."""
        target = self.merged_dir(container_id)
        if await blocking.run(os.path.ismount, target):
            return target
        argv = await blocking.run(self.legacy_mount_argv, container_id, lower_cache_ids)
        assert self._runner is not None
        result = await self._runner.run(argv, cwd=self.root)
        if result.rc != 0:
            raise overlay.MountError(
                "mount overlay: " + result.stderr.decode("utf-8", "replace").strip(), 0
            )
        return target

    def unmount_rw(self, container_id: str) -> None:
        """Unmount the container's root filesystem (no error when not mounted)."""
        overlay.unmount(self.merged_dir(container_id))

    def remove_rw(self, container_id: str) -> None:
        """Unmount and delete a writable layer."""
        base = self.rw_dir(container_id)
        if not os.path.exists(base):
            return
        overlay.unmount(os.path.join(base, "merged"))
        remove_tree(base)

    def rw_changes(
        self, container_id: str, lower_cache_ids: Sequence[str]
    ) -> list[tuple[str, int]]:
        """C{docker diff} of a writable layer."""
        return diffmod.changes(
            self.upper_dir(container_id), [self.diff_dir(c) for c in lower_cache_ids]
        )

    def rw_size(self, container_id: str) -> int:
        """Bytes written by the container (C{SizeRw})."""
        return diffmod.dir_size(self.upper_dir(container_id))

    def export_rw(self, container_id: str, lower_cache_ids: Sequence[str]) -> tuple[str, int]:
        """Write the writable layer's changes as a layer tar in C{tmp/}.

        @return: its path and how many entries it holds.
        """
        path = self.staging_file()
        try:
            with open(path, "w+b") as out:
                count = diffmod.write_layer_tar(
                    self.upper_dir(container_id),
                    out,
                    [self.diff_dir(c) for c in lower_cache_ids],
                )
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            force_remove(path)
            raise
        return path, count
