"""Files inside a container's root: path resolution, stat, tar out (layer: drivers).

Paths and symlinks are resolved I{inside} the root, never outside it, as moby's
C{symlink.FollowSymlinkInScope}: an absolute link target restarts at the container's root and
C{..} stops at it, so a link pointing at C{/etc/shadow} means the container's file. Tars are made
by a helper process (L{pyd.drivers.streams.tarstream}) that C{chroot}s into the root first, like
dockerd's chrootarchive, so nothing it archives can be a host file; it loads nothing from the
root (L{pyd.drivers.sealed}) and writes numeric owners only (L{pyd.drivers.fdtree}).

Everything here blocks; callers use a L{Blocking} or the process runner.
"""

from __future__ import annotations

import attrs

from pyd.drivers import sealed
from pyd.drivers.streams.rootpaths import (
    GO_MODE_CHAR_DEVICE,
    GO_MODE_DEVICE,
    GO_MODE_DIR,
    GO_MODE_NAMED_PIPE,
    GO_MODE_SETGID,
    GO_MODE_SETUID,
    GO_MODE_SOCKET,
    GO_MODE_STICKY,
    GO_MODE_SYMLINK,
    PathEscape,
    dir_non_dir_conflict,
    extraction_dir,
    go_mode,
    resolve,
    rfc3339_nano,
    scoped,
    stat_fields,
    tar_plan,
)

__all__ = [
    "GO_MODE_CHAR_DEVICE",
    "GO_MODE_DEVICE",
    "GO_MODE_DIR",
    "GO_MODE_NAMED_PIPE",
    "GO_MODE_SETGID",
    "GO_MODE_SETUID",
    "GO_MODE_SOCKET",
    "GO_MODE_STICKY",
    "GO_MODE_SYMLINK",
    "PathEscape",
    "PathStat",
    "dir_non_dir_conflict",
    "extraction_dir",
    "go_mode",
    "resolve",
    "rfc3339_nano",
    "scoped",
    "stat_path",
    "tar_helper_argv",
    "tar_plan",
]


@attrs.frozen
class PathStat:
    """C{container.PathStat}: what C{docker cp} learns about a path."""

    name: str
    size: int
    mode: int  # Go FileMode bits
    mtime: str  # RFC 3339 with nanoseconds, UTC
    link_target: str


def stat_path(root: str, path: str) -> PathStat | None:
    """C{StatPath} (L{stat_fields}) as a record. @return: None when the path does not exist."""
    fields = stat_fields(root, path)
    return PathStat(**fields) if fields is not None else None


def tar_helper_argv(root: str, source_dir: str, source_base: str, rebase: str) -> list[str]:
    """The helper's command line (it writes the tar on its stdout)."""
    return sealed.helper_argv(
        "pyd.drivers.streams.tarstream", root, source_dir, source_base, rebase
    )
