"""Every create option takes effect or is refused: the refusals and dockerd's warn-and-discard
rules for what this host or pyd cannot give (layer: engine).

L{check_create} runs before anything is stored. A value this host cannot apply and dockerd
discards with a warning (C{BlkioWeight} where the kernel has no I/O weight, C{MemorySwappiness}
on cgroup v2, C{CpuPercent} on Linux...) is discarded the same way: the warning is returned to
the client and the stored C{HostConfig} holds the zero value (inspect shows what applies).
Anything else pyd does not apply is refused with a 400 naming the field and why. The table of
which field is which is L{pyd.engine.audit}; tests/unit/test_api_audit.py walks the API spec.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import attrs

from pyd.core.errors import InvalidParameter
from pyd.engine.hostinfo import HostFeatures
from pyd.engine.spec.records import BlkioDevice, CreateSpec
from pyd.engine.spec.rules import validate_endpoint

_BLKIO_THROTTLES = {
    "BlkioDeviceReadBps": ("blkio_read_bps", "throttleReadBpsDevice"),
    "BlkioDeviceWriteBps": ("blkio_write_bps", "throttleWriteBpsDevice"),
    "BlkioDeviceReadIOps": ("blkio_read_iops", "throttleReadIOPSDevice"),
    "BlkioDeviceWriteIOps": ("blkio_write_iops", "throttleWriteIOPSDevice"),
}


@attrs.frozen
class HostLimits:
    """What the kernel lets pyd apply (from L{HostFeatures}, read once at start)."""

    cgroup_v2: bool = False
    io_weight: bool = False
    io_max: bool = True
    swappiness: bool = False
    realtime: bool = False
    kernel_tcp: bool = False
    runtimes: tuple[str, ...] = ("crun",)

    @classmethod
    def of(
        cls,
        f: HostFeatures,
        cgroup_root: str = "/sys/fs/cgroup",
        runtimes: tuple[str, ...] = ("crun",),
    ) -> HostLimits:
        v2 = f.cgroup_version == "2"
        return cls(
            cgroup_v2=v2,
            io_weight=f.io_weight,
            io_max=f.io_max,
            swappiness=not v2 and os.path.exists(f"{cgroup_root}/memory/memory.swappiness"),
            realtime=not v2 and os.path.exists(f"{cgroup_root}/cpu/cpu.rt_runtime_us"),
            kernel_tcp=not v2 and f.kernel_memory_tcp,
            runtimes=runtimes,
        )


# moby daemon/daemon_unix.go verifyPlatformContainerResources (cgroup v1)
OOM_WITHOUT_LIMIT = (
    "OOM killer is disabled for the container, but no memory limit is set, this can result in "
    "the system running out of resources."
)
QOS_LINUX = "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps"


def check_create(spec: CreateSpec, host: HostLimits) -> tuple[list[str], dict[str, Any]]:
    """The refusals and discards of a create body.

    @return: (warnings, HostConfig fields to store as their zero value).
    @raise InvalidParameter: a field pyd does not apply, or a value this host cannot honour.
    """
    cfg, hc = spec.config, spec.host_config
    r = spec.resources
    warnings: list[str] = []
    discard: dict[str, Any] = {}
    if cfg.get("NetworkDisabled") and hc.get("NetworkMode") != "none":
        # with NetworkMode none it is what dockerd makes of it (no network but loopback)
        raise InvalidParameter(
            "Config.NetworkDisabled is not supported by pyd with a network: use --network none"
        )
    if hc.get("Cgroup"):
        raise InvalidParameter(
            f"HostConfig.Cgroup is not supported by pyd: {hc['Cgroup']} (use CgroupParent)"
        )
    if spec.namespaces.userns not in ("", "host"):
        raise InvalidParameter(
            f"invalid UsernsMode {spec.namespaces.userns}: pyd has no user namespace remapping "
            "(only host is accepted)"
        )
    if spec.runtime.isolation not in ("", "default"):
        raise InvalidParameter(
            f"Invalid isolation: \"{spec.runtime.isolation}\" - linux only supports 'default'"
        )
    if spec.runtime.runtime and spec.runtime.runtime not in host.runtimes:
        raise InvalidParameter(f"unknown or invalid runtime name: {spec.runtime.runtime}")
    if spec.runtime.storage_opt:
        raise InvalidParameter(
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
        )
    if r.io_maximum_iops or r.io_maximum_bandwidth:
        raise InvalidParameter(QOS_LINUX)
    if r.cpu_percent:
        warnings.append("linux does not support CPU percent. Percent discarded.")
        discard["CpuPercent"] = 0
    if r.cpu_realtime_period or r.cpu_realtime_runtime:
        if not host.realtime:
            what = "period" if r.cpu_realtime_period else "runtime"
            raise InvalidParameter(f"Your kernel does not support cgroup cpu real-time {what}")
        if r.cpu_realtime_period and r.cpu_realtime_runtime > r.cpu_realtime_period:
            raise InvalidParameter(
                "cpu real-time runtime cannot be higher than cpu real-time period"
            )
    if r.memory_swappiness is not None and r.memory_swappiness != -1:
        if not host.swappiness:
            warnings.append(
                "Your kernel does not support memory swappiness capabilities or the cgroup is "
                "not mounted. Memory swappiness discarded."
            )
            discard["MemorySwappiness"] = None
        elif not 0 <= r.memory_swappiness <= 100:
            raise InvalidParameter(
                f"Invalid value: {r.memory_swappiness}, valid memory swappiness range is 0-100"
            )
    if r.kernel_memory:
        # pyd never sets kmem limits (deprecated by the kernel since 5.4, absent on v2)
        warnings.append(
            "Your kernel does not support kernel memory limit capabilities or the cgroup is not "
            "mounted. Limitation discarded."
        )
        discard["KernelMemory"] = 0
    if r.kernel_memory_tcp and not host.kernel_tcp:
        # dockerd hands it to the runtime, which drops it without a word where the kernel has no
        # memory.kmem.tcp (cgroup v2): pyd says so
        warnings.append(
            "Your kernel does not support kernel memory TCP limit capabilities or the cgroup is "
            "not mounted. Limitation discarded."
        )
        discard["KernelMemoryTCP"] = 0
    if r.oom_kill_disable and host.cgroup_v2:
        warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        discard["OomKillDisable"] = None
    elif r.oom_kill_disable and not r.memory:
        warnings.append(OOM_WITHOUT_LIMIT)
    if r.blkio_weight and not host.io_weight:
        warnings.append(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. "
            "Weight discarded."
        )
        discard["BlkioWeight"] = 0
    if r.blkio_weight_device and not host.io_weight:
        warnings.append(
            "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. "
            "Weight-device discarded."
        )
        discard["BlkioWeightDevice"] = []
    for key, (attr, _) in _BLKIO_THROTTLES.items():
        if getattr(r, attr) and not host.io_max:
            warnings.append(
                f"Your kernel does not support {key} or the cgroup is not mounted. Discarded."
            )
            discard[key] = []
    for d in spec.network.endpoints.values():
        validate_endpoint(d.driver_opts, d.gw_priority)
    return warnings, discard


def _device_numbers(path: str) -> tuple[int, int]:
    """The major/minor of a block device named in a Blkio* field (only under /dev: the field
    names a device to throttle, never a path to look at elsewhere).

    @raise InvalidParameter: not a block device under /dev.
    """
    norm = os.path.normpath(path)
    if not norm.startswith("/dev/"):
        raise InvalidParameter(f"invalid block device path {path!r}: must be under /dev")
    try:
        st = os.stat(norm)
    except OSError:
        raise InvalidParameter(f"no such block device: {path}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidParameter(f"not a block device: {path}")
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def block_io(spec: CreateSpec) -> dict[str, Any]:
    """The OCI C{blockIO} entries of the device weights and throttles (blocking: stats the
    named device nodes; run in the io pool).

    @raise InvalidParameter: a path that is not a block device under /dev.
    """
    r = spec.resources
    out: dict[str, Any] = {}

    def entries(devs: tuple[BlkioDevice, ...], field: str) -> list[dict[str, int]]:
        rows = []
        for d in devs:
            major, minor = _device_numbers(d.path)
            rows.append({"major": major, "minor": minor, field: d.value})
        return rows

    if r.blkio_weight_device:
        out["weightDevice"] = entries(r.blkio_weight_device, "weight")
    for attr, oci_key in _BLKIO_THROTTLES.values():
        if getattr(r, attr):
            out[oci_key] = entries(getattr(r, attr), "rate")
    return out


def check_block_devices(spec: CreateSpec) -> None:
    """Create-time check of the Blkio* device paths (blocking)."""
    block_io(spec)


# What docker update changes (applied to a running container through the runtime, stored for
# the next start otherwise); any other field of the body is refused.
UPDATABLE = frozenset(
    {
        "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota",
        "CpuPeriod", "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight", "KernelMemory",
        "CpuRealtimePeriod", "CpuRealtimeRuntime", "OomKillDisable", "RestartPolicy",
    }
)  # fmt: skip
_ZERO: tuple[Any, ...] = (None, 0, "", False, [], {})


def check_update(changes: dict[str, Any], host: HostLimits) -> tuple[list[str], set[str]]:
    """The refusals and discards of a C{docker update} body.

    @return: (warnings, fields to leave as they are).
    @raise InvalidParameter: a field docker update cannot change here, or a value the kernel
        cannot apply.
    """
    if changes.get("IOMaximumIOps") or changes.get("IOMaximumBandwidth"):
        raise InvalidParameter(QOS_LINUX)  # dockerd's create-time text, also on update
    for key, value in changes.items():
        if key not in UPDATABLE and value not in _ZERO:
            raise InvalidParameter(
                f"{key} cannot be changed by docker update: pyd applies it when the container "
                "is created"
            )
    warnings: list[str] = []
    skip: set[str] = set()
    if changes.get("KernelMemory"):
        warnings.append(
            "Your kernel does not support kernel memory limit capabilities or the cgroup is not "
            "mounted. Limitation discarded."
        )
        skip.add("KernelMemory")
    if changes.get("BlkioWeight") and not host.io_weight:
        warnings.append(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. "
            "Weight discarded."
        )
        skip.add("BlkioWeight")
    if changes.get("OomKillDisable") and host.cgroup_v2:
        warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        skip.add("OomKillDisable")
    elif changes.get("OomKillDisable") and not changes.get("Memory"):
        # dockerd checks the update's own resources: the container's limit does not count
        warnings.append(OOM_WITHOUT_LIMIT)
    for key in ("CpuRealtimePeriod", "CpuRealtimeRuntime"):
        if changes.get(key) and not host.realtime:
            what = "period" if key == "CpuRealtimePeriod" else "runtime"
            raise InvalidParameter(f"Your kernel does not support cgroup cpu real-time {what}")
    return warnings, skip
