"""What /info reports about the host, read from the kernel as dockerd reads it (layer: engine).

Two kinds: L{HostFeatures}, read once at start (cgroup controllers, the data root's file system, the
OS version, the runtime binaries), and L{LiveFacts}, read on each /info (the forwarding sysctl, the
daemon's open descriptors and threads). All functions here block briefly on /proc and /sys: call
them before the reactor runs or through the Blocking seam.
"""

from __future__ import annotations

import os
import threading
from urllib.parse import urlsplit, urlunsplit

import attrs

# statfs f_type -> the name dockerd's overlay2 driver prints as "Backing Filesystem".
_FS_NAMES = {
    0xEF53: "extfs",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0x01021994: "tmpfs",
    0x794C7630: "overlayfs",
    0x2FC12FC1: "zfs",
    0x65735546: "fuse",
    0xF2F52010: "f2fs",
}


@attrs.frozen
class HostFeatures:
    """Host facts read once at start: what limits the kernel supports and what pyd runs with."""

    cgroup_version: str = "2"
    memory_limit: bool = True
    swap_limit: bool = False
    oom_kill_disable: bool = False
    kernel_memory_tcp: bool = False
    cpu_cfs: bool = True
    cpu_shares: bool = True
    cpuset: bool = True
    pids_limit: bool = True
    io_weight: bool = True
    io_max: bool = True
    backing_fs: str = "extfs"
    d_type: bool = True
    os_version: str = ""
    init_binary: str = ""


def _cgroup_of_self() -> str:
    """The unified (v2) cgroup path of this process, e.g. C{/system.slice/pyd.service}."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                parts = line.rstrip("\n").split(":", 2)
                if len(parts) == 3 and parts[0] == "0":
                    return parts[2]
    except OSError:  # no readable /proc/self/cgroup: the path stays unknown (empty)
        pass
    return ""


def _controllers(path: str) -> set[str]:
    try:
        with open(os.path.join(path, "cgroup.controllers")) as f:
            return set(f.read().split())
    except OSError:
        return set()


def _fs_name(path: str) -> str:
    """The file system of C{path} by its magic number, as dockerd names it."""
    import ctypes
    import ctypes.util

    class _StatFs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112)]

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    buf = _StatFs()
    if libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        return "<unknown>"
    magic = buf.f_type & 0xFFFFFFFF
    return _FS_NAMES.get(magic, f"<unknown> (0x{magic:x})")


def os_version(os_release: str = "/etc/os-release") -> str:
    """VERSION_ID of os-release (dockerd's OSVersion)."""
    try:
        with open(os_release) as f:
            for line in f:
                if line.startswith("VERSION_ID="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:  # no os-release: the version stays unknown, as in dockerd
        pass
    return ""


def read_features(
    data_root: str, init_path: str = "", cgroup_root: str = "/sys/fs/cgroup"
) -> HostFeatures:
    """Read the host's features (blocking)."""
    common = {
        "backing_fs": _fs_name(data_root) if os.path.isdir(data_root) else "<unknown>",
        "os_version": os_version(),
        "init_binary": init_path,
    }
    if os.path.exists(os.path.join(cgroup_root, "cgroup.controllers")):
        ctl = _controllers(cgroup_root)
        own = _cgroup_of_self()
        # dockerd: swap limits work when this process's cgroup has memory.swap.max.
        swap = bool(own) and os.path.exists(
            os.path.join(cgroup_root, own.lstrip("/"), "memory.swap.max")
        )
        return HostFeatures(
            cgroup_version="2",
            memory_limit="memory" in ctl,
            swap_limit="memory" in ctl and swap,
            oom_kill_disable=False,  # cgroup v2 has no oom-kill-disable
            kernel_memory_tcp=False,
            cpu_cfs="cpu" in ctl,
            cpu_shares="cpu" in ctl,
            cpuset="cpuset" in ctl,
            pids_limit="pids" in ctl,
            io_weight="io" in ctl,
            io_max="io" in ctl,
            **common,  # type: ignore[arg-type]  # str and tuple values of the common fields
        )
    mem = os.path.join(cgroup_root, "memory")
    cpu = os.path.join(cgroup_root, "cpu")
    return HostFeatures(
        cgroup_version="1",
        memory_limit=os.path.isdir(mem),
        swap_limit=os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")),
        oom_kill_disable=os.path.exists(os.path.join(mem, "memory.oom_control")),
        kernel_memory_tcp=os.path.exists(os.path.join(mem, "memory.kmem.tcp.limit_in_bytes")),
        cpu_cfs=os.path.exists(os.path.join(cpu, "cpu.cfs_quota_us")),
        cpu_shares=os.path.exists(os.path.join(cpu, "cpu.shares")),
        cpuset=os.path.isdir(os.path.join(cgroup_root, "cpuset")),
        pids_limit=os.path.isdir(os.path.join(cgroup_root, "pids")),
        io_weight=False,
        io_max=os.path.isdir(os.path.join(cgroup_root, "blkio")),
        **common,  # type: ignore[arg-type]  # str and tuple values of the common fields
    )


@attrs.frozen
class LiveFacts:
    """Facts that change while the daemon runs, read on each /info."""

    ipv4_forwarding: bool
    nfd: int
    nthreads: int


def read_live(proc: str = "/proc") -> LiveFacts:
    """Read the forwarding sysctl, this process's descriptor and thread counts (blocking)."""
    try:
        with open(os.path.join(proc, "sys/net/ipv4/ip_forward")) as f:
            forwarding = f.read().strip() == "1"
    except OSError:
        forwarding = False
    try:
        nfd = len(os.listdir(os.path.join(proc, "self/fd")))
    except OSError:
        nfd = 0
    return LiveFacts(forwarding, nfd, threading.active_count())


def mask_credentials(url: str) -> str:
    """A proxy URL with its user and password replaced by C{xxxxx}, as dockerd shows it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"xxxxx:xxxxx@{host}"))


def proxy_setting(configured: str, *env_names: str) -> str:
    """The configured value, else the first set environment variable (dockerd's
    getConfigOrEnv)."""
    if configured:
        return configured
    for name in env_names:
        value = os.environ.get(name, "")
        if value:
            return value
    return ""


def warnings(
    features: HostFeatures, live: LiveFacts, tcp_hosts: list[tuple[str, bool, bool]]
) -> list[str]:
    """The Warnings dockerd prints for this host and configuration.

    @param tcp_hosts: (address, tls, tlsverify) of each TCP listener.
    """
    out: list[str] = []
    v2 = features.cgroup_version == "2"
    if not features.memory_limit:
        out.append("WARNING: No memory limit support")
    if not features.swap_limit:
        out.append("WARNING: No swap limit support")
    if not v2 and not features.kernel_memory_tcp:
        out.append("WARNING: No kernel memory TCP limit support")
    if not v2 and not features.oom_kill_disable:
        out.append("WARNING: No oom kill disable support")
    if not features.cpu_cfs:
        out += ["WARNING: No cpu cfs quota support", "WARNING: No cpu cfs period support"]
    if not features.cpu_shares:
        out.append("WARNING: No cpu shares support")
    if not features.cpuset:
        out.append("WARNING: No cpuset support")
    if v2 and not features.io_weight:
        out += ["WARNING: No io.weight support", "WARNING: No io.weight (per device) support"]
    if not features.io_max:
        if v2:
            out += [f"WARNING: No io.max ({k}) support" for k in ("rbps", "wbps", "riops", "wiops")]
        else:
            out += [
                f"WARNING: No blkio throttle.{k}_device support"
                for k in ("read_bps", "write_bps", "read_iops", "write_iops")
            ]
    if not live.ipv4_forwarding:
        out.append("WARNING: IPv4 forwarding is disabled")
    warn = (
        "\n         Access to the remote API is equivalent to root access on the host. Refer"
        "\n         to the 'Docker daemon attack surface' section in the documentation for"
        "\n         more information: https://docs.docker.com/go/attack-surface/"
    )
    for addr, tls, verify in tcp_hosts:
        if not tls:
            out.append(
                f"[DEPRECATION NOTICE]: API is accessible on http://{addr} without encryption.{warn}"
            )
        elif not verify:
            out.append(
                f"[DEPRECATION NOTICE]: API is accessible on https://{addr} without TLS client "
                f"verification.{warn}"
            )
    return out
