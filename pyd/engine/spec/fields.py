"""Which wire field of a create body lands where in the typed spec (layer: engine).

C{FIELDS} maps every field the parser understands (C{Section.Field}, the sections being
C{Config}, C{HostConfig} and C{EndpointSettings}) to the attribute of L{CreateSpec} that carries
it (C{EndpointSettings} fields: of each L{EndpointRequest} in C{network.endpoints}). A field of
API 1.50 that is not in C{FIELDS} must be in C{UNPARSED}, with the reason. C{NOT_APPLIED} lists
the parsed fields that nothing below the spec applies (none: L{pyd.engine.audit} gives each
field its verdict).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyd.engine.spec.gojson import GoType
    from pyd.engine.spec.records import CreateSpec

FIELDS: dict[str, str] = {
    # Config
    "Config.Hostname": "process.hostname",
    "Config.Domainname": "process.domainname",
    "Config.User": "process.user",
    "Config.AttachStdin": "process.attach_stdin",
    "Config.AttachStdout": "process.attach_stdout",
    "Config.AttachStderr": "process.attach_stderr",
    "Config.ExposedPorts": "process.exposed_ports",
    "Config.Tty": "process.tty",
    "Config.OpenStdin": "process.open_stdin",
    "Config.StdinOnce": "process.stdin_once",
    "Config.Env": "process.env",
    "Config.Cmd": "process.cmd",
    "Config.Healthcheck": "process.healthcheck",
    "Config.ArgsEscaped": "process.args_escaped",
    "Config.Image": "process.image",
    "Config.Volumes": "process.volumes",
    "Config.WorkingDir": "process.working_dir",
    "Config.Entrypoint": "process.entrypoint",
    "Config.NetworkDisabled": "process.network_disabled",
    # deprecated container-wide form: moved to the main network's endpoint (mac_address)
    "Config.MacAddress": "network.endpoints",
    "Config.OnBuild": "process.on_build",
    "Config.Labels": "process.labels",
    "Config.StopSignal": "process.stop_signal",
    "Config.StopTimeout": "process.stop_timeout",
    "Config.Shell": "process.shell",
    # HostConfig
    "HostConfig.Binds": "mounts.binds",
    "HostConfig.ContainerIDFile": "runtime.container_id_file",
    "HostConfig.LogConfig": "logging",
    "HostConfig.NetworkMode": "namespaces.network",
    "HostConfig.PortBindings": "network.port_bindings",
    "HostConfig.RestartPolicy": "restart",
    "HostConfig.AutoRemove": "restart.auto_remove",
    "HostConfig.VolumeDriver": "mounts.volume_driver",
    "HostConfig.VolumesFrom": "mounts.volumes_from",
    "HostConfig.ConsoleSize": "runtime.console_size",
    "HostConfig.Annotations": "runtime.annotations",
    "HostConfig.CapAdd": "security.cap_add",
    "HostConfig.CapDrop": "security.cap_drop",
    "HostConfig.CgroupnsMode": "namespaces.cgroupns",
    "HostConfig.Dns": "network.dns",
    "HostConfig.DnsOptions": "network.dns_options",
    "HostConfig.DnsSearch": "network.dns_search",
    "HostConfig.ExtraHosts": "network.extra_hosts",
    "HostConfig.GroupAdd": "security.group_add",
    "HostConfig.IpcMode": "namespaces.ipc",
    "HostConfig.Cgroup": "namespaces.cgroup",
    "HostConfig.Links": "network.links",
    "HostConfig.OomScoreAdj": "runtime.oom_score_adj",
    "HostConfig.PidMode": "namespaces.pid",
    "HostConfig.Privileged": "security.privileged",
    "HostConfig.PublishAllPorts": "network.publish_all",
    "HostConfig.ReadonlyRootfs": "security.readonly_rootfs",
    "HostConfig.SecurityOpt": "security.security_opt",
    "HostConfig.StorageOpt": "runtime.storage_opt",
    "HostConfig.Tmpfs": "mounts.tmpfs",
    "HostConfig.UTSMode": "namespaces.uts",
    "HostConfig.UsernsMode": "namespaces.userns",
    "HostConfig.ShmSize": "runtime.shm_size",
    "HostConfig.Sysctls": "runtime.sysctls",
    "HostConfig.Runtime": "runtime.runtime",
    "HostConfig.Isolation": "runtime.isolation",
    "HostConfig.Mounts": "mounts.mounts",
    "HostConfig.MaskedPaths": "security.masked_paths",
    "HostConfig.ReadonlyPaths": "security.readonly_paths",
    "HostConfig.Init": "runtime.init",
    # HostConfig: Resources (embedded)
    "HostConfig.CpuShares": "resources.cpu_shares",
    "HostConfig.Memory": "resources.memory",
    "HostConfig.NanoCpus": "resources.nano_cpus",
    "HostConfig.CgroupParent": "resources.cgroup_parent",
    "HostConfig.BlkioWeight": "resources.blkio_weight",
    "HostConfig.BlkioWeightDevice": "resources.blkio_weight_device",
    "HostConfig.BlkioDeviceReadBps": "resources.blkio_read_bps",
    "HostConfig.BlkioDeviceWriteBps": "resources.blkio_write_bps",
    "HostConfig.BlkioDeviceReadIOps": "resources.blkio_read_iops",
    "HostConfig.BlkioDeviceWriteIOps": "resources.blkio_write_iops",
    "HostConfig.CpuPeriod": "resources.cpu_period",
    "HostConfig.CpuQuota": "resources.cpu_quota",
    "HostConfig.CpuRealtimePeriod": "resources.cpu_realtime_period",
    "HostConfig.CpuRealtimeRuntime": "resources.cpu_realtime_runtime",
    "HostConfig.CpusetCpus": "resources.cpuset_cpus",
    "HostConfig.CpusetMems": "resources.cpuset_mems",
    "HostConfig.Devices": "devices.devices",
    "HostConfig.DeviceCgroupRules": "devices.cgroup_rules",
    "HostConfig.DeviceRequests": "devices.requests",
    "HostConfig.KernelMemory": "resources.kernel_memory",
    "HostConfig.KernelMemoryTCP": "resources.kernel_memory_tcp",
    "HostConfig.MemoryReservation": "resources.memory_reservation",
    "HostConfig.MemorySwap": "resources.memory_swap",
    "HostConfig.MemorySwappiness": "resources.memory_swappiness",
    "HostConfig.OomKillDisable": "resources.oom_kill_disable",
    "HostConfig.PidsLimit": "resources.pids_limit",
    "HostConfig.Ulimits": "resources.ulimits",
    "HostConfig.CpuCount": "resources.cpu_count",
    "HostConfig.CpuPercent": "resources.cpu_percent",
    "HostConfig.IOMaximumIOps": "resources.io_maximum_iops",
    "HostConfig.IOMaximumBandwidth": "resources.io_maximum_bandwidth",
    # NetworkingConfig.EndpointsConfig[name]: EndpointSettings
    "NetworkingConfig.EndpointsConfig": "network.endpoints",
    "EndpointSettings.IPAMConfig": "ipam",
    "EndpointSettings.Links": "links",
    "EndpointSettings.Aliases": "aliases",
    "EndpointSettings.MacAddress": "mac_address",
    "EndpointSettings.DriverOpts": "driver_opts",
    "EndpointSettings.GwPriority": "gw_priority",
    "EndpointSettings.NetworkID": "network_id",
    "EndpointSettings.DNSNames": "dns_names",
}

# In the API but not read from a create body: dockerd fills them in (inspect output only).
UNPARSED: dict[str, str] = {
    "EndpointSettings.EndpointID": "output only: set when the endpoint is made",
    "EndpointSettings.Gateway": "output only",
    "EndpointSettings.IPAddress": "output only (IPAMConfig.IPv4Address asks for an address)",
    "EndpointSettings.IPPrefixLen": "output only",
    "EndpointSettings.IPv6Gateway": "output only",
    "EndpointSettings.GlobalIPv6Address": "output only (IPAMConfig.IPv6Address asks)",
    "EndpointSettings.GlobalIPv6PrefixLen": "output only",
}

# Parsed, shown by inspect, and not applied by anything below the spec: none now. Each field
# has a verdict (honoured, refused, discarded as dockerd, output) in pyd.engine.audit.
NOT_APPLIED: frozenset[str] = frozenset()


def _given(value: Any, t: GoType) -> bool:
    """Whether a decoded wire value differs from Go's zero value (null, "", 0, false, an empty
    list or map, a struct whose fields are all zero)."""
    if t.kind == "struct" and isinstance(value, dict):
        return any(_given(v, t.fields[k]) for k, v in value.items() if k in t.fields)
    if t.kind == "array" and isinstance(value, list):
        return any(value)
    if isinstance(value, (dict, list)):
        return bool(value)
    return value not in (None, "", 0, False)


def given_fields(spec: CreateSpec) -> frozenset[str]:
    """The rows of L{FIELDS} a request sets to something other than Go's zero value: what an
    allow-list of fields (the operator role's rules, the honoured-or-refused audit) walks."""
    from pyd.engine.spec.schema import CONFIG_FIELDS, ENDPOINT_SETTINGS, HOST_CONFIG_FIELDS

    types = {
        "Config": CONFIG_FIELDS,
        "HostConfig": HOST_CONFIG_FIELDS,
        "EndpointSettings": ENDPOINT_SETTINGS.fields,
    }
    sections = {"Config": spec.config, "HostConfig": spec.host_config}
    eps = list((spec.networking_config.get("EndpointsConfig") or {}).values())
    out = set()
    for wire in FIELDS:
        section, _, name = wire.partition(".")
        if section == "NetworkingConfig":
            if eps:
                out.add(wire)
        elif section == "EndpointSettings":
            if any(_given((ep or {}).get(name), types[section][name]) for ep in eps):
                out.add(wire)
        elif _given(sections[section].get(name), types[section][name]):
            out.add(wire)
    return frozenset(out)
