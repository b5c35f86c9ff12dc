"""The Go types of a container create body, as dockerd 28 declares them (layer: engine).

C{CREATE_REQUEST} mirrors moby's C{container.CreateRequest} (C{Config} embedded, C{HostConfig} with
C{Resources} embedded, C{NetworkingConfig}); the names are the ones Go prints in its type errors.
"""

from __future__ import annotations

from pyd.engine.spec.gojson import EMPTY, STRMAP, STRSLICE, GoType, b, i, lst, m, s, struct

HEALTHCHECK = struct(
    "v1.HealthcheckConfig",
    Test=lst(s()),
    Interval=i("time.Duration"),
    Timeout=i("time.Duration"),
    StartPeriod=i("time.Duration"),
    StartInterval=i("time.Duration"),
    Retries=i("int"),
)

CONFIG_FIELDS: dict[str, GoType] = {
    "Hostname": s(),
    "Domainname": s(),
    "User": s(),
    "AttachStdin": b(),
    "AttachStdout": b(),
    "AttachStderr": b(),
    "ExposedPorts": m(EMPTY, "nat.PortSet"),
    "Tty": b(),
    "OpenStdin": b(),
    "StdinOnce": b(),
    "Env": lst(s()),
    "Cmd": STRSLICE,
    "Healthcheck": HEALTHCHECK,
    "ArgsEscaped": b(),
    "Image": s(),
    "Volumes": m(EMPTY),
    "WorkingDir": s(),
    "Entrypoint": STRSLICE,
    "NetworkDisabled": b(),
    "MacAddress": s(),
    "OnBuild": lst(s()),
    "Labels": STRMAP,
    "StopSignal": s(),
    "StopTimeout": i("int"),
    "Shell": STRSLICE,
}

_THROTTLE = struct("blkiodev.ThrottleDevice", Path=s(), Rate=i("uint64"))
_THROTTLES = "[]*blkiodev.ThrottleDevice"

RESOURCES_FIELDS: dict[str, GoType] = {
    "CpuShares": i(),
    "Memory": i(),
    "NanoCpus": i(),
    "CgroupParent": s(),
    "BlkioWeight": i("uint16"),
    # slices of pointers in moby's Resources: Go prints them as []*T
    "BlkioWeightDevice": lst(
        struct("blkiodev.WeightDevice", Path=s(), Weight=i("uint16")), "[]*blkiodev.WeightDevice"
    ),
    "BlkioDeviceReadBps": lst(_THROTTLE, _THROTTLES),
    "BlkioDeviceWriteBps": lst(_THROTTLE, _THROTTLES),
    "BlkioDeviceReadIOps": lst(_THROTTLE, _THROTTLES),
    "BlkioDeviceWriteIOps": lst(_THROTTLE, _THROTTLES),
    "CpuPeriod": i(),
    "CpuQuota": i(),
    "CpuRealtimePeriod": i(),
    "CpuRealtimeRuntime": i(),
    "CpusetCpus": s(),
    "CpusetMems": s(),
    "Devices": lst(
        struct(
            "container.DeviceMapping", PathOnHost=s(), PathInContainer=s(), CgroupPermissions=s()
        )
    ),
    "DeviceCgroupRules": lst(s()),
    "DeviceRequests": lst(
        struct(
            "container.DeviceRequest",
            Driver=s(),
            Count=i("int"),
            DeviceIDs=lst(s()),
            Capabilities=lst(lst(s())),
            Options=STRMAP,
        )
    ),
    "KernelMemory": i(),
    "KernelMemoryTCP": i(),
    "MemoryReservation": i(),
    "MemorySwap": i(),
    "MemorySwappiness": i(),
    "OomKillDisable": b(),
    "PidsLimit": i(),
    "Ulimits": lst(struct("units.Ulimit", Name=s(), Hard=i(), Soft=i()), "[]*units.Ulimit"),
    "CpuCount": i(),
    "CpuPercent": i(),
    "IOMaximumIOps": i("uint64"),
    "IOMaximumBandwidth": i("uint64"),
}

MOUNT = struct(
    "mount.Mount",
    Type=s("mount.Type"),
    Source=s(),
    Target=s(),
    ReadOnly=b(),
    Consistency=s("mount.Consistency"),
    BindOptions=struct(
        "mount.BindOptions",
        Propagation=s("mount.Propagation"),
        NonRecursive=b(),
        CreateMountpoint=b(),
        ReadOnlyNonRecursive=b(),
        ReadOnlyForceRecursive=b(),
    ),
    VolumeOptions=struct(
        "mount.VolumeOptions",
        NoCopy=b(),
        Labels=STRMAP,
        Subpath=s(),
        DriverConfig=struct("mount.Driver", Name=s(), Options=STRMAP),
    ),
    ImageOptions=struct("mount.ImageOptions", Subpath=s()),
    TmpfsOptions=struct(
        "mount.TmpfsOptions",
        SizeBytes=i(),
        Mode=i("fs.FileMode"),
        Options=lst(lst(s())),
    ),
    ClusterOptions=struct("mount.ClusterOptions"),
)

HOST_CONFIG_FIELDS: dict[str, GoType] = {
    "Binds": lst(s()),
    "ContainerIDFile": s(),
    "LogConfig": struct("container.LogConfig", Type=s(), Config=STRMAP),
    "NetworkMode": s("container.NetworkMode"),
    "PortBindings": m(lst(struct("nat.PortBinding", HostIp=s(), HostPort=s())), "nat.PortMap"),
    "RestartPolicy": struct(
        "container.RestartPolicy",
        Name=s("container.RestartPolicyMode"),
        MaximumRetryCount=i("int"),
    ),
    "AutoRemove": b(),
    "VolumeDriver": s(),
    "VolumesFrom": lst(s()),
    "ConsoleSize": GoType("array", "[2]uint", i("uint"), length=2),
    "Annotations": STRMAP,
    "CapAdd": STRSLICE,
    "CapDrop": STRSLICE,
    "CgroupnsMode": s("container.CgroupnsMode"),
    "Dns": lst(s()),
    "DnsOptions": lst(s()),
    "DnsSearch": lst(s()),
    "ExtraHosts": lst(s()),
    "GroupAdd": lst(s()),
    "IpcMode": s("container.IpcMode"),
    "Cgroup": s("container.CgroupSpec"),
    "Links": lst(s()),
    "OomScoreAdj": i("int"),
    "PidMode": s("container.PidMode"),
    "Privileged": b(),
    "PublishAllPorts": b(),
    "ReadonlyRootfs": b(),
    "SecurityOpt": lst(s()),
    "StorageOpt": STRMAP,
    "Tmpfs": STRMAP,
    "UTSMode": s("container.UTSMode"),
    "UsernsMode": s("container.UsernsMode"),
    "ShmSize": i(),
    "Sysctls": STRMAP,
    "Runtime": s(),
    "Isolation": s("container.Isolation"),
    **RESOURCES_FIELDS,
    "Mounts": lst(MOUNT),
    "MaskedPaths": lst(s()),
    "ReadonlyPaths": lst(s()),
    "Init": b(),
}

ENDPOINT_SETTINGS = struct(
    "network.EndpointSettings",
    IPAMConfig=struct(
        "network.EndpointIPAMConfig",
        IPv4Address=s(),
        IPv6Address=s(),
        LinkLocalIPs=lst(s()),
    ),
    Links=lst(s()),
    Aliases=lst(s()),
    MacAddress=s(),
    DriverOpts=STRMAP,
    GwPriority=i("int"),
    NetworkID=s(),
    EndpointID=s(),
    Gateway=s(),
    IPAddress=s(),
    IPPrefixLen=i("int"),
    IPv6Gateway=s(),
    GlobalIPv6Address=s(),
    GlobalIPv6PrefixLen=i("int"),
    DNSNames=lst(s()),
)

HOST_CONFIG = struct("container.HostConfig", **HOST_CONFIG_FIELDS)
NETWORKING_CONFIG = struct(
    "network.NetworkingConfig",
    EndpointsConfig=m(ENDPOINT_SETTINGS, "map[string]*network.EndpointSettings"),
)
CREATE_REQUEST = struct(
    "container.CreateRequest",
    **CONFIG_FIELDS,
    HostConfig=HOST_CONFIG,
    NetworkingConfig=NETWORKING_CONFIG,
)
UPDATE_CONFIG = struct(
    "container.UpdateConfig",
    **RESOURCES_FIELDS,
    RestartPolicy=HOST_CONFIG_FIELDS["RestartPolicy"],
)
CONNECT_OPTIONS = struct(
    "network.ConnectOptions",
    Container=s(),
    EndpointConfig=ENDPOINT_SETTINGS,
)

# The other JSON bodies dockerd 28 decodes with Go's types (httputils.ReadJSON): the same type
# errors, under these struct names.
_CONSOLE_SIZE = HOST_CONFIG_FIELDS["ConsoleSize"]
EXEC_OPTIONS = struct(
    "container.ExecOptions",
    User=s(),
    Privileged=b(),
    Tty=b(),
    ConsoleSize=_CONSOLE_SIZE,
    AttachStdin=b(),
    AttachStderr=b(),
    AttachStdout=b(),
    DetachKeys=s(),
    Env=lst(s()),
    WorkingDir=s(),
    Cmd=lst(s()),
)
EXEC_START_OPTIONS = struct(
    "container.ExecStartOptions", Detach=b(), Tty=b(), ConsoleSize=_CONSOLE_SIZE
)
DISCONNECT_OPTIONS = struct("network.DisconnectOptions", Container=s(), Force=b())
_IPAM_CONFIG = struct(
    "network.IPAMConfig", Subnet=s(), IPRange=s(), Gateway=s(), AuxiliaryAddresses=STRMAP
)
NETWORK_CREATE_REQUEST = struct(
    "network.CreateRequest",
    Name=s(),
    CheckDuplicate=b(),
    Driver=s(),
    Scope=s(),
    EnableIPv4=b(),
    EnableIPv6=b(),
    IPAM=struct("network.IPAM", Driver=s(), Options=STRMAP, Config=lst(_IPAM_CONFIG)),
    Internal=b(),
    Attachable=b(),
    Ingress=b(),
    ConfigOnly=b(),
    ConfigFrom=struct("network.ConfigReference", Network=s()),
    Options=STRMAP,
    Labels=STRMAP,
)
VOLUME_CREATE_OPTIONS = struct(
    "volume.CreateOptions",
    Name=s(),
    Driver=s(),
    DriverOpts=STRMAP,
    Labels=STRMAP,
    # API 1.42 (decoded before the cluster refuses it; its other members are not typed here)
    ClusterVolumeSpec=struct("volume.ClusterVolumeSpec", Group=s(), Availability=s()),
)
AUTH_CONFIG = struct(
    "registry.AuthConfig",
    username=s(),
    password=s(),
    auth=s(),
    email=s(),
    serveraddress=s(),
    identitytoken=s(),
    registrytoken=s(),
)
