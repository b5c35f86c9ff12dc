"""cgroup files: the hybrid-layout fix crun needs, paths, stats and OOM counters (layer: drivers).

Everything here blocks (file reads, C{mount(2)}); callers run it through a L{Blocking}.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

import attrs

CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_version(root: str = CGROUP_ROOT) -> int:
    """2 on a unified hierarchy, 1 on a legacy or hybrid one."""
    return 2 if os.path.exists(os.path.join(root, "cgroup.controllers")) else 1


def _mounted(path: str) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 4 and parts[4] == path:
                    return True
    except OSError:
        return False
    return False


def fix_hybrid_hugetlb(root: str = CGROUP_ROOT) -> str:
    """RUNTIME.md 1.1 fix A: give C{hugetlb} its own v1 hierarchy so crun accepts the host.

    crun refuses any container while C{<root>/unified/cgroup.controllers} lists a controller.
    On a hybrid host that is C{hugetlb} alone. Idempotent: does nothing when already mounted,
    when the host is not hybrid, or when the file is already empty.

    @return: what was done ("mounted", "not-needed", or an error text).
    """
    controllers_file = os.path.join(root, "unified", "cgroup.controllers")
    try:
        with open(controllers_file) as f:
            controllers = f.read().split()
    except OSError:
        return "not-needed"
    if not controllers:
        return "not-needed"
    target = os.path.join(root, "hugetlb")
    if "hugetlb" not in controllers or _mounted(target):
        return "not-needed"
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as e:
        # /sys/fs/cgroup is usually a tmpfs that allows mkdir; if not, crun will say why.
        return f"mkdir {target}: {e}"
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    rc = libc.mount(b"cgroup", target.encode(), b"cgroup", 0, b"hugetlb")
    if rc != 0:
        err = ctypes.get_errno()
        if _mounted(target):
            return "not-needed"
        return f"mount hugetlb: {os.strerror(err)}"
    return "mounted"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _read_int(path: str) -> int:
    v = _read(path)
    if v is None:
        return 0
    v = v.strip()
    if v == "max":
        return 0
    try:
        return int(v)
    except ValueError:
        return 0


def _kv(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    text = _read(path) or ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except (
                ValueError
            ):  # a line that is not a counter: skipped, like the kernel's unknown keys
                pass
    return out


@attrs.frozen
class CgroupStats:
    """One sample of a container's cgroup counters (what C{docker stats} needs)."""

    cpu_total_ns: int
    cpu_user_ns: int
    cpu_system_ns: int
    percpu_ns: tuple[int, ...]
    throttling: dict[str, int]
    memory_usage: int
    memory_limit: int
    memory_max_usage: int
    memory_stats: dict[str, int]
    pids_current: int
    pids_limit: int
    blkio: tuple[dict[str, Any], ...]


class CgroupPaths:
    """Where a container's cgroup lives (C{cgroups_path} is absolute, e.g. C{/pyd/<id>})."""

    def __init__(self, cgroups_path: str, root: str = CGROUP_ROOT) -> None:
        self.rel = cgroups_path.lstrip("/")
        self.root = root
        self.version = cgroup_version(root)

    def v1(self, controller: str) -> str:
        """The directory of C{controller} (v1) for this container."""
        return os.path.join(self.root, controller, self.rel)

    def v2(self) -> str:
        """The unified directory (v2)."""
        return os.path.join(self.root, self.rel)

    def oom_killed(self) -> bool:
        """Whether the kernel OOM-killed something in this cgroup (read before delete)."""
        if self.version == 2:
            return _kv(os.path.join(self.v2(), "memory.events")).get("oom_kill", 0) > 0
        return _kv(os.path.join(self.v1("memory"), "memory.oom_control")).get("oom_kill", 0) > 0

    def pids(self) -> list[int]:
        """Host pids in the cgroup."""
        path = (
            os.path.join(self.v2(), "cgroup.procs")
            if self.version == 2
            else os.path.join(self.v1("pids"), "cgroup.procs")
        )
        text = _read(path) or ""
        return [int(x) for x in text.split() if x.isdigit()]

    def stats(self) -> CgroupStats:
        """Read every counter once."""
        if self.version == 2:
            return self._stats_v2()
        return self._stats_v1()

    def _stats_v1(self) -> CgroupStats:
        cpuacct = self.v1("cpuacct")
        percpu_text = _read(os.path.join(cpuacct, "cpuacct.usage_percpu")) or ""
        percpu = tuple(int(x) for x in percpu_text.split() if x.isdigit())
        ticks = _kv(os.path.join(cpuacct, "cpuacct.stat"))
        hz = os.sysconf("SC_CLK_TCK") or 100
        mem = self.v1("memory")
        mstats = _kv(os.path.join(mem, "memory.stat"))
        limit = _read_int(os.path.join(mem, "memory.limit_in_bytes"))
        blk = []
        for line in (
            _read(os.path.join(self.v1("blkio"), "blkio.throttle.io_service_bytes")) or ""
        ).splitlines():
            parts = line.split()
            if len(parts) == 3 and ":" in parts[0]:
                major, minor = parts[0].split(":")
                blk.append(
                    {
                        "major": int(major),
                        "minor": int(minor),
                        "op": parts[1],
                        "value": int(parts[2]),
                    }
                )
        return CgroupStats(
            cpu_total_ns=_read_int(os.path.join(cpuacct, "cpuacct.usage")),
            cpu_user_ns=ticks.get("user", 0) * 1_000_000_000 // hz,
            cpu_system_ns=ticks.get("system", 0) * 1_000_000_000 // hz,
            percpu_ns=percpu,
            throttling=_kv(os.path.join(self.v1("cpu"), "cpu.stat")),
            memory_usage=_read_int(os.path.join(mem, "memory.usage_in_bytes")),
            memory_limit=limit,
            memory_max_usage=_read_int(os.path.join(mem, "memory.max_usage_in_bytes")),
            memory_stats=mstats,
            pids_current=_read_int(os.path.join(self.v1("pids"), "pids.current")),
            pids_limit=_read_int(os.path.join(self.v1("pids"), "pids.max")),
            blkio=tuple(blk),
        )

    def _stats_v2(self) -> CgroupStats:
        d = self.v2()
        cpu = _kv(os.path.join(d, "cpu.stat"))
        blk = []
        for line in (_read(os.path.join(d, "io.stat")) or "").splitlines():
            parts = line.split()
            if not parts or ":" not in parts[0]:
                continue
            major, minor = parts[0].split(":")
            for kv in parts[1:]:
                k, _, v = kv.partition("=")
                op = {"rbytes": "read", "wbytes": "write"}.get(k)
                if op:
                    blk.append(
                        {"major": int(major), "minor": int(minor), "op": op, "value": int(v)}
                    )
        return CgroupStats(
            cpu_total_ns=cpu.get("usage_usec", 0) * 1000,
            cpu_user_ns=cpu.get("user_usec", 0) * 1000,
            cpu_system_ns=cpu.get("system_usec", 0) * 1000,
            percpu_ns=(),
            throttling={
                "nr_periods": cpu.get("nr_periods", 0),
                "nr_throttled": cpu.get("nr_throttled", 0),
                "throttled_time": cpu.get("throttled_usec", 0) * 1000,
            },
            memory_usage=_read_int(os.path.join(d, "memory.current")),
            memory_limit=_read_int(os.path.join(d, "memory.max")),
            memory_max_usage=_read_int(os.path.join(d, "memory.peak")),
            memory_stats=_kv(os.path.join(d, "memory.stat")),
            pids_current=_read_int(os.path.join(d, "pids.current")),
            pids_limit=_read_int(os.path.join(d, "pids.max")),
            blkio=tuple(blk),
        )
