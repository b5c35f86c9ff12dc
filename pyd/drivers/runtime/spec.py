"""Build an OCI runtime C{config.json} from a resolved container description (layer: drivers).

The engine resolves every Docker rule (image defaults, users, capabilities to add and drop,
resources) into a L{RuntimeSpecInput}; this module only lays it out the way crun expects, with
Docker's default mounts, devices, masked and read-only paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from pyd.core.records import MountSpec

# moby/moby oci/caps/defaults.go: the capabilities a non-privileged container gets.
DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# Capability numbers (linux/capability.h), to intersect with the daemon's CapBnd.
ALL_CAPS: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# Device cgroup rules of a non-privileged container (moby oci/defaults.go).
_DEFAULT_DEVICE_RULES: tuple[tuple[str, int | None, int | None, str], ...] = (
    ("c", None, None, "m"),
    ("b", None, None, "m"),
    ("c", 1, 3, "rwm"),
    ("c", 1, 8, "rwm"),
    ("c", 1, 7, "rwm"),
    ("c", 5, 0, "rwm"),
    ("c", 1, 5, "rwm"),
    ("c", 1, 9, "rwm"),
    ("c", 5, 1, "rwm"),
    ("c", 136, None, "rwm"),
    ("c", 5, 2, "rwm"),
    ("c", 10, 200, "rwm"),
)


@attrs.frozen
class Resources:
    """C{linux.resources} inputs, already in kernel units (0/None = unset)."""

    memory: int = 0
    memory_swap: int = 0  # -1 = unlimited swap
    memory_reservation: int = 0
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int = 0  # <=0: unlimited
    blkio_weight: int = 0
    oom_kill_disable: bool = False
    memory_swappiness: int | None = None  # None / -1: the kernel's
    kernel_memory_tcp: int = 0  # memory.kmem.tcp.limit_in_bytes (cgroup v1 only)
    cpu_realtime_period: int = 0
    cpu_realtime_runtime: int = 0
    # OCI blockIO device entries (weightDevice, throttle*Device) with device numbers
    block_io: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class RuntimeSpecInput:
    """Everything the spec builder needs; the engine fills it from Config + HostConfig."""

    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    terminal: bool
    hostname: str
    rootfs: str
    readonly_rootfs: bool = False
    domainname: str = ""
    mounts: tuple[MountSpec, ...] = ()
    # (host file, container path) for /etc/hosts, /etc/hostname, /etc/resolv.conf
    bind_files: tuple[tuple[str, str], ...] = ()
    netns_path: str | None = ""  # None: host; "": new namespace; path: join
    ipc_host: bool = False
    pid_host: bool = False
    pid_path: str = ""  # join this PID namespace (--pid container:X)
    ipc_path: str = ""  # join this IPC namespace (--ipc container:X) ...
    shm_source: str = ""  # ... and bind its /dev/shm here
    uts_host: bool = False
    resources: Resources = Resources()
    cgroups_path: str = ""
    caps: tuple[str, ...] = DEFAULT_CAPS
    privileged: bool = False
    ulimits: tuple[
        tuple[str, int, int], ...
    ] = ()  # (name, soft, hard), e.g. ("nofile", 1024, 2048)
    sysctls: tuple[tuple[str, str], ...] = ()
    no_new_privileges: bool = False
    init_path: str = ""  # host path of a static init (tini) bind-mounted and run as pid 1
    shm_size: int = 64 * 1024 * 1024
    # The OCI seccomp section (None: unconfined); pyd.drivers.runtime.seccomp makes it.
    seccomp: dict[str, Any] | None = None
    oom_score_adj: int | None = None
    masked_paths: tuple[str, ...] | None = None  # None: Docker's defaults
    readonly_paths: tuple[str, ...] | None = None
    apparmor_profile: str = ""
    devices: tuple[dict[str, Any], ...] = ()  # OCI device entries (privileged: every host one)
    device_rules: tuple[dict[str, Any], ...] = ()  # device cgroup rules after the defaults
    writable_cgroups: bool = False
    cgroupns_private: bool = False  # a cgroup namespace of its own
    annotations: tuple[tuple[str, str], ...] = ()
    console_size: tuple[int, int] = (0, 0)  # (height, width) of the first tty


INIT_DEST = "/sbin/docker-init"


def cap_bounding_set(status_text: str) -> frozenset[str]:
    """The capability names in C{CapBnd} of a C{/proc/<pid>/status} text."""
    mask = 0
    for line in status_text.splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split(":", 1)[1].strip(), 16)
    return frozenset(name for i, name in enumerate(ALL_CAPS) if mask & (1 << i))


def resolve_caps(
    cap_add: Iterable[str],
    cap_drop: Iterable[str],
    privileged: bool,
    bounding: frozenset[str] | None,
) -> tuple[str, ...]:
    """Docker's capability arithmetic, limited to what the daemon itself may grant.

    C{ALL} in either list means every capability. Names are accepted with or without C{CAP_}.
    @raise ValueError: an unknown capability name (the engine turns it into a 400).
    """

    def norm(c: str) -> str:
        c = c.strip().upper()
        if c == "ALL":
            return c
        if not c.startswith("CAP_"):
            c = "CAP_" + c
        if c not in ALL_CAPS:
            raise ValueError(f'unknown capability: "{c}"')
        return c

    adds = [norm(c) for c in cap_add]
    drops = [norm(c) for c in cap_drop]
    if privileged:
        caps = list(ALL_CAPS)
    else:
        caps = [] if "ALL" in drops else list(DEFAULT_CAPS)
        if "ALL" in adds:
            caps = list(ALL_CAPS)
        else:
            for c in adds:
                if c not in caps:
                    caps.append(c)
        if "ALL" not in drops:
            caps = [c for c in caps if c not in drops or c in adds]
    if bounding is not None:
        caps = [c for c in caps if c in bounding]
    return tuple(caps)


def _rlimit(name: str) -> str:
    return "RLIMIT_" + name.upper()


def _device_rules(privileged: bool) -> list[dict[str, Any]]:
    if privileged:
        return [{"allow": True, "access": "rwm"}]
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for typ, major, minor, access in _DEFAULT_DEVICE_RULES:
        rule: dict[str, Any] = {"allow": True, "type": typ, "access": access}
        if major is not None:
            rule["major"] = major
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    return rules


def _resources(
    r: Resources, privileged: bool, extra_rules: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    out: dict[str, Any] = {"devices": _device_rules(privileged) + [dict(x) for x in extra_rules]}
    mem: dict[str, Any] = {}
    if r.memory > 0:
        mem["limit"] = r.memory
        if r.memory_swap > 0:
            mem["swap"] = r.memory_swap
        elif r.memory_swap == 0:
            mem["swap"] = r.memory * 2  # Docker: swap defaults to the same again
        else:
            mem["swap"] = -1
    if r.memory_reservation > 0:
        mem["reservation"] = r.memory_reservation
    if r.oom_kill_disable:
        mem["disableOOMKiller"] = True
    if r.memory_swappiness is not None and r.memory_swappiness >= 0:
        mem["swappiness"] = r.memory_swappiness
    if r.kernel_memory_tcp > 0:
        mem["kernelTCP"] = r.kernel_memory_tcp
    if mem:
        out["memory"] = mem
    cpu: dict[str, Any] = {}
    if r.cpu_shares > 0:
        cpu["shares"] = r.cpu_shares
    if r.cpu_quota > 0:
        cpu["quota"] = r.cpu_quota
    if r.cpu_period > 0:
        cpu["period"] = r.cpu_period
    if r.cpuset_cpus:
        cpu["cpus"] = r.cpuset_cpus
    if r.cpuset_mems:
        cpu["mems"] = r.cpuset_mems
    if r.cpu_realtime_period:
        cpu["realtimePeriod"] = r.cpu_realtime_period
    if r.cpu_realtime_runtime:
        cpu["realtimeRuntime"] = r.cpu_realtime_runtime
    if cpu:
        out["cpu"] = cpu
    if r.pids_limit > 0:
        out["pids"] = {"limit": r.pids_limit}
    block: dict[str, Any] = dict(r.block_io)
    if r.blkio_weight > 0:
        block["weight"] = r.blkio_weight
    if block:
        out["blockIO"] = block
    return out


def _user_mount(m: MountSpec) -> dict[str, Any]:
    if m.type == "tmpfs":
        opts = list(m.options) or ["nosuid", "nodev", "noexec"]
        if not m.rw and "ro" not in opts:
            opts.append("ro")
        return {"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": opts}
    opts = ["bind" if "bind" in m.options else "rbind", "rw" if m.rw else "ro"]
    opts.append(m.propagation or "rprivate")
    opts.extend(o for o in m.options if o not in opts and o not in ("bind", "rbind"))
    return {"destination": m.destination, "type": "bind", "source": m.source, "options": opts}


def build_spec(inp: RuntimeSpecInput) -> dict[str, Any]:
    """The OCI C{config.json} as a dict (the caller serialises it into the bundle)."""
    args = list(inp.args)
    mounts: list[dict[str, Any]] = [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro" if not inp.privileged else "rw"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": [
                "nosuid",
                "noexec",
                "nodev",
                "relatime",
                "rw" if inp.writable_cgroups or inp.privileged else "ro",
            ],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
    ]
    user_dests = {m.destination.rstrip("/") or "/" for m in inp.mounts}
    if "/dev/shm" not in user_dests and inp.shm_source:
        mounts.append(
            {
                "destination": "/dev/shm",
                "type": "bind",
                "source": inp.shm_source,
                "options": ["rbind", "rprivate"],
            }
        )
    elif "/dev/shm" not in user_dests:
        mounts.append(
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={inp.shm_size}"],
            }
        )
    for host_path, dest in inp.bind_files:
        if dest in user_dests:
            continue
        mounts.append(
            {
                "destination": dest,
                "type": "bind",
                "source": host_path,
                "options": ["rbind", "rprivate"],
            }
        )
    # Sorted by depth so a mount at /a/b lands on top of one at /a (as dockerd sorts them).
    for m in sorted(inp.mounts, key=lambda m: m.destination.rstrip("/").count("/")):
        mounts.append(_user_mount(m))
    if inp.init_path:
        mounts.append(
            {
                "destination": INIT_DEST,
                "type": "bind",
                "source": inp.init_path,
                "options": ["rbind", "ro", "rprivate"],
            }
        )
        args = [INIT_DEST, "--", *args]

    namespaces: list[dict[str, Any]] = [{"type": "mount"}]
    if not inp.pid_host:
        namespaces.append({"type": "pid", **({"path": inp.pid_path} if inp.pid_path else {})})
    if not inp.ipc_host:
        namespaces.append({"type": "ipc", **({"path": inp.ipc_path} if inp.ipc_path else {})})
    if not inp.uts_host:
        namespaces.append({"type": "uts"})
    if inp.cgroupns_private:
        namespaces.append({"type": "cgroup"})
    if inp.netns_path is not None:
        ns: dict[str, Any] = {"type": "network"}
        if inp.netns_path:
            ns["path"] = inp.netns_path
        namespaces.append(ns)

    caps = list(inp.caps)
    process: dict[str, Any] = {
        "terminal": inp.terminal,
        "user": {"uid": inp.uid, "gid": inp.gid},
        "args": args,
        "env": list(inp.env),
        "cwd": inp.cwd or "/",
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
            "inheritable": [],
        },
        "noNewPrivileges": inp.no_new_privileges,
    }
    if inp.additional_gids:
        process["user"]["additionalGids"] = list(inp.additional_gids)
    if inp.ulimits:
        process["rlimits"] = [
            {"type": _rlimit(n), "soft": soft, "hard": hard} for n, soft, hard in inp.ulimits
        ]
    if inp.terminal and inp.console_size != (0, 0):
        process["consoleSize"] = {"height": inp.console_size[0], "width": inp.console_size[1]}
    if inp.oom_score_adj is not None:
        process["oomScoreAdj"] = inp.oom_score_adj
    if inp.apparmor_profile:
        process["apparmorProfile"] = inp.apparmor_profile

    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": _resources(inp.resources, inp.privileged, inp.device_rules),
    }
    if inp.cgroups_path:
        linux["cgroupsPath"] = inp.cgroups_path
    if inp.sysctls:
        linux["sysctl"] = dict(inp.sysctls)
    if not inp.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS if inp.masked_paths is None else inp.masked_paths)
        linux["readonlyPaths"] = list(
            READONLY_PATHS if inp.readonly_paths is None else inp.readonly_paths
        )
    if inp.seccomp is not None:
        linux["seccomp"] = inp.seccomp
    if inp.devices:
        linux["devices"] = [dict(d) for d in inp.devices]

    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": inp.rootfs, "readonly": inp.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
    }
    if inp.annotations:
        spec["annotations"] = dict(inp.annotations)
    if not inp.uts_host:
        spec["hostname"] = inp.hostname
        if inp.domainname:
            spec["domainname"] = inp.domainname
    return spec
