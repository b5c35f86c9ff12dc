"""The operator's rules: what an operator may ask for, decided on parsed values (layer: api).

An operator may do everything except what gives root on the host (docs/security.md has the
table). These rules read the typed create spec's records (L{pyd.engine.spec.CreateSpec}: the
request's, a stored container's through L{stored_spec}, a build step's) and the engine's own
parsers (L{parse_bind}/L{parse_mount}, the strict host-port and sysctl-name functions), and look
at the objects a request names: a container it joins, takes volumes from, execs into, attaches
stdin to or copies from or into must itself be one an operator could have created (not
"admin-tier"); a named volume must not be a host path in disguise. The HostConfig rules are an
allow-list, L{OPERATOR_HOST_CONFIG}, keyed by HostConfig field (L{SPEC_FIELDS} says where each
lives in the spec): a field not listed is admin-only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from pyd.api.identity import Policy
from pyd.core.errors import Forbidden
from pyd.core.records import Container
from pyd.drivers.runtime.spec import DEFAULT_CAPS, MASKED_PATHS, READONLY_PATHS
from pyd.drivers.volumes.stage import confine
from pyd.engine.networks import host_port_range
from pyd.engine.spec import CreateSpec, Mount, PortBinding, parse_create, stored_spec
from pyd.engine.spec.records import Devices
from pyd.engine.spec.rules import sysctl_name
from pyd.engine.volumes import parse_bind, parse_mount

_MAX_DEPTH = 8  # container:X chains followed before giving up (refused)

_JOINABLE_NS = ("NetworkMode", "PidMode", "IpcMode")
# Capabilities an operator may add: Docker's defaults (re-adding after a drop) plus those that
# act only inside the container's own namespaces or only on resources (denial of service is out
# of scope). Everything else, and names pyd does not know, are admin-only.
_OPERATOR_CAPS = frozenset(
    [c.removeprefix("CAP_") for c in DEFAULT_CAPS]
    + ["NET_ADMIN", "NET_BROADCAST", "IPC_LOCK", "SYS_NICE", "SYS_RESOURCE"]
)
# Sysctls of the container's own namespaces (runc's validator): IPC, mqueue, net (own netns),
# UTS names.
_NS_SYSCTLS = frozenset(
    (
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
        "kernel.domainname",
        "kernel.hostname",
    )
)
_NS_SYSCTL_PREFIXES = ("fs.mqueue.", "net.")
# Options of the local volume driver's C{o=} an operator may use.
_TMPFS_OPTS = frozenset(
    [
        "size",
        "mode",
        "uid",
        "gid",
        "nr_inodes",
        "nr_blocks",
        "huge",
        "mpol",
        "ro",
        "rw",
        "noexec",
        "exec",
        "nosuid",
        "suid",
        "nodev",
        "dev",
        "noatime",
        "relatime",
    ]
)
_BIND_OPTS = frozenset(
    [
        "bind",
        "rbind",
        "ro",
        "rw",
        "noexec",
        "exec",
        "nosuid",
        "suid",
        "nodev",
        "dev",
        "private",
        "rprivate",
        "slave",
        "rslave",
        "noatime",
        "relatime",
    ]
)
_SHARED = ("shared", "rshared")
# Local-volume types whose device names a server, not a host path (C{//server/share}).
_NETWORK_FS = frozenset(("tmpfs", "nfs", "nfs4", "cifs", "smb3"))


# --- what the rules need to know about existing objects --------------------------------------


class Lookup(Protocol):
    """Existing objects the operator rules look at (the engine services, through an adapter)."""

    def containers(self, ref: str) -> list[Container]:
        """Every container C{ref} names or may come to name while the call runs: the one with
        that id, the one of that name, and each whose id starts with C{ref} (removing one of
        them changes what C{ref} resolves to, so a rule must hold for all of them)."""
        ...

    def parse_create(self, body: Any, api_version: tuple[int, int]) -> CreateSpec:
        """The engine's door for a create body (C{ContainerService.parse_create}): the rules
        read the typed spec the engine will create from, parsed once per request."""
        ...

    async def volume_options(self, name: str) -> Mapping[str, str] | None:
        """The driver options of volume C{name}; None when it has none or does not exist."""
        ...

    def exec_session(self, exec_id: str) -> tuple[str, bool] | None:
        """(container id, privileged) of exec instance C{exec_id}, or None."""
        ...

    def network_driver(self, ref: str) -> str | None:
        """The driver of network C{ref} (name, id or id prefix), or None."""
        ...

    def volume_users(self, name: str) -> list[Container]:
        """The containers that mount volume C{name}."""
        ...

    async def bind_root(self, path: str, roots: Sequence[str]) -> tuple[str, str] | None:
        """The one of C{roots} holding host C{path} with symlinks resolved, and the path beneath
        it; None: under none. Resolving walks the host's filesystem: never on the reactor."""
        ...


def candidates(containers: Iterable[Container], ref: str) -> list[Container]:
    """The containers C{ref} may name (see L{Lookup.containers}), as
    C{ContainerService.resolve} matches: exact id, name with or without C{/}, hex id prefix,
    and a legacy link name (C{parent/alias} names the linked container)."""
    name = ref if ref.startswith("/") else "/" + ref
    hexref = bool(ref) and all(ch in "0123456789abcdef" for ch in ref)
    every = list(containers)
    linked = {
        str(link[0])
        for c in every
        for link in c.extra.get("links") or []
        if name.count("/") > 1 and link[1] == name
    }
    return [
        c
        for c in every
        if c.id == ref or c.name == name or (hexref and c.id.startswith(ref)) or c.id in linked
    ]


class NoLookup:
    """A L{Lookup} that knows no objects (unit tests, a daemon without containers)."""

    def containers(self, ref: str) -> list[Container]:
        """Nothing."""
        return []

    def parse_create(self, body: Any, api_version: tuple[int, int]) -> CreateSpec:
        """L{pyd.engine.spec.parse_create}."""
        return parse_create(body, api_version)

    async def volume_options(self, name: str) -> Mapping[str, str] | None:
        """Nothing."""
        return None

    def exec_session(self, exec_id: str) -> tuple[str, bool] | None:
        """Nothing."""
        return None

    def network_driver(self, ref: str) -> str | None:
        """Nothing."""
        return None

    def volume_users(self, name: str) -> list[Container]:
        """Nothing."""
        return []

    async def bind_root(self, path: str, roots: Sequence[str]) -> tuple[str, str] | None:
        """L{pyd.drivers.volumes.stage.confine}, inline (unit tests: no reactor to keep)."""
        return confine(path, roots)


def deny(role: str, rule: str) -> Forbidden:
    return Forbidden(f"pyd authorization: role {role} may not {rule}")


@attrs.frozen
class Ctx:
    role: str
    policy: Policy
    lookup: Lookup

    def deny(self, rule: str) -> Forbidden:
        return deny(self.role, rule)


def check_network(ctx: Ctx, ref: str) -> None:
    if ref == "host" or ctx.lookup.network_driver(ref) == "host":
        raise ctx.deny(f"connect containers to the host network ({ref})")


async def check_existing(ctx: Ctx, ref: str, what: str) -> None:
    """Refuse C{what} on a container the operator could not have created: on any container
    C{ref} may resolve to by the time the handler resolves it (none: "No such container")."""
    for c in ctx.lookup.containers(ref):
        why = await container_refusal(ctx, c, 1)
        if why:
            raise ctx.deny(f"{what} container {_name(c)} ({why})")


def beyond(e: Forbidden) -> str:
    """The rule of a refusal, for a message about another object."""
    return "made with what an operator may not: " + e.message.split(" may not ", 1)[-1]


def _name(c: Container) -> str:
    return c.name.lstrip("/") or c.id[:12]


async def container_refusal(ctx: Ctx, c: Container, depth: int) -> str | None:
    """Why container C{c} is beyond what the operator may create (None: it is not)."""
    if depth > _MAX_DEPTH:
        return "its container: namespace chain is too long to check"
    try:
        # A stored field the spec does not know (a later version's) is admin-only.
        check_unlisted(ctx, c.host_config)
        # The stored container read as the engine reads it to run it (L{stored_spec}); its
        # mounts as resolved at create (binds, volumes, volumes-from), not its request; neither
        # a low published port nor a cgroup parent nor the runtime it runs under (every stored
        # container names one: the daemon's default when its create named none) is a way into
        # the container's powers.
        await check_spec(
            ctx,
            stored_spec(c.config, c.host_config, c.networking_config),
            depth,
            # its links as registered (by id: they follow renames), not its request's names
            skip=_RESOLVED_AT_CREATE | {"Links"},
        )
        await _check_resolved_mounts(ctx, c)
        await _rule_links(ctx, "Links", [str(x[0]) for x in c.extra.get("links") or []], depth)
    except Forbidden as e:
        return beyond(e)
    return None


_RESOLVED_AT_CREATE = frozenset(
    ("Binds", "Mounts", "VolumesFrom", "PortBindings", "CgroupParent", "Runtime")
)


async def _check_resolved_mounts(ctx: Ctx, c: Container) -> None:
    for m in c.mounts:
        if m.type == "bind":
            await _check_path(ctx, m.source)
            if m.propagation in _SHARED:
                raise ctx.deny(f"bind-mount with {m.propagation} propagation")
        elif m.type == "volume" and m.name:
            await _check_named_volume(ctx, m.name)


# --- HostConfig ---------------------------------------------------------------------------------


async def check_spec(
    ctx: Ctx, spec: CreateSpec, depth: int, skip: frozenset[str] = frozenset()
) -> None:
    """The operator's allow-list over the typed create spec's HostConfig records: each field in
    L{OPERATOR_HOST_CONFIG} passes its rule; any other field is admin-only unless it holds its
    zero value (the record's default; clients send many fields empty). Fields are named by
    their HostConfig key (L{SPEC_FIELDS} says which record field each is); C{skip} names
    fields judged otherwise (a stored container's resolved mounts)."""
    for key in _JUDGED_ORDER:
        if key in skip:
            continue
        value, zero = _spec_value(spec, key)
        if value == zero:
            # (an empty MaskedPaths is no zero: its record tells it from one not given, None)
            continue
        if key not in OPERATOR_HOST_CONFIG:
            raise ctx.deny(_admin_only(key, value))
        rule = OPERATOR_HOST_CONFIG[key]
        if rule is not None:
            await rule(ctx, key, value, depth)


def check_unlisted(ctx: Ctx, host_config: Mapping[str, Any]) -> None:
    """A HostConfig dict's fields that no typed record carries (a stored container of a later
    version, an old client's start body): admin-only once they hold more than a zero value.
    The typed spec drops such keys, so they are judged by name here."""
    for key in sorted(host_config):
        # Go matches field names case-insensitively: a key the spec reads in another case is
        # judged on the spec.
        if key.lower() not in _SPEC_KEYS_FOLDED and host_config[key] not in _ZERO:
            raise ctx.deny(_admin_only(key, host_config[key]))


def _admin_only(key: str, value: Any) -> str:
    return _ADMIN_ONLY.get(key, "set HostConfig.{key} (admin only)").format(key=key, value=value)


def _spec_value(spec: CreateSpec, key: str) -> tuple[Any, Any]:
    """The value of HostConfig field C{key} in the spec, and its zero: the value a record of
    that section made with no arguments holds (every section has a default for each field)."""
    section_name, field_name = SPEC_FIELDS[key]
    section = getattr(spec, section_name)
    zero = _ZEROS.get(key, _ZEROS)
    if zero is _ZEROS:
        zero = _ZEROS[key] = getattr(type(section)(), field_name)
    return getattr(section, field_name), zero


_ZEROS: dict[str, Any] = {}  # HostConfig field -> its zero in the spec (filled as first read)


async def _rule_namespace(ctx: Ctx, key: str, value: Any, depth: int) -> None:
    mode = str(value)
    if mode == "host":
        raise ctx.deny(f"use the host's namespace ({key}=host)")
    if key in _JOINABLE_NS and mode.startswith("container:"):
        for other in ctx.lookup.containers(mode.partition(":")[2]):
            why = await container_refusal(ctx, other, depth + 1)
            if why:
                raise ctx.deny(
                    f"join the namespaces of container {_name(other)} ({key}={mode}: {why})"
                )
        return
    if key == "NetworkMode":
        # A network by name, id or prefix: not the host network in disguise.
        if mode not in _PLAIN_NETWORKS and ctx.lookup.network_driver(mode) == "host":
            raise ctx.deny(f"use the host's namespace (NetworkMode={mode}: the host network)")
        return
    if mode not in _NAMESPACE_VALUES[key]:
        raise ctx.deny(f"set {key}={mode} (operators may use {_NAMESPACE_HELP[key]})")


async def _rule_caps(ctx: Ctx, key: str, value: tuple[str, ...], depth: int) -> None:
    for cap in value:
        name = cap.upper().removeprefix("CAP_")
        if name not in _OPERATOR_CAPS:
            raise ctx.deny(f"add capability {name} (CapAdd)")


async def _rule_security_opts(
    ctx: Ctx, key: str, value: tuple[tuple[str, str], ...], depth: int
) -> None:
    for opt_key, opt_value in value:
        if opt_key == "no-new-privileges":
            continue
        if opt_key == "apparmor" and opt_value == "docker-default":
            continue
        if opt_key == "label" and opt_value.startswith("level:"):
            continue
        raw = f"{opt_key}={opt_value}"
        if opt_key in ("seccomp", "apparmor", "label", "systempaths") and opt_value in (
            "unconfined",
            "disable",
        ):
            raise ctx.deny(f"use unconfined security options ({raw})")
        raise ctx.deny(
            f"use security option {raw[:80]} (operators may set no-new-privileges, "
            "apparmor=docker-default and label=level: only)"
        )


async def _rule_system_paths(ctx: Ctx, key: str, value: tuple[str, ...], depth: int) -> None:
    defaults = MASKED_PATHS if key == "MaskedPaths" else READONLY_PATHS
    if not set(defaults) <= set(value):
        raise ctx.deny(f"unmask or make writable kernel paths ({key} without Docker's defaults)")


async def _rule_sysctls(ctx: Ctx, key: str, value: Mapping[str, str], depth: int) -> None:
    for name in value:
        # The name of the file the runtime writes (the engine refuses the same keys).
        k = sysctl_name(name)
        if k in _NS_SYSCTLS or k.startswith(_NS_SYSCTL_PREFIXES):
            continue
        raise ctx.deny(f"set sysctl {k} (not in the container's own namespaces)")


async def _rule_ports(
    ctx: Ctx, key: str, value: Mapping[str, tuple[PortBinding, ...]], depth: int
) -> None:
    """Host ports below 1024 are root's on the host (a published one shadows a host service
    such as ssh for traffic from outside); ephemeral and high ports are fine. Host ports are
    read with the engine's own parser (C{+22}, C{ 22}, C{8_1} are its 400, not port 22)."""
    for port, binds in value.items():
        for b in binds:
            low, _high = host_port_range(b.host_port)
            if 0 < low < 1024:
                raise ctx.deny(f"publish host port {b.host_port} (below 1024, for {port})")


async def _rule_binds(ctx: Ctx, key: str, value: tuple[str, ...], depth: int) -> None:
    for bind in value:
        # The engine's own parser (L{parse_bind}): what is a host path and what is a volume
        # name is decided once, for the rules and the mount alike (its 400 for a bad entry).
        await _check_parsed_mount(ctx, parse_bind(bind))


async def _rule_mounts(ctx: Ctx, key: str, value: tuple[Mount, ...], depth: int) -> None:
    for mount in value:
        if mount.type == "volume" and mount.volume is not None and mount.volume.driver_options:
            await check_volume_create(ctx, dict(mount.volume.driver_options))
        await _check_parsed_mount(ctx, parse_mount(mount, None))


async def _rule_volumes_from(ctx: Ctx, key: str, value: tuple[str, ...], depth: int) -> None:
    for spec in value:
        ref, _, mode = spec.partition(":")
        for other in ctx.lookup.containers(ref):
            try:
                await _check_resolved_mounts(ctx, other)
            except Forbidden as e:
                raise ctx.deny(f"use volumes from container {_name(other)} ({beyond(e)})") from None
            for m in other.mounts:
                if m.type == "volume" and m.name and m.rw and mode != "ro":
                    await _check_writable_share(ctx, m.name)


async def _rule_links(ctx: Ctx, key: str, value: Any, depth: int) -> None:
    # A link on the default bridge hands the child's environment to the parent (ALIAS_ENV_*):
    # an operator may link only to containers an operator could have created.
    for link in value or []:
        for other in ctx.lookup.containers(str(link).split(":")[0]):
            why = await container_refusal(ctx, other, depth + 1)
            if why:
                raise ctx.deny(f"link to container {_name(other)} (Links={link}: {why})")


async def _rule_isolation(ctx: Ctx, key: str, value: str, depth: int) -> None:

    if value not in ("default",):
        raise ctx.deny(f"set Isolation={value} (only default on Linux)")


_Rule = Callable[[Ctx, str, Any, int], Awaitable[None]]

# Where each HostConfig field lives in the typed create spec (L{pyd.engine.spec.CreateSpec}):
# (section, attribute). A unit test checks that every HostConfig field the parser knows and every
# attribute of these sections is named here once.
SPEC_FIELDS: dict[str, tuple[str, str]] = {
    "Binds": ("mounts", "binds"),
    "Mounts": ("mounts", "mounts"),
    "VolumesFrom": ("mounts", "volumes_from"),
    "Tmpfs": ("mounts", "tmpfs"),
    "VolumeDriver": ("mounts", "volume_driver"),
    "NetworkMode": ("namespaces", "network"),
    "PidMode": ("namespaces", "pid"),
    "IpcMode": ("namespaces", "ipc"),
    "UTSMode": ("namespaces", "uts"),
    "UsernsMode": ("namespaces", "userns"),
    "CgroupnsMode": ("namespaces", "cgroupns"),
    "Cgroup": ("namespaces", "cgroup"),
    "Privileged": ("security", "privileged"),
    "CapAdd": ("security", "cap_add"),
    "CapDrop": ("security", "cap_drop"),
    "SecurityOpt": ("security", "security_opt"),
    "MaskedPaths": ("security", "masked_paths"),
    "ReadonlyPaths": ("security", "readonly_paths"),
    "ReadonlyRootfs": ("security", "readonly_rootfs"),
    "GroupAdd": ("security", "group_add"),
    "Devices": ("devices", "devices"),
    "DeviceCgroupRules": ("devices", "cgroup_rules"),
    "DeviceRequests": ("devices", "requests"),
    "Sysctls": ("runtime", "sysctls"),
    "Isolation": ("runtime", "isolation"),
    "Init": ("runtime", "init"),
    "Runtime": ("runtime", "runtime"),
    "ShmSize": ("runtime", "shm_size"),
    "OomScoreAdj": ("runtime", "oom_score_adj"),
    "Annotations": ("runtime", "annotations"),
    "ConsoleSize": ("runtime", "console_size"),
    "StorageOpt": ("runtime", "storage_opt"),
    "ContainerIDFile": ("runtime", "container_id_file"),
    "PortBindings": ("network", "port_bindings"),
    "PublishAllPorts": ("network", "publish_all"),
    "Dns": ("network", "dns"),
    "DnsOptions": ("network", "dns_options"),
    "DnsSearch": ("network", "dns_search"),
    "ExtraHosts": ("network", "extra_hosts"),
    "Links": ("network", "links"),
    "RestartPolicy": ("restart", "name"),
    "AutoRemove": ("restart", "auto_remove"),
    "LogConfig": ("logging", "type"),
    "CpuShares": ("resources", "cpu_shares"),
    "Memory": ("resources", "memory"),
    "NanoCpus": ("resources", "nano_cpus"),
    "BlkioWeight": ("resources", "blkio_weight"),
    "BlkioWeightDevice": ("resources", "blkio_weight_device"),
    "BlkioDeviceReadBps": ("resources", "blkio_read_bps"),
    "BlkioDeviceWriteBps": ("resources", "blkio_write_bps"),
    "BlkioDeviceReadIOps": ("resources", "blkio_read_iops"),
    "BlkioDeviceWriteIOps": ("resources", "blkio_write_iops"),
    "CpuPeriod": ("resources", "cpu_period"),
    "CpuQuota": ("resources", "cpu_quota"),
    "CpuRealtimePeriod": ("resources", "cpu_realtime_period"),
    "CpuRealtimeRuntime": ("resources", "cpu_realtime_runtime"),
    "CpusetCpus": ("resources", "cpuset_cpus"),
    "CpusetMems": ("resources", "cpuset_mems"),
    "KernelMemory": ("resources", "kernel_memory"),
    "KernelMemoryTCP": ("resources", "kernel_memory_tcp"),
    "MemoryReservation": ("resources", "memory_reservation"),
    "MemorySwap": ("resources", "memory_swap"),
    "MemorySwappiness": ("resources", "memory_swappiness"),
    "OomKillDisable": ("resources", "oom_kill_disable"),
    "PidsLimit": ("resources", "pids_limit"),
    "Ulimits": ("resources", "ulimits"),
    "CpuCount": ("resources", "cpu_count"),
    "CpuPercent": ("resources", "cpu_percent"),
    "IOMaximumIOps": ("resources", "io_maximum_iops"),
    "IOMaximumBandwidth": ("resources", "io_maximum_bandwidth"),
    "CgroupParent": ("resources", "cgroup_parent"),
}
_SPEC_KEYS_FOLDED = frozenset(k.lower() for k in SPEC_FIELDS)
# Record attributes that are no HostConfig field the rules judge: the endpoints (judged by
# network, L{check_network}), the bind roots authz itself hands the engine, the restart count and
# log options (their field, RestartPolicy/LogConfig, is allowed whatever it holds).
SPEC_NOT_JUDGED = frozenset(
    (
        ("network", "endpoints"),
        ("mounts", "bind_roots"),
        ("restart", "maximum_retry_count"),
        ("logging", "config"),
    )
)

# What an operator may set in a HostConfig, with the rule the value must pass (None: any value;
# resources, DNS, restart and logging act inside the container or only on its limits, and
# denial of service is out of scope). A field not listed here is admin-only once it holds more
# than its zero value: a field a later API version adds is admin-only until someone decides.
OPERATOR_HOST_CONFIG: dict[str, _Rule | None] = {
    # mounts (host paths under allowed-bind-paths, volumes that are no host bind in disguise)
    "Binds": _rule_binds,
    "Mounts": _rule_mounts,
    "VolumesFrom": _rule_volumes_from,
    "Tmpfs": None,
    "VolumeDriver": None,
    # namespaces: never the host's; container:X only of a container the operator could make
    "NetworkMode": _rule_namespace,
    "PidMode": _rule_namespace,
    "IpcMode": _rule_namespace,
    "UTSMode": _rule_namespace,
    "UsernsMode": _rule_namespace,
    "CgroupnsMode": _rule_namespace,
    # confinement
    "CapAdd": _rule_caps,
    "CapDrop": None,
    "SecurityOpt": _rule_security_opts,
    "MaskedPaths": _rule_system_paths,
    "ReadonlyPaths": _rule_system_paths,
    "ReadonlyRootfs": None,
    "GroupAdd": None,
    "Sysctls": _rule_sysctls,
    "Isolation": _rule_isolation,
    # networking
    "PortBindings": _rule_ports,
    "PublishAllPorts": None,
    "Dns": None,
    "DnsOptions": None,
    "DnsSearch": None,
    "ExtraHosts": None,
    "Links": _rule_links,
    # lifecycle, logging, the process
    "RestartPolicy": None,
    "AutoRemove": None,
    "LogConfig": None,
    "ContainerIDFile": None,
    "ConsoleSize": None,
    "Init": None,
    "OomScoreAdj": None,
    "ShmSize": None,
    # resources (the Blkio* device paths name devices to throttle, never to open)
    **dict.fromkeys(
        (
            "CpuShares", "Memory", "NanoCpus", "BlkioWeight", "BlkioWeightDevice",
            "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
            "BlkioDeviceWriteIOps", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod",
            "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "KernelMemory", "KernelMemoryTCP",
            "MemoryReservation", "MemorySwap", "MemorySwappiness", "OomKillDisable", "PidsLimit",
            "Ulimits", "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth",
        ),
        None,
    ),
}  # fmt: skip
# Why some admin-only fields are (the refusal names the rule); others: "admin only".
_ADMIN_ONLY = {
    "Privileged": "create privileged containers",
    "Devices": "give containers host devices (Devices)",
    "DeviceCgroupRules": "give containers host devices (DeviceCgroupRules)",
    "DeviceRequests": "give containers host devices (DeviceRequests)",
    "CgroupParent": "choose the cgroup parent (CgroupParent={value})",
    "Annotations": "set OCI annotations (the runtime acts on some of them)",
    "Runtime": "choose the OCI runtime (Runtime={value})",
}
# The order fields are judged in: the refusals that say the most first (a privileged create
# is refused as privileged), then the table's order, then fields no one listed.
_ORDER = {key: i for i, key in enumerate([*_ADMIN_ONLY, *OPERATOR_HOST_CONFIG])}
_JUDGED_ORDER = sorted(SPEC_FIELDS, key=lambda k: _ORDER.get(k, len(_ORDER)))
# The zero values of a HostConfig dict's fields (L{check_unlisted}).
_ZERO: tuple[Any, ...] = (None, "", 0, False, [], {}, ())
_PLAIN_NETWORKS = ("default", "bridge", "none")
_NAMESPACE_VALUES = {
    "PidMode": ("",),
    "IpcMode": ("", "none", "private", "shareable"),
    "UTSMode": ("",),
    "UsernsMode": ("",),
    "CgroupnsMode": ("", "private"),
}
_NAMESPACE_HELP = {
    "PidMode": "their own or container:X",
    "IpcMode": "none, private, shareable or container:X",
    "UTSMode": "their own",
    "UsernsMode": "the daemon's default",
    "CgroupnsMode": "private",
}


def check_devices(ctx: Ctx, devices: Devices) -> None:
    """Host devices are admin-only (create's rules, and C{docker update}'s)."""
    for key, value in (
        ("Devices", devices.devices),
        ("DeviceCgroupRules", devices.cgroup_rules),
        ("DeviceRequests", devices.requests),
    ):
        if value:
            raise ctx.deny(f"give containers host devices ({key})")


async def _check_parsed_mount(ctx: Ctx, m: Any) -> None:
    if m.type == "bind":
        await _check_path(ctx, m.source)
        if m.propagation in _SHARED:
            raise ctx.deny(f"bind-mount with {m.propagation} propagation")
    elif m.type == "volume":
        if m.source:
            await _check_named_volume(ctx, m.source)
            if m.rw:
                await _check_writable_share(ctx, m.source)
    elif m.type != "tmpfs":
        raise ctx.deny(f"use mounts of type {m.type}")


# --- volumes --------------------------------------------------------------------------------------


def _o_list(opts: Mapping[str, Any]) -> list[str]:
    return [o.strip() for o in str(opts.get("o") or "").split(",") if o.strip()]


async def _volume_host_reach(ctx: Ctx, opts: Mapping[str, Any]) -> str | None:
    """Why a local volume with C{opts} reaches the host (None: it does not)."""
    fstype = str(opts.get("type") or "")
    device = str(opts.get("device") or "")
    olist = _o_list(opts)
    keys = {o.split("=", 1)[0] for o in olist}
    if keys & {"bind", "rbind"}:
        if not device.startswith("/"):
            return f"bind-mount the relative host path {device!r} (local volume o=bind)"
        if not await path_allowed(ctx, device):
            return (
                f"bind-mount host path {device} (local volume o=bind, not under allowed-bind-paths)"
            )
        if keys & set(_SHARED):
            return "bind-mount with shared propagation (local volume)"
        return None
    if fstype in ("overlay", "aufs") or "loop" in keys:
        return (
            f"mount host paths or files through a local volume (type={fstype}, o={opts.get('o')})"
        )
    if device.startswith("/") and fstype not in _NETWORK_FS:
        return f"mount host device or path {device} (local volume type={fstype or 'auto'})"
    return None


async def check_volume_create(ctx: Ctx, opts: Any) -> None:
    """An operator creates plain volumes, tmpfs volumes, and binds under allowed-bind-paths."""
    if not isinstance(opts, dict) or not opts:
        return
    why = await _volume_host_reach(ctx, opts)
    if why:
        raise ctx.deny(why)
    fstype = str(opts.get("type") or "")
    keys = {o.split("=", 1)[0] for o in _o_list(opts)}
    if keys & {"bind", "rbind"}:
        bad = keys - _BIND_OPTS
    elif fstype == "tmpfs":
        bad = keys - _TMPFS_OPTS
    elif not fstype and not opts.get("device") and not keys:
        return  # only e.g. size
    else:
        raise ctx.deny(
            f"create local volumes of type {fstype or '(none)'} (the daemon mounts them as root "
            "on the host; an admin can create them for operators to use)"
        )
    if bad:
        raise ctx.deny(f"use local volume mount options {','.join(sorted(bad))}")


async def _check_named_volume(ctx: Ctx, name: str) -> None:
    opts = await ctx.lookup.volume_options(name)
    if opts:
        why = await _volume_host_reach(ctx, opts)
        if why:
            raise ctx.deny(f"use volume {name} (made with what an operator may not: {why})")


async def _check_writable_share(ctx: Ctx, name: str) -> None:
    """A volume an admin-tier container mounts may be mounted read-only only: what an operator
    writes there, that container may run with its powers."""
    for c in ctx.lookup.volume_users(name):
        why = await container_refusal(ctx, c, 1)
        if why:
            raise ctx.deny(
                f"mount volume {name} writable: container {_name(c)} uses it ({why}); "
                "mount it read-only"
            )


# --- host paths --------------------------------------------------------------------------------------


async def path_allowed(ctx: Ctx, path: str) -> bool:
    """Whether host C{path}, with symlinks resolved, lies under one of the allowed-bind-paths.

    Resolving stops a symlink planted under an allowed directory from pointing the mount
    elsewhere; it walks the host's filesystem, so the lookup does it off the reactor (the volume
    driver's pool). What is mounted at start is opened again beneath the root this finds, by
    descriptor (L{pyd.engine.volumes.confine}): a link swapped in since is refused there.
    """
    roots = ctx.policy.allowed_bind_paths
    return bool(roots) and await ctx.lookup.bind_root(path, roots) is not None


async def _check_path(ctx: Ctx, path: str) -> None:
    if not await path_allowed(ctx, path):
        raise ctx.deny(f"bind-mount host path {path} (not under allowed-bind-paths)")
