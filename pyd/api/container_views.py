"""The JSON views of containers (layer: api): inspect, list, state, config, host config, network
settings and mounts as dockerd renders them, with its defaults, from the engine's records.
"""

from __future__ import annotations

import math
from typing import Any

from twisted.logger import Logger

from pyd.api.timeparse import rfc3339_nano
from pyd.core.records import Container, MountSpec
from pyd.engine import containers as engine
from pyd.engine.containers.runconfig import command_of
from pyd.engine.spec import main_network

log = Logger()


ZERO_TIME = "0001-01-01T00:00:00Z"


# What inspect shows for a key the create request left out: Go's zero value of the field (a
# slice nobody set is null: moby 28 keeps HostConfig as decoded), or the default dockerd fills in.
HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "bridge", "PortBindings": None, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0],
    "CapAdd": None, "CapDrop": None, "CgroupnsMode": "host", "Dns": None, "DnsOptions": None,
    "DnsSearch": None, "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "",
    "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
    "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864,
    "Runtime": "crun", "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
    "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": None, "BlkioDeviceReadBps": None,
    "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None,
    "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
    "CpusetCpus": "", "CpusetMems": "", "Devices": None, "DeviceCgroupRules": None,
    "DeviceRequests": None, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None,
    "OomKillDisable": False, "PidsLimit": None, "Ulimits": None, "CpuCount": 0, "CpuPercent": 0,
    "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None,
}  # fmt: skip
# HostConfig fields Go leaves out of the JSON when unset (omitempty in moby 28's
# api/types/container/hostconfig.go), rather than showing null or 0.
_OMITEMPTY = (
    "Annotations", "StorageOpt", "Tmpfs", "Sysctls", "Mounts", "KernelMemory", "KernelMemoryTCP",
)  # fmt: skip


def human_duration(seconds: float) -> str:
    """Go's C{units.HumanDuration}."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = math.floor(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def _time(nano: int) -> str:
    return rfc3339_nano(nano) if nano else ZERO_TIME


def status_text(c: Container, now_nano: int) -> str:
    """dockerd's C{State.String()} as C{docker ps} shows it."""
    st = c.state
    if st.status in ("running", "paused"):
        up = human_duration((now_nano - st.started_nano) / 1e9)
        if st.status == "paused":
            return f"Up {up} (Paused)"
        if st.health_status == "starting":
            return f"Up {up} (health: starting)"
        if st.health_status in ("healthy", "unhealthy"):
            return f"Up {up} ({st.health_status})"
        return f"Up {up}"
    if st.status == "restarting":
        ago = human_duration((now_nano - st.finished_nano) / 1e9)
        return f"Restarting ({st.exit_code}) {ago} ago"
    if st.status == "removing":
        return "Removal In Progress"
    if st.status == "dead":
        return "Dead"
    if not st.started_nano and st.status == "created":
        return "Created"
    if not st.finished_nano:
        return "Created" if st.status == "created" else ""
    ago = human_duration((now_nano - st.finished_nano) / 1e9)
    return f"Exited ({st.exit_code}) {ago} ago"


def mount_json(m: MountSpec) -> dict[str, Any]:
    """One entry of C{Mounts} in inspect and list."""
    out: dict[str, Any] = {"Type": m.type}
    if m.type == "volume":
        out["Name"] = m.name
    out["Source"] = m.source
    out["Destination"] = m.destination
    if m.type == "volume":
        out["Driver"] = m.driver or "local"
    out["Mode"] = m.mode
    out["RW"] = m.rw
    out["Propagation"] = m.propagation if m.type == "bind" else ""
    return out


def _networks_json(c: Container) -> dict[str, Any]:
    eps = engine.endpoints_of(c)
    out: dict[str, Any] = {}
    epcfg = (c.networking_config.get("EndpointsConfig") or {}) if c.networking_config else {}
    for e in eps:
        cfg = epcfg.get(e.network_name) or {}
        out[e.network_name] = {
            "IPAMConfig": cfg.get("IPAMConfig"),
            # What the create or connect request asked stays visible once running (dockerd).
            "Links": cfg.get("Links") or None,
            "Aliases": list(e.aliases) or None,
            "MacAddress": e.mac,
            "DriverOpts": cfg.get("DriverOpts"),
            "GwPriority": 0,
            "NetworkID": e.network_id,
            "EndpointID": e.endpoint_id,
            "Gateway": e.gateway,
            "IPAddress": e.ipv4,
            "IPPrefixLen": e.prefixlen,
            "IPv6Gateway": e.ipv6_gateway,
            "GlobalIPv6Address": e.ipv6,
            "GlobalIPv6PrefixLen": e.ipv6_prefixlen,
            "DNSNames": list(e.dns_names) or None,
        }
    if not out:
        # Not attached yet (created, never started): dockerd shows the requested endpoint
        # settings, so clients that compare them (Ansible's docker_container) see what they asked;
        # without any, the network mode's network (daemon/container_operations.go
        # updateContainerNetworkSettings).
        mode = c.host_config.get("NetworkMode") or "bridge"
        if mode == "default":
            mode = "bridge"
        names = [("bridge" if n == "default" else n, n) for n in epcfg]
        left_none = mode == "none" and c.extra.get("networks_materialized")
        if not names and not mode.startswith("container:") and not left_none:
            names = [(mode, mode)]
        for name, key in names:
            cfg = epcfg.get(key) or {}
            out[name] = {
                "IPAMConfig": cfg.get("IPAMConfig"), "Links": cfg.get("Links"),
                "Aliases": cfg.get("Aliases"), "MacAddress": cfg.get("MacAddress") or "",
                "DriverOpts": cfg.get("DriverOpts"), "GwPriority": cfg.get("GwPriority") or 0,
                "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "DNSNames": None,
            }  # fmt: skip
    return out


def _ports_json(c: Container) -> dict[str, Any]:
    ports: dict[str, Any] = {}
    if c.state.running:
        for p in c.config.get("ExposedPorts") or {}:
            ports[p] = None
        for pm in engine.ports_of(c):
            key = f"{pm.container_port}/{pm.protocol}"
            if ports.get(key) is None:
                ports[key] = []
            ports[key].append({"HostIp": pm.host_ip, "HostPort": str(pm.host_port)})
    return ports


def network_settings_json(c: Container) -> dict[str, Any]:
    """C{NetworkSettings} of inspect (the CLI dereferences it: always present)."""
    nets = _networks_json(c)
    primary = next(iter(nets.values()), None) if nets else None
    bridge = nets.get("bridge") or {}
    return {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": c.network_settings.get("sandbox_key", ""),
        "Ports": _ports_json(c),
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": bridge.get("EndpointID", ""),
        "Gateway": bridge.get("Gateway", ""),
        "GlobalIPv6Address": bridge.get("GlobalIPv6Address", ""),
        "GlobalIPv6PrefixLen": bridge.get("GlobalIPv6PrefixLen", 0),
        "IPAddress": bridge.get("IPAddress", ""),
        "IPPrefixLen": bridge.get("IPPrefixLen", 0),
        "IPv6Gateway": bridge.get("IPv6Gateway", ""),
        "MacAddress": bridge.get("MacAddress", "") if primary else "",
        "Networks": nets,
    }


def config_json(c: Container) -> dict[str, Any]:
    """C{Config} as dockerd shows it (image defaults merged)."""
    cfg = c.config
    out: dict[str, Any] = {
        "Hostname": cfg.get("Hostname") or "",
        "Domainname": cfg.get("Domainname") or "",
        "User": cfg.get("User") or "",
        "AttachStdin": bool(cfg.get("AttachStdin")),
        "AttachStdout": bool(cfg.get("AttachStdout")),
        "AttachStderr": bool(cfg.get("AttachStderr")),
    }
    if cfg.get("ExposedPorts"):
        out["ExposedPorts"] = cfg["ExposedPorts"]
    out.update(
        {
            "Tty": bool(cfg.get("Tty")),
            "OpenStdin": bool(cfg.get("OpenStdin")),
            "StdinOnce": bool(cfg.get("StdinOnce")),
            "Env": cfg.get("Env") or None,
            "Cmd": cfg.get("Cmd"),
        }
    )
    if cfg.get("Healthcheck"):
        out["Healthcheck"] = cfg["Healthcheck"]
    if cfg.get("ArgsEscaped"):  # omitempty in Go's container.Config
        out["ArgsEscaped"] = True
    out.update(
        {
            "Image": cfg.get("Image") or c.image_ref,
            "Volumes": cfg.get("Volumes"),
            "WorkingDir": cfg.get("WorkingDir") or "",
            "Entrypoint": cfg.get("Entrypoint"),
        }
    )
    if cfg.get("NetworkDisabled"):  # omitempty as well
        out["NetworkDisabled"] = True
    mac = desired_mac_address(c)
    if mac:
        out["MacAddress"] = mac
    out.update(
        {
            "OnBuild": cfg.get("OnBuild"),
            "Labels": cfg.get("Labels") or {},
        }
    )
    if cfg.get("StopSignal"):
        out["StopSignal"] = cfg["StopSignal"]
    if cfg.get("StopTimeout") is not None:
        out["StopTimeout"] = cfg["StopTimeout"]
    if cfg.get("Shell"):
        out["Shell"] = cfg["Shell"]
    return out


def desired_mac_address(c: Container) -> str:
    """The MAC address asked for on the main network, which inspect shows as C{Config.MacAddress}
    (dockerd does so for every API version below 1.52)."""
    main = main_network(str(c.host_config.get("NetworkMode") or ""))
    if main is None or not c.networking_config:
        return ""
    ep = (c.networking_config.get("EndpointsConfig") or {}).get(main) or {}
    return str(ep.get("MacAddress") or "")


def host_config_json(c: Container) -> dict[str, Any]:
    """C{HostConfig} with dockerd's defaults for every key the request left out."""
    out = dict(HOST_CONFIG_DEFAULTS)
    out.update({k: v for k, v in c.host_config.items()})
    for key in _OMITEMPTY:
        if not out.get(key):
            out.pop(key, None)
    if out.get("Init") is None:  # a *bool: left out only when unset
        out.pop("Init", None)
    if not out.get("CgroupnsMode"):  # the CLI sends it empty; dockerd shows its default
        out["CgroupnsMode"] = HOST_CONFIG_DEFAULTS["CgroupnsMode"]
    if out.get("OomKillDisable") is None:  # created before pyd stored dockerd's default
        out["OomKillDisable"] = False
    return out


def state_json(c: Container) -> dict[str, Any]:
    """C{State} of inspect."""
    st = c.state
    out: dict[str, Any] = {
        "Status": st.status,
        "Running": st.status in ("running", "paused", "restarting"),
        "Paused": st.status == "paused",
        "Restarting": st.status == "restarting",
        "OOMKilled": st.oom_killed,
        "Dead": st.status == "dead",
        "Pid": st.pid if st.status in ("running", "paused") else 0,
        "ExitCode": st.exit_code,
        "Error": st.error,
        "StartedAt": _time(st.started_nano),
        "FinishedAt": _time(st.finished_nano),
    }
    if st.health_status:
        out["Health"] = {
            "Status": st.health_status,
            "FailingStreak": st.health_failing_streak,
            "Log": [
                {
                    "Start": _time(e.start_nano),
                    "End": _time(e.end_nano),
                    "ExitCode": e.exit_code,
                    "Output": e.output,
                }
                for e in st.health_log
            ],
        }
    return out


def inspect_json(c: Container) -> dict[str, Any]:
    """C{GET /containers/{id}/json}."""
    cmd = command_of(c.config)
    return {
        "Id": c.id,
        "Created": _time(c.created_nano),
        "Path": cmd[0] if cmd else "",
        "Args": cmd[1:],
        "State": state_json(c),
        "Image": c.image_id,
        "ResolvConfPath": c.extra.get("resolv_conf_path", ""),
        "HostnamePath": c.extra.get("hostname_path", ""),
        "HostsPath": c.extra.get("hosts_path", ""),
        # dockerd exposes the file of the json-file driver only
        "LogPath": c.extra.get("log_path", "")
        if (c.host_config.get("LogConfig") or {}).get("Type", "json-file") == "json-file"
        else "",
        "Name": c.name,
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config_json(c),
        "GraphDriver": {"Data": None, "Name": "overlay2"},
        "Mounts": [mount_json(m) for m in engine.mounts_listed(c)],
        "Config": config_json(c),
        "NetworkSettings": network_settings_json(c),
    }


def list_json(c: Container, now_nano: int) -> dict[str, Any]:
    """One entry of C{GET /containers/json}."""
    cmd = command_of(c.config)
    ports = []
    published = {(p.container_port, p.protocol) for p in engine.ports_of(c)}
    for pm in engine.ports_of(c):
        ports.append(
            {
                "IP": pm.host_ip or "0.0.0.0",
                "PrivatePort": pm.container_port,
                "PublicPort": pm.host_port,
                "Type": pm.protocol,
            }
        )
    for key in c.config.get("ExposedPorts") or {}:
        port, _, proto = key.partition("/")
        if port.isdigit() and (int(port), proto) not in published:
            ports.append({"PrivatePort": int(port), "Type": proto})
    return {
        "Id": c.id,
        "Names": [c.name],
        "Image": c.config.get("Image") or c.image_ref,
        "ImageID": c.image_id,
        # dockerd (daemon/list.go): the path, then the args, each quoted '...' if it has a space
        "Command": " ".join(cmd[:1] + [f"'{a}'" if " " in a else a for a in cmd[1:]]),
        "Created": c.created_nano // 1_000_000_000,
        "Ports": ports,
        "Labels": c.config.get("Labels") or {},
        "State": c.state.status,
        "Status": status_text(c, now_nano),
        "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "bridge"},
        "NetworkSettings": {"Networks": _networks_json(c)},
        "Mounts": [mount_json(m) for m in engine.mounts_listed(c)],
    }
