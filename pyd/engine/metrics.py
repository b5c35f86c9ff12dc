"""C{docker top} and C{docker stats} (layer: engine).

top runs the host's C{ps} (C{ps_args}, default C{-ef}) and keeps the lines whose PID belongs to
the container's cgroup, as dockerd does. stats samples the cgroup counters (through the runtime
driver), the host's CPU time and the container's network interfaces (C{/proc/<pid>/net/dev}, which
shows the container's network namespace).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs

from pyd.core.errors import Conflict, InvalidParameter, SystemError_
from pyd.core.seams import Blocking
from pyd.drivers.process import ProcessRunner
from pyd.engine.streams import StreamTarget, StreamTargets

PidsSource = Callable[[str], Awaitable[list[int]]]


@attrs.frozen
class TopResult:
    """C{{Titles, Processes}}."""

    titles: tuple[str, ...]
    processes: tuple[tuple[str, ...], ...]


def parse_ps(output: str, pids: set[int]) -> TopResult:
    """moby's C{parsePSOutput}: keep the lines of the container's pids; the command (last
    column) may contain spaces.

    @raise SystemError_: no PID column.
    """
    lines = output.splitlines()
    if not lines:
        return TopResult((), ())
    titles = lines[0].split()
    try:
        pid_index = titles.index("PID")
    except ValueError:
        raise SystemError_("Couldn't find PID field in ps output") from None
    procs: list[tuple[str, ...]] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) > len(titles):
            fields = [*fields[: len(titles) - 1], " ".join(fields[len(titles) - 1 :])]
        try:
            pid = int(fields[pid_index])
        except (ValueError, IndexError):
            continue
        if pid in pids:
            procs.append(tuple(fields))
    return TopResult(tuple(titles), tuple(procs))


def read_host_cpu() -> tuple[int, int]:
    """(system CPU time in ns, online CPUs) from C{/proc/stat} (blocking)."""
    hz = os.sysconf("SC_CLK_TCK") or 100
    total = 0
    cpus = 0
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                total = sum(int(x) for x in line.split()[1:8])
            elif line.startswith("cpu"):
                cpus += 1
    return total * 1_000_000_000 // hz, cpus or (os.cpu_count() or 1)


def read_netdev(pid: int) -> dict[str, dict[str, int]]:
    """Per-interface counters of the network namespace of C{pid} (loopback left out)."""
    out: dict[str, dict[str, int]] = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return out
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        if not name or name == "lo":
            continue
        v = [int(x) for x in rest.split()]
        if len(v) < 12:
            continue
        out[name] = {
            "rx_bytes": v[0],
            "rx_packets": v[1],
            "rx_errors": v[2],
            "rx_dropped": v[3],
            "tx_bytes": v[8],
            "tx_packets": v[9],
            "tx_errors": v[10],
            "tx_dropped": v[11],
        }
    return out


@attrs.frozen
class HostSample:
    """What the host side of one stats sample holds."""

    read_ns: int
    system_cpu_ns: int
    online_cpus: int
    networks: dict[str, dict[str, int]]


def sample_host(pid: int) -> HostSample:
    """One host-side sample (blocking)."""
    system, cpus = read_host_cpu()
    return HostSample(time.time_ns(), system, cpus, read_netdev(pid) if pid > 0 else {})


class TopService:
    """C{GET /containers/{id}/top}."""

    def __init__(
        self,
        targets: StreamTargets,
        runner: ProcessRunner,
        pids: PidsSource,
    ) -> None:
        self._targets = targets
        self._runner = runner
        self._pids = pids

    async def top(self, ref: str, ps_args: str = "") -> TopResult:
        """The container's processes.

        @raise Conflict: not running or restarting (dockerd's texts).
        @raise InvalidParameter: C{ps_args} selects processes with C{-q} (not supported).
        """
        target = await self._targets.stream_target(ref)
        _running(target)
        args = ps_args.split() if ps_args.strip() else ["-ef"]
        if any(a == "-q" or (a.startswith("-") and "q" in a and "-o" not in a) for a in args):
            raise InvalidParameter("ps option -q is not supported")
        pids = set(await self._pids(target.id))
        result = await self._runner.run(["ps", *args])
        if result.rc != 0:
            # The first line of ps's complaint, as dockerd words it (daemon/top_unix.go); a 400,
            # not dockerd's 500: the arguments are the client's.
            first = result.stderr.decode("utf-8", "replace").strip().split("\n", 1)[0]
            raise InvalidParameter(f"ps: {first or f'exit status {result.rc}'}")
        return parse_ps(result.stdout.decode("utf-8", "replace"), pids)


def _running(target: StreamTarget) -> None:
    if not target.running:
        raise Conflict(f"container {target.id} is not running")
    if target.status == "restarting":
        raise Conflict(f"Container {target.id} is restarting, wait until the container is running")


async def host_sample(blocking: Blocking, pid: int) -> HostSample:
    """L{sample_host} off the reactor thread."""
    return await blocking.run(sample_host, pid)


class CgroupSample(Protocol):
    """One sample of a container's cgroup counters (the runtime driver's C{CgroupStats})."""

    @property
    def cpu_total_ns(self) -> int: ...
    @property
    def cpu_user_ns(self) -> int: ...
    @property
    def cpu_system_ns(self) -> int: ...
    @property
    def percpu_ns(self) -> tuple[int, ...]: ...
    @property
    def throttling(self) -> dict[str, int]: ...
    @property
    def memory_usage(self) -> int: ...
    @property
    def memory_limit(self) -> int: ...
    @property
    def memory_max_usage(self) -> int: ...
    @property
    def memory_stats(self) -> dict[str, int]: ...
    @property
    def pids_current(self) -> int: ...
    @property
    def pids_limit(self) -> int: ...
    @property
    def blkio(self) -> tuple[dict[str, Any], ...]: ...


CgroupSource = Callable[[str], Awaitable[CgroupSample]]


@attrs.frozen
class StatsSample:
    """A container's cgroup counters and the host figures read at the same moment."""

    target: StreamTarget
    cgroup: CgroupSample | None  # None: not running
    host: HostSample


class StatsService:
    """C{GET /containers/{id}/stats}: samples on demand."""

    def __init__(self, targets: StreamTargets, cgroups: CgroupSource, blocking: Blocking) -> None:
        self._targets = targets
        self._cgroups = cgroups
        self._blocking = blocking

    async def target(self, ref: str) -> StreamTarget:
        """Resolve C{ref}. @raise NotFound: no such container."""
        return await self._targets.stream_target(ref)

    async def sample(self, ref: str) -> StatsSample:
        """One sample (cgroup None when the container is not running)."""
        target = await self._targets.stream_target(ref)
        cgroup: CgroupSample | None = None
        if target.status in ("running", "paused"):
            cgroup = await self._cgroups(target.id)
        host = await self._blocking.run(sample_host, target.pid if cgroup is not None else 0)
        return StatsSample(target, cgroup, host)
