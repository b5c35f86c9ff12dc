"""Host device nodes as OCI C{linux.devices} entries and device cgroup rules (layer: drivers).

C{--device} names host paths chosen by the daemon's administrator (the field is admin-tier in
pyd.api.authz); a privileged container gets every device node under the host's C{/dev}, as
dockerd gives it. These functions stat host paths: callers run them in the io pool.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import Any

# Directories under /dev a privileged container does not get (runc's and dockerd's walk skips
# them: the container has its own pts, shm and mqueue, and the others are not devices).
_SKIP_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})
_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


class DeviceError(ValueError):
    """A device the daemon cannot give (dockerd's text, safe to show the client)."""


def _node(path: str, in_container: str) -> dict[str, Any] | None:
    """The OCI device entry of the node at C{path}, or None when it is not a device node."""
    st = os.lstat(path)
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    elif stat.S_ISFIFO(st.st_mode):
        kind = "p"
    else:
        return None
    return {
        "path": in_container,
        "type": kind,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def _rule_for(dev: dict[str, Any], access: str) -> dict[str, Any]:
    return {
        "allow": True,
        "type": dev["type"],
        "major": dev["major"],
        "minor": dev["minor"],
        "access": access,
    }


def devices_from_path(
    on_host: str, in_container: str, permissions: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The devices C{--device on_host:in_container:permissions} adds, and their cgroup rules.

    A symbolic link is followed once (C{/dev/disk/by-id/...}); a directory adds every device
    node under it, at the same place under C{in_container}.

    @raise DeviceError: dockerd's C{error gathering device information while adding custom
        device} text.
    """
    in_container = in_container or on_host
    resolved = os.path.realpath(on_host) if os.path.islink(on_host) else on_host
    why = "not a device node"
    try:
        dev = _node(resolved, in_container)
    except OSError as e:
        dev = None
        why = "no such file or directory" if e.errno == errno.ENOENT else "not a device node"
    if dev is not None:
        return [dev], [_rule_for(dev, permissions)]
    devs: list[dict[str, Any]] = []
    if os.path.isdir(resolved):
        for root, dirs, files in os.walk(resolved):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                try:
                    child = _node(full, in_container + full[len(resolved) :])
                except OSError:
                    continue
                if child is not None:
                    devs.append(child)
    if not devs:
        raise DeviceError(
            f'error gathering device information while adding custom device "{on_host}": {why}'
        )
    return devs, [_rule_for(d, permissions) for d in devs]


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every device node under C{root} (a privileged container's C{/dev}), skipping
    C{/dev/console} and the directories in C{_SKIP_DIRS}; unreadable entries are left out."""
    out: list[dict[str, Any]] = []
    for cur, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not (cur == root and d in _SKIP_DIRS))
        for name in sorted(files):
            full = os.path.join(cur, name)
            if full == os.path.join(root, "console"):
                continue
            try:
                dev = _node(full, "/dev" + full[len(root) :])
            except OSError:
                continue
            if dev is not None:
                out.append(dev)
    return out


def cgroup_rule(text: str) -> dict[str, Any]:
    """A C{--device-cgroup-rule} (C{c 1:3 rwm}, C{a *:* rwm}) as an OCI device cgroup entry.

    @raise DeviceError: dockerd's C{invalid device cgroup format} text.
    """
    m = _RULE.match(text)
    if not m:
        raise DeviceError(f"invalid device cgroup format '{text}'")
    kind, major, minor, access = m.groups()
    rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
    if major != "*":
        rule["major"] = int(major)
    if minor != "*":
        rule["minor"] = int(minor)
    return rule
