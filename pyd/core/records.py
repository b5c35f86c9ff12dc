"""Frozen records passed between layers (layer: core).

The engine takes and returns these; the API layer alone turns them into Docker's wire JSON.
Each area adds its records here (frozen attrs classes, no behaviour beyond derived properties).
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class Event:
    """One entry of the event log (C{docker events})."""

    id: int
    type: str
    action: str
    actor_id: str
    attributes: dict[str, str]
    scope: str
    time_nano: int


@attrs.frozen
class DaemonInfo:
    """Identity of this daemon, persisted across restarts."""

    id: str
    name: str
    extra: dict[str, Any] = attrs.field(factory=dict)


# --- cross-area records (images <-> containers <-> networks <-> volumes <-> build) -------------


@attrs.frozen
class Image:
    """An image as the engine sees it. C{config} is the parsed image config JSON."""

    id: str  # "sha256:<64hex>"
    config: dict[str, Any]
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size: int
    created: int  # unix seconds
    parent_id: str | None = None
    diff_ids: tuple[str, ...] = ()
    last_tag_time: int = 0  # unix nanoseconds of the last tag; 0 = never tagged
    comment: str = ""

    @property
    def container_config(self) -> dict[str, Any]:
        """The image's C{config} section (Env, Cmd, Entrypoint, WorkingDir, User...)."""
        c = self.config.get("config") or {}
        return dict(c)


@attrs.frozen
class Layer:
    """An extracted, read-only layer; shared by every image whose chain contains it."""

    chain_id: str  # "sha256:..." of the chain up to and including this layer
    diff_id: str  # "sha256:..." of the uncompressed layer tar
    parent: str | None  # chain id of the layer below
    cache_id: str  # directory name under the layer store
    size: int  # bytes of file content
    compressed_digest: str | None = None
    created: int = 0


@attrs.frozen
class Change:
    """One C{docker diff} entry: kind 0 = modified, 1 = added, 2 = deleted."""

    path: str
    kind: int


@attrs.frozen
class PortMapping:
    """A published port: container port/proto -> host ip:port (host_port 0 = not yet assigned)."""

    container_port: int
    protocol: str  # "tcp" | "udp" | "sctp"
    host_ip: str
    host_port: int


@attrs.frozen
class Endpoint:
    """A container's attachment to one network, as inspect reports it."""

    network_name: str
    network_id: str
    endpoint_id: str
    ipv4: str  # "" when not connected
    prefixlen: int
    gateway: str
    mac: str
    aliases: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ipv6: str = ""  # GlobalIPv6Address ("" on an IPv4-only network)
    ipv6_prefixlen: int = 0
    ipv6_gateway: str = ""


@attrs.frozen
class NetworkSetup:
    """What the network layer prepared for a starting container.

    C{netns_path} is the network namespace the OCI spec joins: None means the host's namespace
    (C{--network host}); for C{container:X} it is X's namespace path.
    """

    netns_path: str | None
    endpoints: tuple[Endpoint, ...]
    ports: tuple[PortMapping, ...]
    hosts_entries: tuple[tuple[str, str], ...]  # (address, "name alias...") lines for /etc/hosts
    dns_servers: tuple[str, ...]
    dns_search: tuple[str, ...]
    dns_options: tuple[str, ...]
    resolv_conf: str = ""  # the whole /etc/resolv.conf when networking renders it ("" = not)


@attrs.frozen
class MountSpec:
    """One mount of a container, resolved (C{source} is a host path; empty for tmpfs).

    C{type} is "bind", "volume" or "tmpfs". C{name} is the volume name for volumes.
    C{options} are extra mount options: for tmpfs the complete data/flag list (dockerd's
    defaults C{noexec,nosuid,nodev} merged with the user's, e.g. C{size=1m}, C{mode=1777});
    for bind/volume C{("bind",)} when non-recursive, else empty (use C{rbind}). Read-only-ness is
    C{rw}; C{propagation} is set for binds (C{rprivate} by default), empty otherwise (use
    C{rprivate}). C{mode} is the user's mode string as inspect shows it (C{"z"} for volumes).
    C{subpath} is a volume's C{VolumeOptions.Subpath} (clean, relative; C{source} stays the
    volume's C{_data}, as in dockerd's inspect): it is resolved inside the volume and mounted by
    descriptor at every use, never joined onto C{source} by name. C{root} is set for a bind that
    was admitted because its source lies under an allowed-bind-paths directory (an operator's):
    that directory, with C{subpath} the source's path beneath it; at every use the source is
    opened beneath C{root} (a link out of it is refused) and mounted by descriptor, never
    followed by name (C{source} stays as requested, for inspect).
    """

    type: str
    source: str
    destination: str
    rw: bool = True
    name: str = ""
    driver: str = ""
    mode: str = ""
    propagation: str = ""
    options: tuple[str, ...] = ()
    copy_up: bool = False  # populate from the image's content at destination on first use
    listed: bool = True  # False: not shown in inspect's Mounts (HostConfig.Tmpfs, as dockerd)
    subpath: str = ""
    root: str = ""


@attrs.frozen
class Volume:
    """A volume of the local driver. C{labels}/C{options} are None when never given (the wire
    shows C{null}, as dockerd does). C{bind_root}/C{bind_subpath}: for an operator's bind volume
    (C{o=bind}), the allowed-bind-paths directory its device was admitted under and the device's
    path beneath it; it is mounted by descriptor, opened beneath that directory, never by name."""

    name: str
    driver: str
    mountpoint: str  # <data-root>/volumes/<name>/_data
    created: int  # unix seconds
    labels: dict[str, str] | None
    options: dict[str, str] | None
    anonymous: bool = False
    bind_root: str = ""
    bind_subpath: str = ""


# --- networking (pyd.engine.networks, pyd.state.networks) ------------------------------------


@attrs.frozen
class IpamPool:
    """One IPAM configuration entry of a network: its subnet, gateway and allocation range."""

    subnet: str  # "10.5.0.0/16"
    gateway: str  # "10.5.0.1" ("" for networks without one)
    ip_range: str = ""  # "10.5.1.0/24": addresses handed out automatically come from here
    # AuxiliaryAddresses: name -> address, reserved (never handed out to an endpoint)
    aux_addresses: dict[str, str] = attrs.field(factory=dict)
    auto: bool = False  # taken from the default pools, not asked for (inspect lists it last)


@attrs.frozen
class Network:
    """A network as stored: bridge networks carry a bridge device, host/none do not."""

    id: str
    name: str
    driver: str  # "bridge" | "host" | "null"
    created_nano: int
    scope: str = "local"
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    ipam_driver: str = "default"
    # None when the create request gave no IPAM options: inspect shows null, as dockerd
    ipam_options: dict[str, str] | None = None
    pools: tuple[IpamPool, ...] = ()
    options: dict[str, str] = attrs.field(factory=dict)
    labels: dict[str, str] = attrs.field(factory=dict)
    bridge: str | None = None
    # A configuration-only network (driver "null", nothing created): its IPAM, options and
    # labels are for the networks created from it, which name it in config_from.
    config_only: bool = False
    config_from: str = ""
    enable_ipv4: bool = True

    @property
    def predefined(self) -> bool:
        """Whether this is one of the networks the daemon creates itself."""
        return self.name in ("bridge", "host", "none")


@attrs.frozen
class Attachment:
    """A container's membership of a network as stored (the IPAM records are C{ipv4} and, on a
    network with IPv6, C{ipv6}).

    C{ipv4} and C{ipv6} are None while the container is not running (on an IPv6-only network
    C{ipv4} stays None while it runs); C{config} keeps what the request asked for (requested
    address, MAC, interface name, published ports, DNS names).
    """

    id: str
    network_id: str
    container_id: str
    ipv4: str | None
    mac: str | None
    aliases: tuple[str, ...]
    config: dict[str, Any]
    ipv6: str | None = None

    @property
    def plugged(self) -> bool:
        """Whether the endpoint holds an address (its container runs)."""
        return self.ipv4 is not None or self.ipv6 is not None


# --- containers (owned by the containers area) --------------------------------------------------


@attrs.frozen
class HealthLogEntry:
    """One health probe: start/end (ns), exit code, output (truncated)."""

    start_nano: int
    end_nano: int
    exit_code: int
    output: str


@attrs.frozen
class ContainerState:
    """A container's runtime state as inspect reports it, plus pyd's bookkeeping."""

    status: str = "created"  # created|running|paused|restarting|removing|exited|dead
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_nano: int = 0
    finished_nano: int = 0
    health_status: str = ""  # ""|starting|healthy|unhealthy
    health_failing_streak: int = 0
    health_log: tuple[HealthLogEntry, ...] = ()
    manually_stopped: bool = False
    has_been_started: bool = False
    # paused by pyd for a commit, not by a user: a restart after a crash mid-commit unpauses it
    paused_for_commit: bool = False

    @property
    def running(self) -> bool:
        """Running or paused (dockerd's C{State.Running} is true while paused)."""
        return self.status in ("running", "paused")


@attrs.frozen
class Container:
    """A container: Docker's Config and HostConfig as created (image defaults merged), its state.

    C{name} carries the leading C{/}. C{extra} holds paths (bundle, hosts, hostname, resolv.conf,
    log) and other bookkeeping the engine owns.
    """

    id: str
    name: str
    image_id: str
    image_ref: str
    created_nano: int
    config: dict[str, Any]
    host_config: dict[str, Any]
    state: ContainerState
    network_settings: dict[str, Any] = attrs.field(factory=dict)
    mounts: tuple[MountSpec, ...] = ()
    restart_count: int = 0
    extra: dict[str, Any] = attrs.field(factory=dict)
    networking_config: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class RegistryAuth:
    """Credentials for one registry, as a client sent them (C{X-Registry-Auth}, C{/auth})."""

    username: str = ""
    password: str = ""
    server_address: str = ""
    identity_token: str = ""
    registry_token: str = ""


@attrs.frozen
class CommitSource:
    """What C{docker commit} needs of a container: the container service gives it, the images
    area's commit reads it."""

    container_id: str
    config: dict[str, Any]
    running: bool
    name: str = ""
