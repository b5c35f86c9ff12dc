"""dockerd's daemon.json keys that pyd gives no meaning to, or honours only some values of
(layer: config).

Each row is an L{Option} like pyd's own, so flags, the file, conflicts and docs work the same. A row
with C{inert} is accepted and logs a notice saying why it has no effect; a row with C{accepts}
refuses, at start, the values pyd cannot honour, naming the key and why. The list of dockerd's keys
(tests/data/dockerd-28-daemon-json-keys.txt) comes from moby v28.5.2 (daemon/config/config.go,
config_linux.go, registry/config.go, cmd/dockerd/config*.go: dockerd accepts a file key when it
names one of its flags or named options) and docker/cli v28.5.2 docs/reference/dockerd.md.
"""

from __future__ import annotations

from typing import Any

from pyd.config.base import (
    ConfigError,
    Option,
    _any_map,
    _bool,
    _empty,
    _int,
    _log_format,
    _nonneg,
    _str,
    _strlist,
)
from pyd.config.limits import _bytes
from pyd.engine.spec.validate import ULIMIT_NAMES

_NO_SWARM = "pyd has no swarm mode"


def _one_of(*values: Any) -> Any:
    return lambda v: v in values


def _builder_ok(v: Any) -> bool:
    """dockerd's C{builder} object: its C{entitlements} must be booleans pyd knows."""
    ent = v.get("entitlements", {}) if isinstance(v, dict) else None
    if not isinstance(ent, dict):
        return False
    return all(
        k in ("network-host", "security-insecure") and isinstance(x, bool) for k, x in ent.items()
    )


def builder_allows_insecure(builder: Any) -> bool:
    """Whether daemon.json's C{builder.entitlements.security-insecure} is true."""
    ent = builder.get("entitlements") if isinstance(builder, dict) else None
    return isinstance(ent, dict) and ent.get("security-insecure") is True


def builder_allows_host_network(builder: Any) -> bool:
    """Whether RUN --network=host may run (dockerd grants network-host unless set false)."""
    ent = builder.get("entitlements") if isinstance(builder, dict) else None
    return not (isinstance(ent, dict) and ent.get("network-host") is False)


def _exec_opts_ok(v: Any) -> bool:
    """dockerd's only Linux exec-opt is native.cgroupdriver; pyd places cgroups itself."""
    for item in v:
        k, _, val = str(item).partition("=")
        if k.strip().lower() != "native.cgroupdriver" or val.strip() != "cgroupfs":
            return False
    return True


def _ulimits(v: Any, key: str) -> dict[str, tuple[int, int]]:
    """C{default-ulimits}: dockerd's object (C{{"nofile": {"Name": "nofile", "Soft": 1024,
    "Hard": 2048}}}) or C{--default-ulimit nofile=1024:2048} values; name -> (soft, hard).

    @raise ConfigError: go-units' texts for an unknown name or soft above hard.
    """
    out: dict[str, tuple[int, int]] = {}
    if isinstance(v, list | tuple):
        for item in v:
            name, sep, limits = str(item).partition("=")
            if not sep:
                raise ConfigError(f"invalid ulimit argument: {item}")
            soft_s, _, hard_s = limits.partition(":")
            try:
                soft = int(soft_s)
                hard = int(hard_s) if hard_s else soft
            except ValueError:
                raise ConfigError(
                    f"invalid value for {key}: {item!r} (want NAME=SOFT[:HARD])"
                ) from None
            out[name] = (soft, hard)
    elif isinstance(v, dict):
        for name, u in v.items():
            if not isinstance(u, dict):
                raise ConfigError(f"invalid value for {key}: {name} must be an object")
            soft, hard = u.get("Soft", 0), u.get("Hard", 0)
            if not isinstance(soft, int) or not isinstance(hard, int):
                raise ConfigError(f"invalid value for {key}: {name}: Soft and Hard are integers")
            out[str(u.get("Name") or name)] = (soft, hard)
    else:
        raise ConfigError(f"invalid value for {key}: expected an object, got {v!r}")
    for name, (soft, hard) in out.items():
        if name not in ULIMIT_NAMES:
            raise ConfigError(f"invalid ulimit type: {name}")
        if soft > hard:
            raise ConfigError(
                f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )
    return out


def _shm_size(v: Any, key: str) -> int:
    """C{default-shm-size} in bytes (go-units' RAMInBytes: C{64M} is 64 MiB); more than 0."""
    n = _bytes(v, key)
    if n <= 0:
        raise ConfigError(f"invalid value for {key}: the default shm size must be more than 0")
    return n


def _cgroup_parent(v: Any, key: str) -> str:
    """C{cgroup-parent}: a cgroupfs path (absolute or taken from the cgroup root); no C{..}."""
    s = _str(v, key)
    parts = [p for p in s.split("/") if p not in ("", ".")]
    if ".." in parts or any(not p.isprintable() for p in parts):
        raise ConfigError(f"invalid value for {key}: {s!r} (a cgroup path without ..)")
    return "/" + "/".join(parts) if parts else ""


DOCKERD_OPTIONS: tuple[Option, ...] = (
    # Runtime plumbing that dockerd has and pyd replaces (crun + conmon, no containerd).
    Option(
        "containerd",
        "containerd",
        _str,
        "",
        "containerd",
        inert="pyd runs containers with crun and conmon, without containerd",
        doc="containerd gRPC address (dockerd)",
    ),
    Option(
        "containerd-namespace",
        "containerd_namespace",
        _str,
        "moby",
        "containerd-namespace",
        inert="pyd uses no containerd",
        doc="containerd namespace (dockerd)",
    ),
    Option(
        "containerd-plugins-namespace",
        "containerd_plugins_namespace",
        _str,
        "plugins.moby",
        "containerd-plugins-namespace",
        inert="pyd uses no containerd",
        doc="containerd namespace for plugins (dockerd)",
    ),
    Option(
        "cri-containerd",
        "cri_containerd",
        _bool,
        False,
        "cri-containerd",
        inert="pyd uses no containerd",
        doc="Start containerd with CRI (dockerd)",
    ),
    Option(
        "features",
        "features",
        _any_map,
        {},
        None,
        inert="pyd has no feature switches (its image store and BuildKit-less builder are fixed)",
        doc="dockerd feature switches",
    ),
    Option(
        "builder",
        "builder",
        _any_map,
        {},
        None,
        accepts=_builder_ok,
        refuse="builder.entitlements takes booleans for network-host and security-insecure",
        doc="BuildKit settings (dockerd): entitlements.security-insecure=true lets admins use "
        "RUN --security=insecure (a privileged step), entitlements.network-host=false refuses "
        "RUN --network=host to everyone; gc is accepted without effect (use docker builder prune)",
    ),
    Option(
        "storage-driver",
        "storage_driver",
        _str,
        "",
        "storage-driver",
        "s",
        accepts=_one_of("", "overlay2", "overlay"),
        refuse="pyd stores layers only with overlayfs (dockerd's overlay2)",
        inert="pyd always stores layers with overlayfs (as overlay2)",
        doc="Storage driver: overlay2 only",
    ),
    Option(
        "storage-opts",
        "storage_opts",
        _strlist,
        (),
        "storage-opt",
        repeat=True,
        accepts=_empty,
        refuse="pyd's overlayfs store takes no options",
        doc="Storage driver options (none accepted)",
    ),
    Option(
        "exec-opts",
        "exec_opts",
        _strlist,
        (),
        "exec-opt",
        repeat=True,
        accepts=_exec_opts_ok,
        refuse="pyd places container cgroups itself (cgroupfs, under /pyd or cgroup-parent); "
        "only native.cgroupdriver=cgroupfs is accepted: the systemd driver needs systemd as "
        "PID 1 to create each container's scope unit, and pyd does not drive systemd",
        inert="pyd places container cgroups itself (cgroupfs)",
        doc="Runtime execution options (native.cgroupdriver=cgroupfs only)",
    ),
    Option(
        "authorization-plugins",
        "authorization_plugins",
        _strlist,
        (),
        "authorization-plugin",
        repeat=True,
        accepts=_empty,
        refuse="pyd has no authorization plugins; it has roles (tls-roles, unix-roles)",
        doc="Authorization plugins (none accepted; see roles)",
    ),
    Option(
        "cdi-spec-dirs",
        "cdi_spec_dirs",
        _strlist,
        (),
        "cdi-spec-dir",
        repeat=True,
        accepts=_empty,
        refuse="pyd does not inject CDI devices",
        doc="CDI specification directories (none accepted)",
    ),
    # Daemon logging: twistd writes pyd's log.
    Option(
        "log-format",
        "log_format",
        _log_format,
        "text",
        "log-format",
        accepts=_one_of("text"),
        refuse="pyd writes its log as text (twistd's format)",
        doc="Daemon log format: text",
    ),
    Option(
        "raw-logs",
        "raw_logs",
        _bool,
        False,
        "raw-logs",
        inert="pyd's log lines always carry full timestamps without colour",
        doc="Full timestamps without ANSI colouring (always, in pyd)",
    ),
    Option(
        "experimental",
        "experimental",
        _bool,
        False,
        "experimental",
        is_flag=True,
        inert="pyd has no experimental API (a build's squash stays refused); docker info shows the setting",
        doc="Enable experimental features (shown by docker info)",
    ),
    Option(
        "max-download-attempts",
        "max_download_attempts",
        _nonneg,
        5,
        "max-download-attempts",
        inert="pyd does not retry a failed layer download (the pull fails and can be re-run)",
        doc="Download attempts per layer (dockerd)",
    ),
    # Swarm and overlay networking.
    Option(
        "swarm-default-advertise-addr",
        "swarm_default_advertise_addr",
        _str,
        "",
        "swarm-default-advertise-addr",
        inert=_NO_SWARM,
        doc="Swarm advertise address",
    ),
    Option(
        "node-generic-resources",
        "node_generic_resources",
        _strlist,
        (),
        "node-generic-resource",
        repeat=True,
        inert=_NO_SWARM,
        doc="Swarm node resources",
    ),
    Option(
        "network-control-plane-mtu",
        "network_control_plane_mtu",
        _nonneg,
        1500,
        "network-control-plane-mtu",
        inert=_NO_SWARM,
        doc="Swarm control plane MTU",
    ),
    Option(
        "network-diagnostic-port",
        "network_diagnostic_port",
        _nonneg,
        0,
        "network-diagnostic-port",
        inert="pyd has no network diagnostic server",
        doc="Network diagnostic server port (dockerd)",
    ),
    # Container defaults.
    Option(
        "default-ulimits",
        "default_ulimits",
        _ulimits,
        {},
        "default-ulimit",
        repeat=True,
        doc="Ulimits of every container, under its own --ulimit of the same name (flag: "
        "NAME=SOFT[:HARD]); inspect's HostConfig.Ulimits shows them, as dockerd's",
    ),
    Option(
        "default-shm-size",
        "default_shm_size",
        _shm_size,
        64 * 1024 * 1024,
        "default-shm-size",
        doc="Size of /dev/shm of containers that set no --shm-size (e.g. 128M); stored in "
        "their HostConfig.ShmSize at create",
    ),
    Option(
        "default-ipc-mode",
        "default_ipc_mode",
        _str,
        "private",
        "default-ipc-mode",
        accepts=_one_of("", "private"),
        refuse="pyd's containers get a private IPC namespace by default; use --ipc per container",
        doc="Default IPC mode (private only)",
    ),
    Option(
        "default-cgroupns-mode",
        "default_cgroupns_mode",
        _str,
        "private",
        "default-cgroupns-mode",
        accepts=_one_of("", "private"),
        refuse="pyd's containers get a private cgroup namespace; use --cgroupns per container",
        doc="Default cgroup namespace mode (private only)",
    ),
    Option(
        "no-new-privileges",
        "no_new_privileges",
        _bool,
        False,
        "no-new-privileges",
        is_flag=True,
        doc="Set no-new-privileges for new containers (--security-opt no-new-privileges=false "
        "turns it off for one)",
    ),
    Option(
        "seccomp-profile",
        "seccomp_profile",
        _str,
        "builtin",
        "seccomp-profile",
        doc="Default seccomp profile: builtin (moby's default profile), unconfined, or the path "
        "of a profile file read at start",
    ),
    Option(
        "selinux-enabled",
        "selinux_enabled",
        _bool,
        False,
        "selinux-enabled",
        is_flag=True,
        accepts=_empty,
        refuse="pyd does not label containers for SELinux",
        doc="SELinux labelling (not supported)",
    ),
    Option(
        "userns-remap",
        "userns_remap",
        _str,
        "",
        "userns-remap",
        accepts=_empty,
        refuse="pyd does not remap containers into a user namespace (no subordinate id "
        "ranges, no id-shifted image layers): a container's root is the host's root, as with "
        "dockerd's --userns host",
        doc="User namespace remapping (not supported)",
    ),
    Option(
        "rootless",
        "rootless",
        _bool,
        False,
        "rootless",
        is_flag=True,
        accepts=_empty,
        refuse="pyd runs as root",
        doc="Rootless mode (not supported)",
    ),
    Option(
        "cgroup-parent",
        "cgroup_parent",
        _cgroup_parent,
        "",
        "cgroup-parent",
        doc="Parent cgroup of containers that set no --cgroup-parent (cgroupfs: the cgroup is "
        "PARENT/ID; a relative path is taken from the cgroup root); default /pyd",
    ),
    Option(
        "cpu-rt-period",
        "cpu_rt_period",
        _int,
        0,
        "cpu-rt-period",
        accepts=_empty,
        refuse="real-time CPU limits are not supported (dockerd neither with cgroup v2)",
        doc="Real-time CPU period (not supported)",
    ),
    Option(
        "cpu-rt-runtime",
        "cpu_rt_runtime",
        _int,
        0,
        "cpu-rt-runtime",
        accepts=_empty,
        refuse="real-time CPU limits are not supported (dockerd neither with cgroup v2)",
        doc="Real-time CPU runtime (not supported)",
    ),
    Option(
        "init",
        "init",
        _bool,
        False,
        "init",
        is_flag=True,
        doc="Run an init as PID 1 of containers whose HostConfig.Init is unset (--init=false "
        "opts out), as dockerd's docker-init",
    ),
    Option(
        "init-path",
        "init_path",
        _str,
        "",
        "init-path",
        doc="The init binary (bind-mounted read-only at /sbin/docker-init; must be static); "
        "default: the host's tini-static, docker-init or catatonit",
    ),
    # Networking keys pyd does not have.
    Option(
        "default-gateway-v6",
        "default_gateway_v6",
        _str,
        "",
        "default-gateway-v6",
        accepts=_empty,
        refuse="the default bridge's IPv6 gateway is its bip6 address (or fixed-cidr-v6's first)",
        doc="Default bridge IPv6 gateway (not supported; set bip6)",
    ),
    Option(
        "default-gateway",
        "default_gateway",
        _str,
        "",
        "default-gateway",
        accepts=_empty,
        refuse="the default bridge's gateway is its bip address",
        doc="Default bridge gateway (not supported; set bip)",
    ),
    Option(
        "ip",
        "ip",
        _str,
        "0.0.0.0",
        "ip",
        accepts=_one_of("", "0.0.0.0"),
        refuse="pyd publishes ports on 0.0.0.0 unless -p names an address",
        doc="Default host IP for published ports (0.0.0.0 only)",
    ),
    Option(
        "allow-direct-routing",
        "allow_direct_routing",
        _bool,
        False,
        "allow-direct-routing",
        is_flag=True,
        accepts=_empty,
        refuse="pyd does not let remote hosts route to container addresses",
        doc="Direct routing to container addresses (not supported)",
    ),
    Option(
        "default-network-opts",
        "default_network_opts",
        _any_map,
        {},
        None,
        accepts=_empty,
        refuse="pyd has no daemon-wide network driver options; give -o per network",
        doc="Default network driver options (none accepted)",
    ),
    Option(
        "host-gateway-ips",
        "host_gateway_ips",
        _strlist,
        (),
        "host-gateway-ip",
        repeat=True,
        accepts=_empty,
        refuse="host-gateway resolves to the default bridge's address in pyd",
        doc="Addresses of host-gateway (not accepted)",
    ),
    Option(
        "host-gateway-ip",
        "host_gateway_ip",
        _str,
        "",
        None,
        accepts=_empty,
        refuse="host-gateway resolves to the default bridge's address in pyd",
        doc="Address of host-gateway (deprecated dockerd key; not accepted)",
    ),
    # Deprecated in dockerd.
    Option(
        "api-cors-header",
        "api_cors_header",
        _str,
        "",
        "api-cors-header",
        accepts=_empty,
        refuse='DEPRECATED: The "api-cors-header" config parameter and the dockerd '
        '"--api-cors-header" option have been removed; use a reverse proxy if you need CORS '
        "headers",
        doc="Removed in dockerd; refused",
    ),
    Option(
        "allow-nondistributable-artifacts",
        "allow_nondistributable_artifacts",
        _strlist,
        (),
        None,
        inert="deprecated in dockerd: pushing nondistributable artifacts is the default",
        doc="Deprecated dockerd key",
    ),
    Option(
        "deprecated-key-path",
        "deprecated_key_path",
        _str,
        "",
        None,
        inert="deprecated in dockerd (the daemon's old identity key)",
        doc="Deprecated dockerd key",
    ),
    Option(
        "restart",
        "restart",
        _bool,
        True,
        None,
        inert="deprecated in dockerd: use restart policies per container",
        doc="Deprecated dockerd key",
    ),
)

# dockerd keys whose values nest in an object (the proxies object's keys are flattened as dockerd
# does, so "proxies": {"http-proxy": ...} is the key http-proxy).
NESTED = {"proxies": ("http-proxy", "https-proxy", "no-proxy")}
