"""The typed create spec: frozen records of what a container asks for (layer: engine).

L{CreateSpec} is what L{pyd.engine.spec.parse_create} makes of a create body; everything below the
engine's door (create, start, the runtime spec, networks, volumes, authorization) reads these
records. The wire dicts it was made from are kept on the spec only to answer inspect as sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs


def _fmap(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


def _tup(value: Any) -> tuple[Any, ...]:
    return tuple(value or ())


def _opt_tup(value: Any) -> tuple[Any, ...] | None:
    return None if value is None else tuple(value)


def container_ref(mode: str) -> str:
    """The container a C{container:<id or name>} namespace mode joins ("" for other modes)."""
    kind, sep, ref = mode.partition(":")
    return ref if sep and kind == "container" else ""


@attrs.frozen
class Health:
    """C{Config.Healthcheck} (durations in nanoseconds; 0: the default)."""

    test: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@attrs.frozen
class Process:
    """What runs, as C{Config} asks (before the image's defaults are merged in)."""

    image: str = ""
    cmd: tuple[str, ...] | None = attrs.field(default=None, converter=_opt_tup)
    entrypoint: tuple[str, ...] | None = attrs.field(default=None, converter=_opt_tup)
    env: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    user: str = ""
    working_dir: str = ""
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_fmap)
    stop_signal: str = ""
    stop_timeout: int | None = None
    exposed_ports: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    volumes: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    healthcheck: Health | None = None
    shell: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    on_build: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    args_escaped: bool = False
    network_disabled: bool = False


@attrs.frozen
class Ulimit:
    """One C{HostConfig.Ulimits} entry."""

    name: str
    soft: int
    hard: int


@attrs.frozen
class BlkioDevice:
    """A C{BlkioWeightDevice} (value: weight) or throttle entry (value: rate)."""

    path: str
    value: int


@attrs.frozen
class Resources:
    """C{HostConfig}'s cgroup resources (C{docker update} changes the same set)."""

    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    memory_swappiness: int | None = None
    kernel_memory: int = 0
    kernel_memory_tcp: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_realtime_period: int = 0
    cpu_realtime_runtime: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    cpu_count: int = 0
    cpu_percent: int = 0
    blkio_weight: int = 0
    blkio_weight_device: tuple[BlkioDevice, ...] = attrs.field(default=(), converter=_tup)
    blkio_read_bps: tuple[BlkioDevice, ...] = attrs.field(default=(), converter=_tup)
    blkio_write_bps: tuple[BlkioDevice, ...] = attrs.field(default=(), converter=_tup)
    blkio_read_iops: tuple[BlkioDevice, ...] = attrs.field(default=(), converter=_tup)
    blkio_write_iops: tuple[BlkioDevice, ...] = attrs.field(default=(), converter=_tup)
    pids_limit: int | None = None  # None: unlimited (dockerd drops <= 0)
    oom_kill_disable: bool | None = None
    io_maximum_iops: int = 0
    io_maximum_bandwidth: int = 0
    cgroup_parent: str = ""
    ulimits: tuple[Ulimit, ...] = attrs.field(default=(), converter=_tup)


@attrs.frozen
class DeviceMapping:
    """One C{HostConfig.Devices} entry."""

    path_on_host: str
    path_in_container: str
    cgroup_permissions: str


@attrs.frozen
class DeviceRequest:
    """One C{HostConfig.DeviceRequests} entry (C{--gpus})."""

    driver: str = ""
    count: int = 0
    device_ids: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    capabilities: tuple[tuple[str, ...], ...] = attrs.field(default=(), converter=_tup)
    options: Mapping[str, str] = attrs.field(factory=dict, converter=_fmap)


@attrs.frozen
class Devices:
    """Devices, device cgroup rules and device requests."""

    devices: tuple[DeviceMapping, ...] = attrs.field(default=(), converter=_tup)
    cgroup_rules: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    requests: tuple[DeviceRequest, ...] = attrs.field(default=(), converter=_tup)


@attrs.frozen
class Security:
    """Privilege and confinement: C{Privileged}, capabilities, C{SecurityOpt} (parsed into
    C{(key, value)} pairs), read-only root, masked/read-only paths, extra groups."""

    privileged: bool = False
    cap_add: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    cap_drop: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    security_opt: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_tup)
    readonly_rootfs: bool = False
    masked_paths: tuple[str, ...] | None = attrs.field(default=None, converter=_opt_tup)
    readonly_paths: tuple[str, ...] | None = attrs.field(default=None, converter=_opt_tup)
    group_add: tuple[str, ...] = attrs.field(default=(), converter=_tup)

    @property
    def no_new_privileges(self) -> bool:
        """C{no-new-privileges[=true]} among the security options (the last one wins)."""
        out = False
        for key, value in self.security_opt:
            if key == "no-new-privileges":
                out = value.lower() in ("", "true", "1")
        return out

    @property
    def seccomp(self) -> str:
        """The C{seccomp=} option's value ("" when not given)."""
        return self.option("seccomp")

    @property
    def apparmor(self) -> str:
        """The C{apparmor=} option's value ("" when not given)."""
        return self.option("apparmor")

    def option(self, key: str) -> str:
        """The last value given for a C{--security-opt} key ("" when absent)."""
        out = ""
        for k, v in self.security_opt:
            if k == key:
                out = v
        return out


@attrs.frozen
class Namespaces:
    """Namespace modes as given: "" (default), C{host}, C{private}, C{shareable}, C{none},
    C{container:<id or name>}, or (network) a network's name. L{container_ref} reads the join."""

    network: str = ""
    pid: str = ""
    ipc: str = ""
    uts: str = ""
    userns: str = ""
    cgroupns: str = ""
    cgroup: str = ""

    def joins(self) -> dict[str, str]:
        """The namespaces that join another container: kind -> container reference."""
        out = {}
        for kind in ("network", "pid", "ipc"):
            ref = container_ref(getattr(self, kind))
            if ref:
                out[kind] = ref
        return out


@attrs.frozen
class IPAMRequest:
    """An endpoint's C{IPAMConfig}."""

    ipv4_address: str = ""
    ipv6_address: str = ""
    link_local_ips: tuple[str, ...] = attrs.field(default=(), converter=_tup)


@attrs.frozen
class EndpointRequest:
    """One C{NetworkingConfig.EndpointsConfig} entry (the network's name or id is the key)."""

    ipam: IPAMRequest | None = None
    links: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    aliases: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    mac_address: str = ""
    driver_opts: Mapping[str, str] = attrs.field(factory=dict, converter=_fmap)
    gw_priority: int = 0
    network_id: str = ""
    dns_names: tuple[str, ...] = attrs.field(default=(), converter=_tup)


@attrs.frozen
class PortBinding:
    """One host binding of a container port."""

    host_ip: str = ""
    host_port: str = ""


@attrs.frozen
class NetworkRequest:
    """Networking: the endpoints asked for, published ports, DNS and hosts entries."""

    endpoints: Mapping[str, EndpointRequest] = attrs.field(factory=dict, converter=_fmap)
    port_bindings: Mapping[str, tuple[PortBinding, ...]] = attrs.field(
        factory=dict, converter=_fmap
    )
    publish_all: bool = False
    dns: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    dns_options: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    dns_search: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    extra_hosts: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    links: tuple[str, ...] = attrs.field(default=(), converter=_tup)


@attrs.frozen
class BindOptions:
    """C{Mount.BindOptions}."""

    propagation: str = ""
    non_recursive: bool = False
    create_mountpoint: bool = False
    readonly_non_recursive: bool = False
    readonly_force_recursive: bool = False


@attrs.frozen
class VolumeOptions:
    """C{Mount.VolumeOptions} (C{driver}/C{driver_options}: its C{DriverConfig})."""

    no_copy: bool = False
    labels: Mapping[str, str] | None = None
    subpath: str = ""
    driver: str = ""
    driver_options: Mapping[str, str] | None = None


@attrs.frozen
class TmpfsOptions:
    """C{Mount.TmpfsOptions}."""

    size_bytes: int = 0
    mode: int = 0
    options: tuple[tuple[str, ...], ...] = attrs.field(default=(), converter=_tup)


@attrs.frozen
class Mount:
    """One C{HostConfig.Mounts} entry, typed; the C{*_options} present are the ones given."""

    type: str = ""
    source: str = ""
    target: str = ""
    read_only: bool = False
    consistency: str = ""
    bind: BindOptions | None = None
    volume: VolumeOptions | None = None
    image_subpath: str | None = None  # ImageOptions
    tmpfs: TmpfsOptions | None = None
    cluster: bool = False  # ClusterOptions given


@attrs.frozen
class MountRequest:
    """Everything that mounts something: C{Binds} (their own string syntax), C{Mounts},
    C{Tmpfs} (destination -> options), C{VolumesFrom} and the container's C{VolumeDriver}.

    C{bind_roots} is not a wire field: None for an admin's request (bind sources are followed by
    name, as dockerd does); for an operator's, the allowed-bind-paths its binds were admitted
    under, each bind then confined beneath its root (L{pyd.core.records.MountSpec.root})."""

    binds: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    mounts: tuple[Mount, ...] = attrs.field(default=(), converter=_tup)
    tmpfs: Mapping[str, str] = attrs.field(factory=dict, converter=_fmap)
    volumes_from: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    volume_driver: str = ""
    bind_roots: tuple[str, ...] | None = None


@attrs.frozen
class LogConfig:
    """C{HostConfig.LogConfig} ("" type: the daemon's default driver)."""

    type: str = ""
    config: Mapping[str, str] = attrs.field(factory=dict, converter=_fmap)


@attrs.frozen
class RestartPolicy:
    """C{HostConfig.RestartPolicy} and C{AutoRemove}."""

    name: str = "no"
    maximum_retry_count: int = 0
    auto_remove: bool = False


@attrs.frozen
class Runtime:
    """What the runtime is told besides resources and security."""

    init: bool | None = None
    runtime: str = ""
    isolation: str = ""
    shm_size: int = 0
    sysctls: Mapping[str, str] = attrs.field(factory=dict, converter=_fmap)
    oom_score_adj: int = 0
    annotations: Mapping[str, str] = attrs.field(factory=dict, converter=_fmap)
    console_size: tuple[int, int] = (0, 0)
    storage_opt: Mapping[str, str] = attrs.field(factory=dict, converter=_fmap)
    container_id_file: str = ""


@attrs.frozen
class CreateSpec:
    """A container create request, parsed and validated (see L{pyd.engine.spec.parse_create}).

    C{config}, C{host_config} and C{networking_config} are the wire sections with Go's field
    names (unknown keys dropped, dockerd's version rules applied): what inspect shows as sent.
    """

    process: Process
    resources: Resources
    devices: Devices
    security: Security
    namespaces: Namespaces
    network: NetworkRequest
    mounts: MountRequest
    logging: LogConfig
    restart: RestartPolicy
    runtime: Runtime
    config: Mapping[str, Any] = attrs.field(converter=_fmap)
    host_config: Mapping[str, Any] = attrs.field(converter=_fmap)
    networking_config: Mapping[str, Any] = attrs.field(converter=_fmap)
    warnings: tuple[str, ...] = attrs.field(default=(), converter=_tup)
    api_version: tuple[int, int] = (1, 50)
