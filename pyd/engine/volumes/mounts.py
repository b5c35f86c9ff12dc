"""Mount parsing (layer: engine): C{-v}/C{--mount}/C{--tmpfs}/C{--volumes-from} into mount
records, following moby's C{daemon/volume/mounts/linux_parser.go}; every error carries dockerd's
text. Pure functions: nothing here touches a file.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence

import attrs
from twisted.logger import Logger

from pyd.core.errors import (
    InvalidParameter,
    Unsupported,
)
from pyd.core.ids import go_quote
from pyd.core.records import MountSpec, Volume
from pyd.engine.spec import (
    BindOptions,
    Mount,
    TmpfsOptions,
    VolumeOptions,
)

log = Logger()


_RW_MODES = {"rw", "ro"}


_LABEL_MODES = {"z", "Z"}


_PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared")


_CONSISTENCY = {"consistent", "cached", "delegated", "default"}


_COPY_MODES = {"nocopy": False}


_TMPFS_FLAG_KEYS = {
    "exec",
    "suid",
    "dev",
    "atime",
    "diratime",
    "relatime",
    "strictatime",
    "iversion",
    "mand",
    "dirsync",
    "sync",
}


_TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev")


def _go_bool(value: str) -> bool | None:
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


# --- mount specification parsing (pure) ------------------------------------------------------


def _valid_mode(mode: str) -> bool:
    if mode == "":
        return True
    counts = {"rw": 0, "label": 0, "prop": 0, "copy": 0, "cons": 0}
    for o in mode.split(","):
        if o in _RW_MODES:
            counts["rw"] += 1
        elif o in _LABEL_MODES:
            counts["label"] += 1
        elif o in _PROPAGATIONS:
            counts["prop"] += 1
        elif o in _COPY_MODES:
            counts["copy"] += 1
        elif o in _CONSISTENCY:
            counts["cons"] += 1
        else:
            return False
    return all(n <= 1 for n in counts.values())


def _read_write(mode: str) -> bool:
    if not _valid_mode(mode):
        return False
    return "ro" not in mode.split(",")


def _propagation_of(mode: str) -> str:
    for o in mode.split(","):
        if o in _PROPAGATIONS:
            return o
    return ""


def _copy_mode(mode: str) -> bool | None:
    for o in mode.split(","):
        if o in _COPY_MODES:
            return _COPY_MODES[o]
    return None


def _clean(path: str) -> str:
    return posixpath.normpath(path.replace("\\", "/")) if path else path


def is_host_path(source: str) -> bool:
    """Whether a bind source names a host path: absolute, with C{/} (Go's C{path.IsAbs}, as
    dockerd's Linux parser decides). Anything else in C{-v SOURCE:...} is a volume name, which
    must then pass the volume-name rule (C{\\root}, C{./x}, C{~} are refused as names).

    One function for the authorization rules and the engine: a backslash is never read as a
    slash in a host path (it was, and C{-v '\\:/h'} mounted the host's root).
    """
    return source.startswith("/")


def host_path(source: str) -> str:
    """A host-path bind source as it is mounted: cleaned, backslashes kept as they are."""
    return posixpath.normpath(source)


def invalid_spec(raw: str) -> str:
    """dockerd's C{errInvalidSpec}."""
    return f"invalid volume specification: '{raw}'"


@attrs.define
class _Pending:
    """A mount being resolved (mutable while resolve_mounts works)."""

    type: str
    destination: str
    rw: bool = True
    source: str = ""  # host path for binds; volume name (or "") for volumes
    mode: str = ""
    propagation: str = ""
    options: tuple[str, ...] = ()
    copy_up: bool = False
    listed: bool = True
    driver: str = ""
    volume_options: dict[str, str] | None = None
    volume_labels: dict[str, str] | None = None
    create_source: bool = False  # -v binds: create a missing host directory
    subpath: str = ""
    existing: MountSpec | None = None  # from --volumes-from


def _validate_target(target: str) -> str | None:
    if not target:
        return "field Target must not be empty"
    norm = _clean(target)
    if norm == "/":
        return "invalid specification: destination can't be '/'"
    if not target.replace("\\", "/").startswith("/"):
        return f"invalid mount path: '{target}' mount path must be absolute"
    return None


def _mount_error(mtype: str, msg: str) -> InvalidParameter:
    return InvalidParameter(f"invalid mount config for type {go_quote(mtype)}: {msg}")


def tmpfs_options(opts: TmpfsOptions | None, read_only: bool) -> list[str]:
    """dockerd's C{ConvertTmpfsOptions}: C{TmpfsOptions} to mount data options.

    @raise InvalidParameter: an C{Options} entry dockerd does not accept.
    """
    raw: list[str] = []
    if read_only:
        raw.append("ro")
    opts = opts or TmpfsOptions()
    if opts.mode:
        raw.append(f"mode={opts.mode:o}")
    size = opts.size_bytes
    if size:
        suffix = ""
        for sfx, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % div == 0:
                size //= div
                suffix = sfx
                break
        raw.append(f"size={size}{suffix}")
    for opt in opts.options:
        if not 1 <= len(opt) <= 2:
            raise InvalidParameter("invalid option array length")
        if opt[0] not in ("exec", "noexec"):
            raise InvalidParameter("invalid option: " + str(opt[0]))
        raw.append(opt[0] if len(opt) == 1 else f"{opt[0]}={opt[1]}")
    return raw


def merge_tmpfs_options(options: Sequence[str]) -> list[str]:
    """Later options win, like moby's C{MergeTmpfsOptions} (C{exec} cancels C{noexec}...)."""
    seen: set[str] = set()
    out: list[str] = []
    for opt in reversed([o for o in options if o]):
        key = opt.split("=", 1)[0]
        if "=" not in opt:
            if key in ("ro", "rw"):
                key = "rw"
            elif key.startswith("no") and key[2:] in _TMPFS_FLAG_KEYS:
                key = key[2:]
        if key in seen:
            continue
        seen.add(key)
        out.append(opt)
    out.reverse()
    return out


def _tmpfs_spec(destination: str, data: list[str], listed: bool) -> _Pending:
    merged = merge_tmpfs_options([*_TMPFS_DEFAULTS, *data])
    rw = True
    opts: list[str] = []
    for o in merged:
        if o == "ro":
            rw = False
        elif o == "rw":
            rw = True
        else:
            opts.append(o)
    return _Pending("tmpfs", destination, rw=rw, options=tuple(opts), listed=listed)


def parse_mount(m: Mount, bind_exists: Callable[[str], bool] | None) -> _Pending:
    """Validate and parse one C{HostConfig.Mounts} entry (dockerd's C{ParseMountSpec}).

    @param m: the entry as the create spec typed it.
    @param bind_exists: checks a bind source exists; None skips the check.
    @raise InvalidParameter: with dockerd's message.
    """
    mtype = m.type
    for field, owner, given in (
        ("BindOptions", "bind", m.bind is not None),
        ("VolumeOptions", "volume", m.volume is not None),
        ("ImageOptions", "image", m.image_subpath is not None),
        ("TmpfsOptions", "tmpfs", m.tmpfs is not None),
        ("ClusterOptions", "cluster", m.cluster),
    ):
        if mtype != owner and given:
            raise _mount_error(mtype, f"field {field} must not be specified")
    target = m.target
    err = _validate_target(target)
    if err:
        raise _mount_error(mtype, err)
    source = m.source
    read_only = m.read_only
    dest = _clean(target)
    if mtype == "bind":
        if not source:
            raise _mount_error(mtype, "field Source must not be empty")
        bopts = m.bind or BindOptions()
        prop = bopts.propagation
        if prop and prop not in _PROPAGATIONS:
            raise _mount_error(mtype, f"invalid propagation mode: {prop}")
        if not is_host_path(source):
            raise _mount_error(mtype, f"invalid mount path: '{source}' mount path must be absolute")
        create = bopts.create_mountpoint
        if bind_exists is not None and not create and not bind_exists(source):
            raise _mount_error(mtype, f"bind source path does not exist: {source}")
        return _Pending(
            "bind",
            dest,
            rw=not read_only,
            source=host_path(source),
            propagation=prop or "rprivate",
            options=("bind",) if bopts.non_recursive else (),
            create_source=create,
        )
    if mtype == "volume":
        vopts = m.volume or VolumeOptions()
        subpath = vopts.subpath
        if subpath:
            if not source:
                raise _mount_error(mtype, "must not set Subpath when using anonymous volumes")
            norm = posixpath.normpath(subpath)
            if norm.startswith("/") or norm == ".." or norm.startswith("../"):
                raise _mount_error(mtype, "subpath must be a relative path within the volume")
        return _Pending(
            "volume",
            dest,
            rw=not read_only,
            source=source,
            mode="z",
            copy_up=not vopts.no_copy and not subpath,
            driver=vopts.driver,
            volume_options=dict(vopts.driver_options) if vopts.driver_options else None,
            volume_labels=dict(vopts.labels) if vopts.labels else None,
            subpath=subpath,
        )
    if mtype == "tmpfs":
        if source:
            raise _mount_error(mtype, "field Source must not be specified")
        try:
            data = tmpfs_options(m.tmpfs, read_only)
        except InvalidParameter as e:
            raise _mount_error(mtype, e.message) from None
        return _tmpfs_spec(dest, data, listed=True)
    if mtype == "image":
        if not source:
            raise _mount_error(mtype, "field Source must not be empty")
        raise Unsupported("image mounts are not supported by pyd")
    raise _mount_error(mtype, "mount type unknown")


def parse_bind(raw: str, volume_driver: str = "") -> _Pending:
    """Parse one C{HostConfig.Binds} entry (dockerd's C{ParseMountRaw}).

    @raise InvalidParameter: with dockerd's message.
    """
    arr = raw.split(":", 3)
    if arr[0] == "":
        raise InvalidParameter(invalid_spec(raw))
    mode = ""
    if len(arr) == 1:
        source, target = "", arr[0]
    elif len(arr) == 2:
        if _valid_mode(arr[1]):
            raise InvalidParameter(invalid_spec(raw))
        source, target = arr[0], arr[1]
    elif len(arr) == 3:
        source, target, mode = arr
    else:
        raise InvalidParameter(invalid_spec(raw))
    if not _valid_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    is_bind = is_host_path(source)
    mtype = "bind" if is_bind else "volume"
    err = _validate_target(target)
    if err:
        raise InvalidParameter(
            f"{invalid_spec(raw)}: invalid mount config for type {go_quote(mtype)}: {err}"
        )
    rw = _read_write(mode)
    copy = _copy_mode(mode)
    prop = _propagation_of(mode)
    dest = _clean(target)
    if is_bind:
        return _Pending(
            "bind",
            dest,
            rw=rw,
            source=host_path(source),
            mode=mode,
            propagation=prop or "rprivate",
            create_source=True,
        )
    return _Pending(
        "volume",
        dest,
        rw=rw,
        source=source,
        mode=mode or "z",
        copy_up=copy is not False,
        driver=volume_driver,
    )


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """C{container[:ro|rw]} -> (container, mode) (dockerd's C{ParseVolumesFrom})."""
    if spec == "":
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    if mode == "":
        return ref, "rw"
    if not _valid_mode(mode) or _propagation_of(mode) or _copy_mode(mode) is not None:
        raise InvalidParameter(f"invalid mode: {mode}")
    return ref, mode


def validate_tmpfs_destination(dest: str) -> None:
    """dockerd's C{ValidateTmpfsMountDestination}."""
    if _clean(dest) == "/":
        raise InvalidParameter("invalid specification: destination can't be '/'")
    if not dest.replace("\\", "/").startswith("/"):
        raise InvalidParameter(f"invalid mount path: '{dest}' mount path must be absolute")


def _sort_key(m: MountSpec) -> int:
    return posixpath.normpath(m.destination).count("/")


def needs_mount(vol: Volume) -> bool:
    """Whether the local volume has a filesystem to mount on its C{_data} (type or device)."""
    o = vol.options or {}
    return bool(o.get("type") or o.get("device"))
