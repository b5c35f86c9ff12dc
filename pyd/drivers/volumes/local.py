"""The local volume driver: directories under C{<data-root>/volumes} (layer: drivers).

Each volume is C{<data-root>/volumes/<name>/_data}; a volume created with mount options
(C{type}/C{device}/C{o}) also gets an C{opts.json} next to C{_data} and has that filesystem
mounted on C{_data} while containers use it (through C{mount}/C{umount}, run by
L{pyd.drivers.process}). The driver holds no Docker rules: names, refcounts and events belong
to L{pyd.engine.volumes}.

Crash safety: a volume's directories exist before its row is committed, and a removal deletes the
row first, then renames the directory to a C{.trash-*} entry (names never start with a dot) and
deletes it. A plain volume's new directory is not fsynced: a
power loss that drops it is repaired at start, where the engine makes the directory of a row
that has none again (what it held was lost with it). After a kill -9, L{LocalVolumeDriver.scan} lists the volume directories so the
engine can adopt ones without a row (their data is never lost), and L{sweep_trash} finishes
interrupted deletions.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import stat as st
import struct
from collections.abc import Mapping, Sequence

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from pyd.core.seams import Blocking
from pyd.drivers import inroot
from pyd.drivers.process import ProcessRunner
from pyd.drivers.trees import remove_tree
from pyd.drivers.volumes import copy as _copy
from pyd.drivers.volumes import stage as _stage
from pyd.drivers.volumes.stage import StagingArea

log = Logger()

DATA = "_data"
OPTS_FILE = "opts.json"
_TRASH_PREFIX = ".trash-"
_STAGE_SUFFIX = ".copyup"  # <vol>/_data.copyup: copy-up staging
_STAGE_MARK = "copyup.complete"  # <vol>/copyup.complete: the stage is whole


class VolumeDriverError(Exception):
    """A mount, unmount or filesystem operation failed; the message says what and why."""


@attrs.frozen
class ScannedVolume:
    """A volume directory found on disk (options from its opts.json, if any)."""

    name: str
    options: dict[str, str] | None
    created: int


def _mountinfo_points() -> set[str]:
    points: set[str] = set()
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 4:
                points.add(_unescape(fields[4]))
    return points


def _unescape(path: str) -> str:
    # /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
    if "\\" not in path:
        return path
    out = []
    i = 0
    while i < len(path):
        if path[i] == "\\" and i + 4 <= len(path) and path[i + 1 : i + 4].isdigit():
            out.append(chr(int(path[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_STATX_BASIC_STATS = 0x7FF
_STATX_ATTR_MOUNT_ROOT = 0x2000
# struct statx: stx_attributes at byte 8, stx_attributes_mask at byte 56 (linux/stat.h)
_STATX_SIZE = 256


def _statx_mount_root(path: str) -> bool | None:
    """Whether C{path} (symlinks followed) is the root of a mount, from one statx(2) call
    (Linux 5.8+ reports it, bind mounts of the same filesystem included); None where the
    kernel does not say."""
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    if _libc.statx(_AT_FDCWD, os.fsencode(path), 0, _STATX_BASIC_STATS, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    attributes, mask = struct.unpack_from("=Q", buf, 8)[0], struct.unpack_from("=Q", buf, 56)[0]
    if not mask & _STATX_ATTR_MOUNT_ROOT:
        return None
    return bool(attributes & _STATX_ATTR_MOUNT_ROOT)


def is_mountpoint(path: str) -> bool:
    """Whether something is mounted on C{path} (blocking: one statx call, or a read of
    /proc/self/mountinfo where the kernel does not report mount roots)."""
    try:
        root = _statx_mount_root(path)
    except (OSError, AttributeError):  # gone, or a libc without statx: the mount table says
        root = None
    if root is not None:
        return root
    return os.path.realpath(path) in _mountinfo_points()


@attrs.frozen
class Unlinked:
    """A volume directory renamed out of its name (L{LocalVolumeDriver.unlink_now})."""

    trash: str  # the trash entry, for L{LocalVolumeDriver.purge}
    empty: bool  # its C{_data} held nothing: nothing to wait for


class LocalVolumeDriver:
    """Directories, mounts and copies for the C{local} driver."""

    name = "local"

    def __init__(
        self,
        data_root: str,
        blocking: Blocking,
        runner: ProcessRunner,
        staging_root: str | None = None,
    ) -> None:
        self.root = os.path.join(data_root, "volumes")
        self._blocking = blocking
        self._runner = runner
        # the daemon wires <exec-root>/mounts; tests without one stage under the data root
        self.staging = StagingArea(staging_root or os.path.join(data_root, "mounts"))

    # --- paths -------------------------------------------------------------------------------

    def volume_dir(self, name: str) -> str:
        """C{<root>/<name>}: holds C{_data} and C{opts.json}."""
        return os.path.join(self.root, name)

    def data_path(self, name: str) -> str:
        """C{<root>/<name>/_data}: the Mountpoint clients see."""
        return os.path.join(self.root, name, DATA)

    # --- create / remove ---------------------------------------------------------------------

    def make_now(self, name: str, options: Mapping[str, str] | None = None) -> int:
        """Make the volume's directories (idempotent), on the calling thread, which must not be
        the reactor's; return the creation time. L{create} runs it on the io threads; the
        engine may run it on the DB thread, just before the volume's row is written."""
        vdir = self.volume_dir(name)
        try:
            os.mkdir(vdir, 0o701)
        except FileNotFoundError:  # the first volume: the volumes directory is made first
            os.makedirs(self.root, mode=0o701, exist_ok=True)
            os.mkdir(vdir, 0o701)
        except FileExistsError:  # a volume created before keeps its directory
            pass
        data = os.path.join(vdir, DATA)
        try:
            os.mkdir(data, 0o755)
        except FileExistsError:  # a volume created before keeps its data
            pass
        if options:
            tmp = os.path.join(vdir, OPTS_FILE + ".tmp")
            with open(tmp, "w") as f:
                json.dump(dict(options), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(vdir, OPTS_FILE))
            # the options must survive a power loss with the directory (a plain volume's
            # directory is made again at start if a power loss dropped it: engine's start)
            _fsync_dir(self.root)
        return int(os.stat(vdir).st_ctime)

    def create(self, name: str, options: Mapping[str, str] | None) -> Deferred[int]:
        """Make the volume's directories (idempotent); fires with the creation time."""
        return self._blocking.run(self.make_now, name, options)

    def _remove(self, name: str) -> None:
        unlinked = self.unlink_now(name)
        if unlinked is not None:
            remove_tree(unlinked.trash)

    def remove(self, name: str) -> Deferred[None]:
        """Delete the volume's directory and data (refused while something is mounted on it)."""
        return self._blocking.run(self._remove, name)

    def unlink_now(self, name: str) -> Unlinked | None:
        """Take the volume's directory out of its name, on the calling thread (not the
        reactor's): renamed to a trash entry (one C{rename}); None when there was none.

        For the engine to run on the DB thread right after the row's deletion, so that a
        volume's removal is one thread hop. The trash entry is then deleted by L{purge} (the
        io threads): an empty volume's (C{rmdir} costs ~85 us here, twice) need not be waited
        for, nothing can use it any more; one with content is, as dockerd's answer waits for
        its deletion. A crash before the purge leaves the entry to the next start's sweep.

        @raise VolumeDriverError: something is mounted on the volume's data (nothing renamed).
        """
        vdir = self.volume_dir(name)
        data = os.path.join(vdir, DATA)
        if os.path.lexists(data) and is_mountpoint(data):
            raise VolumeDriverError(f"volume {name} is still mounted at {data}")
        empty = _empty_dir(data)
        trash = os.path.join(self.root, f"{_TRASH_PREFIX}{name}-{os.urandom(4).hex()}")
        try:
            os.rename(vdir, trash)
        except FileNotFoundError:
            return None
        return Unlinked(trash, empty)

    def purge(self, trash: str) -> Deferred[None]:
        """Delete a trash entry L{unlink_now} left, with what is beneath it (io threads)."""
        return self._blocking.run(remove_tree, trash)

    def _scan(self) -> list[ScannedVolume]:
        out: list[ScannedVolume] = []
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return out
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            vdir = entry.path
            has_data = os.path.isdir(os.path.join(vdir, DATA))
            opts_path = os.path.join(vdir, OPTS_FILE)
            if not has_data and not os.path.exists(opts_path):
                continue
            options: dict[str, str] | None = None
            try:
                with open(opts_path) as f:
                    raw = json.load(f)
                if isinstance(raw, dict):
                    options = {str(k): str(v) for k, v in raw.items()}
            except (OSError, ValueError):
                options = None
            out.append(ScannedVolume(entry.name, options, int(os.stat(vdir).st_ctime)))
        return out

    def scan(self) -> Deferred[list[ScannedVolume]]:
        """The volume directories on disk (those with C{_data} or C{opts.json})."""
        return self._blocking.run(self._scan)

    def _sweep_trash(self) -> int:
        n = 0
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name.startswith(_TRASH_PREFIX):
                try:
                    _purge(entry.path)
                except VolumeDriverError as e:
                    log.warn("{err}", err=e)
                n += 1
                continue
            stage = os.path.join(entry.path, DATA + _STAGE_SUFFIX)
            if os.path.isdir(stage):
                if os.path.exists(os.path.join(entry.path, _STAGE_MARK)):
                    _finish_stage(stage, os.path.join(entry.path, DATA))
                else:
                    shutil.rmtree(stage, ignore_errors=True)
                n += 1
            elif entry.is_dir(follow_symlinks=False) and not os.path.lexists(
                os.path.join(entry.path, DATA)
            ):
                # a creation killed before the volume's _data: nothing in it but maybe its
                # options' temporary file, and no row needs it (the engine makes a row's
                # directory again); one with opts.json is kept (scan adopts it)
                try:
                    with os.scandir(entry.path) as it:
                        inside = {e.name for e in it}
                    if inside <= {OPTS_FILE + ".tmp"}:
                        for name in inside:
                            os.unlink(os.path.join(entry.path, name))
                        os.rmdir(entry.path)
                        n += 1
                except OSError:  # something came or went meanwhile: left to the engine
                    pass
        return n

    def sweep_trash(self) -> Deferred[int]:
        """Finish removals and copy-ups a crash interrupted; fires with how many."""
        return self._blocking.run(self._sweep_trash)

    # --- mounts ------------------------------------------------------------------------------

    def is_mounted(self, name: str) -> Deferred[bool]:
        """Whether a filesystem is mounted on the volume's C{_data}."""
        return self._blocking.run(is_mountpoint, self.data_path(name))

    async def mount(self, name: str, fstype: str, device: str, options: str) -> None:
        """C{mount --types=fstype --options=options -- device <_data>}.

        The options are checked again (L{mount_options_error}) and the client's values are
        never separate arguments mount(8) could take for its own options: C{--x=} forms and
        C{--} before the positional ones; no fstab is read.

        @raise VolumeDriverError: refused options, or mount failed (its stderr, with any password
            masked).
        """
        why = mount_options_error(fstype, device, options)
        if why:
            raise VolumeDriverError(f"failed to mount local volume: {why}")
        argv = ["mount", "--options-source=disable"]
        if fstype:
            argv.append(f"--types={fstype}")
        if options:
            argv.append(f"--options={options}")
        argv += ["--", device, self.data_path(name)]
        result = await self._runner.run(argv)
        if result.rc != 0:
            err = result.stderr.decode("utf-8", "replace").strip()
            err = _mask_password(err, options)
            raise VolumeDriverError(f"failed to mount local volume: {err or 'mount failed'}")

    async def unmount(self, name: str) -> None:
        """C{umount <_data>}; a path that is no longer mounted is not an error."""
        path = self.data_path(name)
        result = await self._runner.run(["umount", path])
        if result.rc != 0 and await self.is_mounted(name):
            err = result.stderr.decode("utf-8", "replace").strip()
            raise VolumeDriverError(f"failed to unmount local volume {name}: {err}")

    # --- subpaths ----------------------------------------------------------------------------

    def stage_subpath(
        self, container_id: str, index: int, name: str, subpath: str, recursive: bool
    ) -> Deferred[str]:
        """Open C{subpath} inside the volume once and mount it by descriptor on a private
        staging point (L{StagingArea.attach}); fires with that point, the runtime's bind source.

        @raise SubpathError: the subpath leaves the volume or cannot be opened.
        """
        return self._blocking.run(
            self.staging.attach,
            container_id,
            index,
            self.data_path(name),
            subpath,
            recursive=recursive,
        )

    def stage_beneath(
        self, container_id: str, index: int, root: str, subpath: str, recursive: bool
    ) -> Deferred[str]:
        """Like L{stage_subpath} for a host bind confined to an allowed root: C{subpath} opened
        beneath C{root} (a link out of it is refused) and mounted by descriptor.

        @raise SubpathError: the path leaves C{root} or cannot be opened.
        """
        return self._blocking.run(
            self.staging.attach, container_id, index, root, subpath, recursive=recursive
        )

    def confine(self, path: str, roots: Sequence[str]) -> Deferred[tuple[str, str] | None]:
        """The allowed root holding host C{path} and its path beneath it (L{stage.confine})."""
        return self._blocking.run(_stage.confine, path, roots)

    def ensure_dir_beneath(self, root: str, subpath: str) -> Deferred[None]:
        """L{ensure_dir} beneath an allowed root (L{stage.makedirs_beneath}).

        @raise SubpathError: a link on the way leaves C{root}.
        """
        return self._blocking.run(_stage.makedirs_beneath, root, subpath)

    def mount_beneath(
        self, name: str, root: str, subpath: str, *, recursive: bool, flags: frozenset[str]
    ) -> Deferred[None]:
        """Mount a confined bind volume's device (C{subpath} opened beneath C{root}) on its
        C{_data} by descriptor (L{stage.mount_beneath}); never by name.

        @raise SubpathError: the device leaves C{root} or cannot be opened.
        """
        return self._blocking.run(
            _stage.mount_beneath,
            root,
            subpath,
            self.data_path(name),
            recursive=recursive,
            flags=flags,
        )

    def release_staged(self, container_id: str) -> Deferred[None]:
        """Detach and remove the container's staging points (idempotent)."""
        return self._blocking.run(self.staging.release, container_id)

    def sweep_staged(self) -> Deferred[int]:
        """At start: remove every staging point a previous daemon left."""
        return self._blocking.run(self.staging.sweep)

    # --- content -----------------------------------------------------------------------------

    def size(self, name: str) -> Deferred[int]:
        """Bytes stored in the volume (-1 when its directory is missing)."""
        return self._blocking.run(_copy.tree_size, self.data_path(name))

    def file_in_rootfs(self, rootfs: str, destination: str) -> Deferred[str]:
        """The host path of C{destination} inside C{rootfs} when it is a non-directory (a volume
        cannot be mounted there), else "" (resolved inside the root, L{inroot})."""

        def thd() -> str:
            with inroot.InRoot(rootfs) as root:
                try:
                    if st.S_ISDIR(root.stat(destination).st_mode):
                        return ""
                    where = root.realpath(destination)
                except OSError:
                    return ""  # missing (or a dangling link): the runtime creates it
            return os.path.join(rootfs, where.lstrip("/"))

        return self._blocking.run(thd)

    def _populate(self, rootfs: str, destination: str, target: str) -> bool:
        with inroot.InRoot(rootfs) as src:
            try:
                if not st.S_ISDIR(src.stat(destination).st_mode):
                    return False
            except OSError:
                return False
            if not _copy.is_empty_dir(target):
                return False
            if is_mountpoint(target):
                # a tmpfs/bind/... volume: no staging on the same filesystem; its data is not
                # ours. Containers using the volume can change it during the copy: every write
                # is resolved inside the volume (inroot), so a link they plant stays inside.
                _copy.copy_up(src, destination, target)
                return True
            # Stage next to _data, mark complete, then rename entry by entry: a crash leaves
            # either an empty volume (copied again at the next start) or a complete stage the
            # next daemon start finishes moving (sweep_trash), never a half-copied volume.
            stage = target.rstrip("/") + _STAGE_SUFFIX
            shutil.rmtree(stage, ignore_errors=True)
            os.mkdir(stage, 0o700)
            _copy.copy_up(src, destination, stage)
        with open(os.path.join(os.path.dirname(stage), _STAGE_MARK), "w") as f:
            f.flush()
            os.fsync(f.fileno())
        _finish_stage(stage, target)
        return True

    def populate(self, rootfs: str, destination: str, target: str) -> Deferred[bool]:
        """Copy the image's content at C{destination} (inside C{rootfs}) into C{target} when
        C{target} is an empty directory; fires with whether it copied."""
        return self._blocking.run(self._populate, rootfs, destination, target)

    def ensure_dir(self, path: str) -> Deferred[None]:
        """Create a missing bind source as a directory (mode 0755), like C{docker run -v}."""

        def thd() -> None:
            try:
                os.makedirs(path, mode=0o755, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                pass  # an existing file is bound as a file

        return self._blocking.run(thd)

    def exists(self, path: str) -> Deferred[bool]:
        """Whether C{path} exists (a dangling symlink does not)."""
        return self._blocking.run(os.path.exists, path)


def _finish_stage(stage: str, target: str) -> None:
    """Move a complete copy-up stage into C{target} (idempotent), then drop stage and mark."""
    for name in sorted(os.listdir(stage)):
        dst = os.path.join(target, name)
        if not os.path.lexists(dst):
            os.rename(os.path.join(stage, name), dst)
    _copy.copy_meta(stage, target)
    shutil.rmtree(stage, ignore_errors=True)
    try:
        os.unlink(os.path.join(os.path.dirname(stage), _STAGE_MARK))
    except FileNotFoundError:  # already removed: the goal is reached
        pass


# mount(8) options that act on the host rather than on the new filesystem: remount/move change
# an existing mount (the data root's), X-mount.* create and chown host paths, helper= runs a
# program at umount, loop/offset/encryption turn a host file into a block device, user/owner
# relax who may unmount. The kernel (dockerd's mount(2)) knows none of them but remount/move.
_HOST_OPTIONS = frozenset(
    (
        "remount", "move", "rmove", "loop", "offset", "sizelimit", "encryption", "helper",
        "uhelper", "user", "users", "owner", "group", "verity.hashdevice", "verity.roothash",
    )
)  # fmt: skip
_FSTYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+]*$")


def mount_options_error(fstype: str, device: str, options: str) -> str:
    """Why the local volume options C{type}/C{device}/C{o} are refused ("" when they are not).

    Every value reaches mount(8) as a client-chosen string: none may start with C{-} or hold a
    control character, the type is a plain name (no path: mount(8) runs C{/sbin/mount.<type>}),
    and C{o} holds no option that acts on the host instead of the new filesystem.
    """
    for label, value in (("type", fstype), ("device", device), ("o", options)):
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            return f"invalid {label}: control characters are not allowed"
        if value.startswith("-"):
            return f"invalid {label} {value!r}: must not start with '-'"
    if fstype and not _FSTYPE_RE.match(fstype):
        return f"invalid type {fstype!r}"
    keys = []
    for opt in options.split(",") if options else ():
        key = opt.split("=", 1)[0].strip()
        if not key or key.startswith("-"):
            return f"invalid o {options!r}: empty option or option starting with '-'"
        keys.append(key)
        low = key.lower()
        if low in _HOST_OPTIONS or low.startswith("x-") or low.startswith("loop"):
            return f"mount option {key!r} is not allowed for local volumes"
    if {"bind", "rbind"} & set(keys) and not device.startswith("/"):
        return f"invalid device {device!r}: a bind mount needs an absolute path"
    return ""


def _mask_password(text: str, options: str) -> str:
    for opt in options.split(","):
        if opt.startswith("password="):
            pw = opt[len("password=") :]
            if pw:
                text = text.replace(pw, "********")
    return text


def _purge(trash: str) -> None:
    """Delete a half-removed volume directory, unless something is still mounted on its data
    (then it is left, and said: deleting through a mount would delete what is mounted)."""
    data = os.path.join(trash, DATA)
    if os.path.lexists(data) and is_mountpoint(data):
        raise VolumeDriverError(f"{data} is mounted: left in place")
    shutil.rmtree(trash, ignore_errors=True)


def _empty_dir(path: str) -> bool:
    """Whether C{path} is a directory with nothing in it (a link is not)."""
    try:
        with os.scandir(path) as it:
            return next(it, None) is None and not os.path.islink(path)
    except OSError:
        return False


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
