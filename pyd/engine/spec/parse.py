"""The engine's door: a container create body -> a frozen L{CreateSpec} (layer: engine).

Order, as dockerd's create handler: Go's typed decoding (L{pyd.engine.spec.gojson}), the API
version rules of C{postContainersCreate} (fields added later are dropped for older clients,
combinations refused), then the daemon's checks (L{pyd.engine.spec.validate.validate_create})
with dockerd's texts. Checks that need the image, other containers, networks or volumes stay
with the services that own them; they read the spec.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pyd.core.errors import InvalidParameter
from pyd.core.ids import go_quote
from pyd.drivers.runtime import spec as oci
from pyd.engine.spec import records as r
from pyd.engine.spec.gojson import decode
from pyd.engine.spec.schema import (
    CONFIG_FIELDS,
    CONNECT_OPTIONS,
    CREATE_REQUEST,
    ENDPOINT_SETTINGS,
    HOST_CONFIG,
    MOUNT,
    UPDATE_CONFIG,
)
from pyd.engine.spec.validate import parse_security_opt, validate_create

VOLUME_DRIVER_WARNING = (
    "WARNING: the container-wide volume-driver configuration is ignored for volumes specified "
    "via 'mount'. Use '--mount type=volume,volume-driver=...' instead"
)
MAC_DEPRECATED = (
    "The container-wide MacAddress field is now deprecated. "
    "It should be specified in EndpointsConfig instead."
)


def parse_create(
    body: Any, api_version: tuple[int, int] = (1, 50), ncpu: int | None = None
) -> r.CreateSpec:
    """Decode, version-adjust and validate a C{POST /containers/create} body.

    @param body: the parsed JSON body (None: an empty body).
    @param ncpu: CPUs of the host (C{NanoCpus} range); None: this machine's.
    @raise InvalidParameter: dockerd's 400 texts; nothing has been stored or changed.
    """
    wire = decode({} if body is None else body, CREATE_REQUEST)
    config = {k: wire[k] for k in CONFIG_FIELDS if k in wire}
    hc: dict[str, Any] = dict(wire.get("HostConfig") or {})
    nc: dict[str, Any] = dict(wire.get("NetworkingConfig") or {})
    warnings = _version_rules(config, hc, nc, api_version)
    nc, mac_warning = _migrate_mac_address(config, hc, nc, api_version)
    warnings += validate_create(config, hc, ncpu or os.cpu_count() or 1)
    return _records(
        config, hc, nc, [*warnings, mac_warning] if mac_warning else warnings, api_version
    )


def parse_update(body: Any) -> dict[str, Any]:
    """Decode a C{POST /containers/{id}/update} body (C{container.UpdateConfig}: the resources
    and the restart policy) with Go's types.

    @return: the body with Go's field names only.
    @raise InvalidParameter: C{invalid JSON: json: cannot unmarshal ...} (dockerd's text).
    """
    out: dict[str, Any] = decode({} if body is None else body, UPDATE_CONFIG)
    return out


def stored_spec(
    config: Mapping[str, Any] | None,
    host_config: Mapping[str, Any] | None,
    networking_config: Mapping[str, Any] | None = None,
) -> r.CreateSpec:
    """The spec of a stored container (sections validated at its create, engine defaults
    filled in): decoded and typed again, without the version rules and create checks.

    A value of a type Go would refuse (a record stored before the typed door) reads as its zero
    value, so such a container can still be stopped, inspected and removed.
    """
    body = {
        **dict(config or {}),
        "HostConfig": dict(host_config or {}),
        "NetworkingConfig": dict(networking_config or {}),
    }
    wire = decode(body, CREATE_REQUEST, lenient=True)
    return _records(
        {k: wire[k] for k in CONFIG_FIELDS if k in wire},
        dict(wire.get("HostConfig") or {}),
        dict(wire.get("NetworkingConfig") or {}),
        [],
        (1, 50),
    )


def _records(
    config: dict[str, Any],
    hc: dict[str, Any],
    nc: dict[str, Any],
    warnings: list[str],
    api_version: tuple[int, int],
) -> r.CreateSpec:
    security = _security(hc)
    return r.CreateSpec(
        process=_process(config),
        resources=resources_of(hc),
        devices=devices_of(hc),
        security=security,
        namespaces=r.Namespaces(
            network=hc.get("NetworkMode") or "",
            pid=hc.get("PidMode") or "",
            ipc=hc.get("IpcMode") or "",
            uts=hc.get("UTSMode") or "",
            userns=hc.get("UsernsMode") or "",
            cgroupns=hc.get("CgroupnsMode") or "",
            cgroup=hc.get("Cgroup") or "",
        ),
        network=_network(hc, nc),
        mounts=_mounts(hc),
        logging=r.LogConfig(
            type=(hc.get("LogConfig") or {}).get("Type") or "",
            config={
                k: v or "" for k, v in ((hc.get("LogConfig") or {}).get("Config") or {}).items()
            },
        ),
        restart=restart_of(hc),
        runtime=r.Runtime(
            init=hc.get("Init"),
            runtime=hc.get("Runtime") or "",
            isolation=hc.get("Isolation") or "",
            shm_size=hc.get("ShmSize") or 0,
            sysctls={k: v or "" for k, v in (hc.get("Sysctls") or {}).items()},
            oom_score_adj=hc.get("OomScoreAdj") or 0,
            annotations=hc.get("Annotations"),
            console_size=tuple(hc.get("ConsoleSize") or (0, 0)),
            storage_opt=hc.get("StorageOpt"),
            container_id_file=hc.get("ContainerIDFile") or "",
        ),
        config=config,
        host_config=hc,
        networking_config=nc,
        warnings=warnings,
        api_version=api_version,
    )


def _version_rules(
    config: dict[str, Any], hc: dict[str, Any], nc: dict[str, Any], v: tuple[int, int]
) -> list[str]:
    """dockerd's C{postContainersCreate}: what each API version may send."""
    mounts = [dict(m) for m in hc.get("Mounts") or () if m is not None]
    if hc.get("Mounts") is not None:
        hc["Mounts"] = mounts
    eps = {k: dict(e or {}) for k, e in (nc.get("EndpointsConfig") or {}).items()}
    if nc.get("EndpointsConfig") is not None:
        nc["EndpointsConfig"] = eps
    if v < (1, 25):
        hc["AutoRemove"] = False
    if v < (1, 40):
        for mt in mounts:
            if mt.get("BindOptions"):
                mt["BindOptions"] = {**mt["BindOptions"], "NonRecursive": False}
        hc.pop("KernelMemoryTCP", None)
        if not hc.get("IpcMode"):
            hc["IpcMode"] = "shareable"
    if v < (1, 42):
        for mt in mounts:
            if mt.get("BindOptions"):
                mt["BindOptions"] = {**mt["BindOptions"], "CreateMountpoint": False}
            if mt.get("VolumeOptions") is not None and mt.get("Type") != "volume":
                mt.pop("VolumeOptions")
            if mt.get("TmpfsOptions") is not None and mt.get("Type") != "tmpfs":
                mt.pop("TmpfsOptions")
        if "ConsoleSize" in hc:
            hc["ConsoleSize"] = [0, 0]
    else:
        hc.pop("KernelMemory", None)
        for mt in mounts:
            mtype = mt.get("Type") or ""
            for key, owner in (
                ("VolumeOptions", "volume"),
                ("BindOptions", "bind"),
                ("TmpfsOptions", "tmpfs"),
            ):
                if mt.get(key) is not None and mtype != owner:
                    raise InvalidParameter(
                        f"{key} must not be specified on mount type {go_quote(mtype)}"
                    )
    if v < (1, 43):
        hc.pop("Annotations", None)
    if v < (1, 44):
        if config.get("Healthcheck"):
            config["Healthcheck"] = {**config["Healthcheck"], "StartInterval": 0}
        for mt in mounts:
            if mt.get("Type") == "bind" and (mt.get("BindOptions") or {}).get(
                "ReadOnlyForceRecursive"
            ):
                raise InvalidParameter(
                    "BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer"
                )
        if len(eps) > 1:
            raise InvalidParameter(
                "Container cannot be created with multiple network endpoints: " + ", ".join(eps)
            )
    if v < (1, 45):
        for mt in mounts:
            if (mt.get("VolumeOptions") or {}).get("Subpath"):
                raise InvalidParameter("VolumeOptions.Subpath needs API v1.45 or newer")
    if v < (1, 48):
        for ep in eps.values():
            ep.pop("GwPriority", None)
        for mt in mounts:
            if mt.get("Type") == "image":
                raise InvalidParameter('Mount type "Image" needs API v1.48 or newer')
    warnings: list[str] = []
    if hc.get("VolumeDriver") and v >= (1, 48):
        for mt in mounts:
            if mt.get("Type") == "volume" and not (
                ((mt.get("VolumeOptions") or {}).get("DriverConfig") or {}).get("Name")
            ):
                warnings.append(VOLUME_DRIVER_WARNING)
                break
    if (hc.get("PidsLimit") or 0) <= 0:
        hc.pop("PidsLimit", None)
    _interface_sysctls(hc, v)
    return warnings


def _interface_sysctls(hc: Mapping[str, Any], v: tuple[int, int]) -> None:
    """dockerd's C{handleSysctlBC}: from API 1.48 a per-interface sysctl (C{net.*.*.eth0.*}) of a
    container with its own network namespace must be an endpoint driver option. Older clients'
    are applied on the interface as given (dockerd moves them to that option; same effect).
    dockerd answers a plain error (a 500); pyd a 400 with its text."""
    mode = str(hc.get("NetworkMode") or "")
    if v < (1, 48) or mode == "host" or mode.startswith("container:"):
        return
    for key in hc.get("Sysctls") or {}:
        parts = key.split(".", 4)
        if len(parts) == 5 and parts[0] == "net" and parts[3].startswith("eth"):
            raise InvalidParameter(
                f"interface specific sysctl setting {go_quote(key)} must be supplied using "
                "driver option 'com.docker.network.endpoint.sysctls'"
            )


def main_network(network_mode: str) -> str | None:
    """The network a container-wide setting belongs to: the mode's, if it is a network."""
    mode = network_mode or "default"
    if mode in ("default", "bridge"):
        return "bridge"
    if mode in ("host", "none") or mode.startswith("container:"):
        return None
    return mode


def _migrate_mac_address(
    config: dict[str, Any], hc: dict[str, Any], netcfg: dict[str, Any], version: tuple[int, int]
) -> tuple[dict[str, Any], str]:
    """Move the deprecated container-wide C{Config.MacAddress} onto the main network's endpoint,
    as dockerd's router does (C{handleMACAddressBC}; Ansible's docker_container still sends it).

    API < 1.44 had no per-endpoint MAC: an endpoint's is dropped, the container-wide one wins,
    and it needs a bridge or user-defined network. From 1.44 it is deprecated (a warning) and must
    agree with the main network's endpoint.

    @return: the new networking config and the deprecation warning (empty when there was none).
    @raise InvalidParameter: the endpoint asks for a different MAC address, or (API < 1.44) the
        network mode has no network to carry it.
    """
    mac = config.pop("MacAddress", None)
    main = main_network(str(hc.get("NetworkMode") or ""))
    if version < (1, 44):
        eps_old = {
            k: {**(e or {}), "MacAddress": ""}
            for k, e in (netcfg.get("EndpointsConfig") or {}).items()
        }
        if not mac:
            return ({**netcfg, "EndpointsConfig": eps_old} if eps_old else netcfg), ""
        if main is None:
            raise InvalidParameter("conflicting options: mac-address and the network mode")
        # one endpoint at most before 1.44: it is the main network's, whatever its key
        key = next(iter(eps_old), main)
        return {**netcfg, "EndpointsConfig": {key: {**eps_old.get(key, {}), "MacAddress": mac}}}, ""
    if not mac:
        return netcfg, ""
    if main is None:
        return netcfg, MAC_DEPRECATED
    eps = netcfg.get("EndpointsConfig") or {}
    if not isinstance(eps, dict):
        raise InvalidParameter("invalid EndpointsConfig: expected an object")
    if not eps:
        eps = {main: {}}
    elif main not in eps:
        raise InvalidParameter(
            "unable to migrate container-wide MAC address to a specific network: "
            "HostConfig.NetworkMode must match the identity of a network in NetworkSettings.Networks"
        )
    ep = dict(eps[main] or {})
    if not ep.get("MacAddress"):
        ep["MacAddress"] = mac
    elif ep["MacAddress"].lower() != str(mac).lower():
        raise InvalidParameter(
            "the container-wide MAC address must match the endpoint-specific MAC address "
            "for the main network, or be left empty"
        )
    return {**netcfg, "EndpointsConfig": {**eps, main: ep}}, MAC_DEPRECATED


def _process(c: Mapping[str, Any]) -> r.Process:
    h = c.get("Healthcheck")
    return r.Process(
        image=c.get("Image") or "",
        cmd=c.get("Cmd"),
        entrypoint=c.get("Entrypoint"),
        env=c.get("Env"),
        user=c.get("User") or "",
        working_dir=c.get("WorkingDir") or "",
        hostname=c.get("Hostname") or "",
        domainname=c.get("Domainname") or "",
        tty=bool(c.get("Tty")),
        open_stdin=bool(c.get("OpenStdin")),
        stdin_once=bool(c.get("StdinOnce")),
        attach_stdin=bool(c.get("AttachStdin")),
        attach_stdout=bool(c.get("AttachStdout")),
        attach_stderr=bool(c.get("AttachStderr")),
        labels={k: v or "" for k, v in (c.get("Labels") or {}).items()},
        stop_signal=c.get("StopSignal") or "",
        stop_timeout=c.get("StopTimeout"),
        exposed_ports=c.get("ExposedPorts") or (),
        volumes=c.get("Volumes") or (),
        healthcheck=None
        if h is None
        else r.Health(
            test=h.get("Test"),
            interval=h.get("Interval") or 0,
            timeout=h.get("Timeout") or 0,
            start_period=h.get("StartPeriod") or 0,
            start_interval=h.get("StartInterval") or 0,
            retries=h.get("Retries") or 0,
        ),
        shell=c.get("Shell"),
        on_build=c.get("OnBuild"),
        args_escaped=bool(c.get("ArgsEscaped")),
        network_disabled=bool(c.get("NetworkDisabled")),
    )


def _blkio(items: Any, key: str) -> tuple[r.BlkioDevice, ...]:
    return tuple(
        r.BlkioDevice(d.get("Path") or "", d.get(key) or 0) for d in items or () if d is not None
    )


def resources_of(hc: Mapping[str, Any]) -> r.Resources:
    """The resource fields of a (decoded) HostConfig or C{docker update} body."""
    return r.Resources(
        memory=hc.get("Memory") or 0,
        memory_swap=hc.get("MemorySwap") or 0,
        memory_reservation=hc.get("MemoryReservation") or 0,
        memory_swappiness=hc.get("MemorySwappiness"),
        kernel_memory=hc.get("KernelMemory") or 0,
        kernel_memory_tcp=hc.get("KernelMemoryTCP") or 0,
        nano_cpus=hc.get("NanoCpus") or 0,
        cpu_shares=hc.get("CpuShares") or 0,
        cpu_period=hc.get("CpuPeriod") or 0,
        cpu_quota=hc.get("CpuQuota") or 0,
        cpu_realtime_period=hc.get("CpuRealtimePeriod") or 0,
        cpu_realtime_runtime=hc.get("CpuRealtimeRuntime") or 0,
        cpuset_cpus=hc.get("CpusetCpus") or "",
        cpuset_mems=hc.get("CpusetMems") or "",
        cpu_count=hc.get("CpuCount") or 0,
        cpu_percent=hc.get("CpuPercent") or 0,
        blkio_weight=hc.get("BlkioWeight") or 0,
        blkio_weight_device=_blkio(hc.get("BlkioWeightDevice"), "Weight"),
        blkio_read_bps=_blkio(hc.get("BlkioDeviceReadBps"), "Rate"),
        blkio_write_bps=_blkio(hc.get("BlkioDeviceWriteBps"), "Rate"),
        blkio_read_iops=_blkio(hc.get("BlkioDeviceReadIOps"), "Rate"),
        blkio_write_iops=_blkio(hc.get("BlkioDeviceWriteIOps"), "Rate"),
        pids_limit=hc.get("PidsLimit") if (hc.get("PidsLimit") or 0) > 0 else None,
        oom_kill_disable=hc.get("OomKillDisable"),
        io_maximum_iops=hc.get("IOMaximumIOps") or 0,
        io_maximum_bandwidth=hc.get("IOMaximumBandwidth") or 0,
        cgroup_parent=hc.get("CgroupParent") or "",
        ulimits=[
            r.Ulimit(u.get("Name") or "", u.get("Soft") or 0, u.get("Hard") or 0)
            for u in hc.get("Ulimits") or ()
            if u is not None
        ],
    )


def restart_of(hc: Mapping[str, Any]) -> r.RestartPolicy:
    """C{RestartPolicy} and C{AutoRemove} of a (decoded) HostConfig."""
    rp = hc.get("RestartPolicy") or {}
    return r.RestartPolicy(
        name=rp.get("Name") or "no",
        maximum_retry_count=rp.get("MaximumRetryCount") or 0,
        auto_remove=bool(hc.get("AutoRemove")),
    )


def devices_of(hc: Mapping[str, Any]) -> r.Devices:
    """The (decoded) C{Devices}, C{DeviceCgroupRules} and C{DeviceRequests} of a HostConfig or
    an update body, as a record."""
    return r.Devices(
        devices=[
            r.DeviceMapping(
                d.get("PathOnHost") or "",
                d.get("PathInContainer") or "",
                d.get("CgroupPermissions") or "",
            )
            for d in hc.get("Devices") or ()
            if d is not None
        ],
        cgroup_rules=hc.get("DeviceCgroupRules"),
        requests=[
            r.DeviceRequest(
                driver=d.get("Driver") or "",
                count=d.get("Count") or 0,
                device_ids=d.get("DeviceIDs"),
                capabilities=[tuple(c or ()) for c in d.get("Capabilities") or ()],
                options=d.get("Options"),
            )
            for d in hc.get("DeviceRequests") or ()
            if d is not None
        ],
    )


def _security(hc: Mapping[str, Any]) -> r.Security:
    privileged = bool(hc.get("Privileged"))
    cap_add = [c for c in hc.get("CapAdd") or () if c is not None]
    cap_drop = [c for c in hc.get("CapDrop") or () if c is not None]
    # moby daemon/daemon_unix.go normalizes CapAdd, then CapDrop, each with its own prefix
    for label, adds, drops in (("CapAdd", cap_add, ()), ("CapDrop", (), cap_drop)):
        try:
            oci.resolve_caps(adds, drops, privileged, None)
        except ValueError as e:
            raise InvalidParameter(f"invalid {label}: {e}") from e
    return r.Security(
        privileged=privileged,
        cap_add=cap_add,
        cap_drop=cap_drop,
        security_opt=[parse_security_opt(o or "") for o in hc.get("SecurityOpt") or ()],
        readonly_rootfs=bool(hc.get("ReadonlyRootfs")),
        masked_paths=hc.get("MaskedPaths"),
        readonly_paths=hc.get("ReadonlyPaths"),
        group_add=[g or "" for g in hc.get("GroupAdd") or ()],
    )


def endpoint_of(ep: Mapping[str, Any] | None) -> r.EndpointRequest:
    """One (decoded) C{EndpointSettings} as a record."""
    ep = ep or {}
    ipam = ep.get("IPAMConfig")
    return r.EndpointRequest(
        ipam=None
        if ipam is None
        else r.IPAMRequest(
            ipv4_address=ipam.get("IPv4Address") or "",
            ipv6_address=ipam.get("IPv6Address") or "",
            link_local_ips=ipam.get("LinkLocalIPs"),
        ),
        links=ep.get("Links"),
        aliases=ep.get("Aliases"),
        mac_address=ep.get("MacAddress") or "",
        driver_opts=ep.get("DriverOpts"),
        gw_priority=ep.get("GwPriority") or 0,
        network_id=ep.get("NetworkID") or "",
        dns_names=ep.get("DNSNames"),
    )


def parse_connect(body: Any) -> tuple[str, r.EndpointRequest]:
    """Decode a C{POST /networks/{id}/connect} body (C{network.ConnectOptions}) with Go's types.

    @return: the container reference and the C{EndpointConfig}, typed.
    @raise InvalidParameter: C{invalid JSON: json: cannot unmarshal ...} (dockerd's text).
    """
    wire = decode({} if body is None else body, CONNECT_OPTIONS) or {}
    return wire.get("Container") or "", endpoint_of(wire.get("EndpointConfig"))


def endpoint_settings(ep: r.EndpointRequest) -> dict[str, Any]:
    """A connect's endpoint settings as a never-started container's C{EndpointsConfig} keeps
    them for inspect (Go's field names; C{IPAMConfig}'s fields are C{omitempty} in Go)."""
    ipam: dict[str, Any] = {}
    if ep.ipam is not None:
        ipam = {
            k: v
            for k, v in (
                ("IPv4Address", ep.ipam.ipv4_address),
                ("IPv6Address", ep.ipam.ipv6_address),
                ("LinkLocalIPs", list(ep.ipam.link_local_ips)),
            )
            if v
        }
    return {
        "IPAMConfig": ipam or None,
        "Links": list(ep.links) or None,
        "Aliases": list(ep.aliases) or None,
        "MacAddress": ep.mac_address,
        "DriverOpts": dict(ep.driver_opts),
    }


def parse_endpoint(body: Any) -> r.EndpointRequest:
    """Decode a wire C{EndpointSettings} (C{POST /networks/{id}/connect}'s C{EndpointConfig}).

    @raise InvalidParameter: Go's type errors.
    """
    return endpoint_of(decode({} if body is None else body, ENDPOINT_SETTINGS))


def network_request(host_config: Mapping[str, Any] | None) -> r.NetworkRequest:
    """The networking part of a HostConfig-shaped mapping (ports, DNS, hosts entries, links),
    typed; for stored settings such as an endpoint's recorded DNS configuration.

    Mistyped values (a record stored before the typed door) read as Go's zero values.
    """
    return _network(decode(dict(host_config or {}), HOST_CONFIG, lenient=True) or {}, {})


def mount_request(host_config: Mapping[str, Any] | None) -> r.MountRequest:
    """The mounts of a HostConfig-shaped mapping (a stored container's), typed.

    Mistyped values (a record stored before the typed door) read as Go's zero values.
    """
    return _mounts(decode(dict(host_config or {}), HOST_CONFIG, lenient=True) or {})


def _mounts(hc: Mapping[str, Any]) -> r.MountRequest:
    return r.MountRequest(
        binds=hc.get("Binds"),
        mounts=[_mount(m) for m in hc.get("Mounts") or () if m is not None],
        tmpfs={k: v or "" for k, v in (hc.get("Tmpfs") or {}).items()},
        volumes_from=hc.get("VolumesFrom"),
        volume_driver=hc.get("VolumeDriver") or "",
    )


def _network(hc: Mapping[str, Any], nc: Mapping[str, Any]) -> r.NetworkRequest:
    return r.NetworkRequest(
        endpoints={k: endpoint_of(e) for k, e in (nc.get("EndpointsConfig") or {}).items()},
        port_bindings={
            port: tuple(
                r.PortBinding(b.get("HostIp") or "", b.get("HostPort") or "")
                for b in binds or ()
                if b is not None
            )
            for port, binds in (hc.get("PortBindings") or {}).items()
        },
        publish_all=bool(hc.get("PublishAllPorts")),
        dns=hc.get("Dns"),
        dns_options=hc.get("DnsOptions"),
        dns_search=hc.get("DnsSearch"),
        extra_hosts=hc.get("ExtraHosts"),
        links=hc.get("Links"),
    )


def mount_of(m: Mapping[str, Any]) -> r.Mount:
    """One wire C{Mounts} entry, decoded and typed (a stored container's, for rules).

    @raise InvalidParameter: Go's type errors.
    """
    return _mount(decode(dict(m), MOUNT) or {})


def _mount(m: Mapping[str, Any]) -> r.Mount:
    bo, vo, io, to = (
        m.get("BindOptions"),
        m.get("VolumeOptions"),
        m.get("ImageOptions"),
        m.get("TmpfsOptions"),
    )
    dc = (vo or {}).get("DriverConfig") or {}
    return r.Mount(
        type=m.get("Type") or "",
        source=m.get("Source") or "",
        target=m.get("Target") or "",
        read_only=bool(m.get("ReadOnly")),
        consistency=m.get("Consistency") or "",
        bind=None
        if bo is None
        else r.BindOptions(
            propagation=bo.get("Propagation") or "",
            non_recursive=bool(bo.get("NonRecursive")),
            create_mountpoint=bool(bo.get("CreateMountpoint")),
            readonly_non_recursive=bool(bo.get("ReadOnlyNonRecursive")),
            readonly_force_recursive=bool(bo.get("ReadOnlyForceRecursive")),
        ),
        volume=None
        if vo is None
        else r.VolumeOptions(
            no_copy=bool(vo.get("NoCopy")),
            labels=vo.get("Labels"),
            subpath=vo.get("Subpath") or "",
            driver=dc.get("Name") or "",
            driver_options=dc.get("Options"),
        ),
        image_subpath=None if io is None else io.get("Subpath") or "",
        tmpfs=None
        if to is None
        else r.TmpfsOptions(
            size_bytes=to.get("SizeBytes") or 0,
            mode=to.get("Mode") or 0,
            options=[tuple(o or ()) for o in to.get("Options") or ()],
        ),
        cluster=m.get("ClusterOptions") is not None,
    )
