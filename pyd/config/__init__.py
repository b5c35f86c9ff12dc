"""Daemon configuration: flags + daemon.json -> a frozen L{DaemonConfig} (layer: config).

Keys and flags are dockerd's where dockerd has one. Like dockerd, an unknown key in the file, bad
JSON, a bad value, or a key set both in the file and as a flag is an error naming the key.
Every option is one row of L{OPTIONS}; the tap builds its flags from the same table.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from pyd.config import runtimes as rtmod
from pyd.config.base import (
    LOG_LEVELS as LOG_LEVELS,
)
from pyd.config.base import (
    ROLES as ROLES,
)
from pyd.config.base import (
    ConfigError as ConfigError,
)
from pyd.config.base import (
    Option as Option,
)
from pyd.config.base import (
    _bool,
    _int,
    _level,
    _mtu,
    _pools,
    _proxy_url,
    _role,
    _str,
    _strlist,
    _strmap,
)
from pyd.config.dockerd import DOCKERD_OPTIONS, NESTED
from pyd.config.limits import LIMIT_OPTIONS
from pyd.engine.hostinfo import mask_credentials
from pyd.engine.spec.rules import LOG_DRIVERS

DEFAULT_CONFIG_FILE = "/etc/pyd/daemon.json"
# A host moving from dockerd keeps its file: read when pyd's own does not exist.
DOCKERD_CONFIG_FILE = "/etc/docker/daemon.json"


OPTIONS: tuple[Option, ...] = (
    Option(
        "hosts",
        "hosts",
        _strlist,
        (),
        "host",
        "H",
        repeat=True,
        doc="Daemon socket(s) to listen on: unix://PATH, tcp://HOST:PORT, fd://",
    ),
    Option(
        "data-root",
        "data_root",
        _str,
        "/var/lib/pyd",
        "data-root",
        doc="Root directory of persistent state",
        blank_is_default=True,
    ),
    Option(
        "exec-root",
        "exec_root",
        _str,
        "/run/pyd",
        "exec-root",
        doc="Root directory of runtime state",
        blank_is_default=True,
    ),
    Option(
        "pidfile",
        "pidfile",
        _str,
        "/var/run/pyd.pid",
        "pidfile",
        "p",
        doc="Path of the daemon's PID file ('' for none)",
    ),
    Option(
        "log-level",
        "log_level",
        _level,
        "info",
        "log-level",
        "l",
        reload=True,
        doc="Logging level: debug, info, warn, error, fatal (trace and panic as debug and fatal)",
        blank_is_default=True,
    ),
    Option(
        "debug",
        "debug",
        _bool,
        False,
        "debug",
        "D",
        is_flag=True,
        reload=True,
        doc="Debug mode (same as --log-level debug)",
    ),
    Option(
        "group",
        "group",
        _str,
        "pyd",
        "group",
        "G",
        doc="Group owning the Unix socket(s) (docker when the default group pyd does not exist)",
    ),
    Option(
        "tls",
        "tls",
        _bool,
        False,
        "tls",
        None,
        is_flag=True,
        doc="Serve TCP with TLS (implied by --tlsverify)",
    ),
    Option(
        "tlsverify",
        "tlsverify",
        _bool,
        False,
        "tlsverify",
        None,
        is_flag=True,
        doc="Require and verify client certificates",
    ),
    Option(
        "tlscacert",
        "tlscacert",
        _str,
        "",
        "tlscacert",
        reload=True,
        doc="CA certificate that client certificates must be signed by",
    ),
    Option("tlscert", "tlscert", _str, "", "tlscert", reload=True, doc="Server certificate"),
    Option("tlskey", "tlskey", _str, "", "tlskey", reload=True, doc="Server key"),
    Option(
        "tlscrl",
        "tlscrl",
        _str,
        "",
        "tlscrl",
        reload=True,
        doc="Certificate revocation list (PEM) checked for client certificates",
    ),
    Option(
        "tls-default-role",
        "tls_default_role",
        _role,
        "admin",
        "tls-default-role",
        reload=True,
        doc="Role of a client certificate that names none",
    ),
    Option(
        "tls-roles",
        "tls_roles",
        _strmap,
        {},
        None,
        reload=True,
        doc='Per-subject role overrides: {"CN=alice": "viewer"}',
    ),
    Option(
        "unix-roles",
        "unix_roles",
        _strmap,
        {},
        None,
        reload=True,
        doc="Roles of Unix socket peers by uid:N, gid:N, user:NAME or group:NAME (all the peer's groups count; root is always admin)",
    ),
    Option(
        "allowed-bind-paths",
        "allowed_bind_paths",
        _strlist,
        (),
        "allowed-bind-path",
        repeat=True,
        reload=True,
        doc="Host paths the operator role may bind-mount",
    ),
    Option(
        "insecure-tcp-without-tls-gives-root-to-anyone",
        "insecure_plain_tcp",
        _bool,
        False,
        "insecure-tcp-without-tls-gives-root-to-anyone",
        None,
        is_flag=True,
        doc="Allow -H tcp:// without TLS (anyone who can connect is root)",
    ),
    Option("bridge", "bridge", _str, "", "bridge", "b", doc="Attach containers to this bridge"),
    Option("bip", "bip", _str, "", "bip", doc="Address and prefix of the default bridge"),
    Option(
        "fixed-cidr",
        "fixed_cidr",
        _str,
        "",
        "fixed-cidr",
        doc="Restrict default-bridge addresses to this range",
    ),
    Option(
        "ipv6",
        "ipv6",
        _bool,
        False,
        "ipv6",
        is_flag=True,
        doc="Give the default bridge an IPv6 subnet too (dual-stack)",
    ),
    Option(
        "fixed-cidr-v6",
        "fixed_cidr_v6",
        _str,
        "",
        "fixed-cidr-v6",
        doc="IPv6 subnet of the default bridge (with ipv6; else one of default-address-pools)",
    ),
    Option(
        "bip6",
        "bip6",
        _str,
        "",
        "bip6",
        doc="IPv6 address and prefix of the default bridge (with ipv6)",
    ),
    Option(
        "ip6tables",
        "ip6tables",
        _bool,
        True,
        "ip6tables",
        doc="IPv6 rules in pyd's nft tables for networks with IPv6 (with iptables)",
    ),
    Option(
        "default-address-pools",
        "default_address_pools",
        _pools,
        (),
        "default-address-pool",
        repeat=True,
        doc="Pools for new networks: base=CIDR,size=N (IPv4 and IPv6 bases)",
    ),
    Option(
        "icc",
        "icc",
        _bool,
        True,
        "icc",
        doc="Allow traffic between containers on the default bridge",
    ),
    Option(
        "ip-masq",
        "ip_masq",
        _bool,
        True,
        "ip-masq",
        doc="Masquerade bridge traffic leaving the bridge's subnet (in pyd's own nft table)",
    ),
    Option("mtu", "mtu", _mtu, 1500, "mtu", doc="MTU of container interfaces (0: 1500)"),
    Option("dns", "dns", _strlist, (), "dns", repeat=True, doc="DNS servers for containers"),
    Option("dns-opts", "dns_opts", _strlist, (), "dns-opt", repeat=True, doc="DNS options"),
    Option(
        "dns-search",
        "dns_search",
        _strlist,
        (),
        "dns-search",
        repeat=True,
        doc="DNS search domains",
    ),
    Option(
        "insecure-registries",
        "insecure_registries",
        _strlist,
        (),
        "insecure-registry",
        repeat=True,
        reload=True,
        doc="Registries reached over plain HTTP",
    ),
    Option(
        "registry-mirrors",
        "registry_mirrors",
        _strlist,
        (),
        "registry-mirror",
        repeat=True,
        reload=True,
        doc="Mirrors for Docker Hub",
    ),
    Option(
        "labels",
        "labels",
        _strlist,
        (),
        "label",
        repeat=True,
        reload=True,
        doc="Daemon labels (key=value)",
    ),
    Option(
        "log-driver",
        "log_driver",
        _str,
        "json-file",
        "log-driver",
        doc="Default container log driver",
        accepts=lambda v: v in LOG_DRIVERS,
        refuse=f"pyd's log drivers are {', '.join(LOG_DRIVERS)}",
    ),
    Option(
        "log-opts",
        "log_opts",
        _strmap,
        {},
        "log-opt",
        repeat=True,
        doc="Default log driver options (max-size, max-file; the syslog-* and cache-* options of "
        "docs/containers.md, syslog-tls-* included)",
    ),
    Option(
        "default-runtime",
        "default_runtime",
        _str,
        "crun",
        "default-runtime",
        reload=True,
        doc="OCI runtime of containers that name none: crun, runc (Debian's; also as "
        "io.containerd.runc.v2) or one of runtimes",
        blank_is_default=True,
    ),
    Option(
        "metrics-addr",
        "metrics_addr",
        _str,
        "",
        "metrics-addr",
        doc="Serve Prometheus metrics on HOST:PORT",
    ),
    Option(
        "live-restore",
        "live_restore",
        _bool,
        True,
        "live-restore",
        doc="Keep containers running while the daemon is down (always on in pyd)",
        inert="pyd always keeps containers running while it is down or restarting",
    ),
    Option(
        "shutdown-timeout",
        "shutdown_timeout",
        _int,
        15,
        "shutdown-timeout",
        doc="Seconds shutdown may wait for in-flight requests and areas' stop work; then the daemon stops anyway (containers keep running)",
    ),
    Option(
        "max-concurrent-downloads",
        "max_concurrent_downloads",
        _int,
        3,
        "max-concurrent-downloads",
        reload=True,
        doc="Parallel layer downloads per pull",
    ),
    Option(
        "max-concurrent-uploads",
        "max_concurrent_uploads",
        _int,
        5,
        "max-concurrent-uploads",
        reload=True,
        doc="Parallel layer uploads per push",
    ),
    Option(
        "events-retention",
        "events_retention",
        _int,
        10000,
        "events-retention",
        doc="How many events the event log keeps",
    ),
    Option(
        "runtimes",
        "runtimes",
        rtmod.runtimes,
        {},
        "add-runtime",
        repeat=True,
        reload=True,
        doc="More OCI runtimes: {name: {path, runtimeArgs}} (flag: NAME=PATH); runtimeType "
        "(containerd shims) refused",
    ),
    Option(
        "ip-forward",
        "ip_forward",
        _bool,
        True,
        "ip-forward",
        doc="Turn on net.ipv4.ip_forward at start, and IPv6 forwarding once a network has IPv6 "
        "(as dockerd; never turned off again)",
    ),
    Option(
        "ip-forward-no-drop",
        "ip_forward_no_drop",
        _bool,
        False,
        "ip-forward-no-drop",
        is_flag=True,
        doc="Leave the FORWARD policy alone (pyd never changes it)",
        inert="pyd never sets the host's FORWARD policy",
    ),
    Option(
        "iptables",
        "iptables",
        _bool,
        True,
        "iptables",
        doc="Add firewall rules: pyd's own nft table, and one jump at the head of the host's "
        "filter FORWARD (iptables) so that a drop policy there lets the bridges' traffic "
        "through; false: none at all, as dockerd",
    ),
    Option(
        "userland-proxy",
        "userland_proxy",
        _bool,
        True,
        "userland-proxy",
        doc="Serve from the daemon the published TCP ports NAT cannot carry (dockerd's "
        "docker-proxy): [::1], and [::] of containers without IPv6; the rest is NAT-ed either way",
    ),
    Option(
        "userland-proxy-path",
        "userland_proxy_path",
        _str,
        "",
        "userland-proxy-path",
        doc="docker-proxy binary (pyd's userland proxy is in the daemon)",
        inert="pyd's userland proxy runs in the daemon, not as a program",
    ),
    Option(
        "http-proxy",
        "http_proxy",
        _proxy_url,
        "",
        "http-proxy",
        doc="HTTP proxy for registry traffic (also the proxies object; shown masked by info)",
    ),
    Option(
        "https-proxy",
        "https_proxy",
        _proxy_url,
        "",
        "https-proxy",
        doc="HTTPS proxy for registry traffic (CONNECT)",
    ),
    Option(
        "no-proxy",
        "no_proxy",
        _str,
        "",
        "no-proxy",
        doc="Hosts reached without the proxy (comma-separated)",
    ),
    *LIMIT_OPTIONS,
    *DOCKERD_OPTIONS,
)

BY_KEY = {o.key: o for o in OPTIONS}
BY_ATTR = {o.attr: o for o in OPTIONS}


def _fields() -> dict[str, Any]:
    fields = {o.attr: attrs.field(default=o.default) for o in OPTIONS}
    fields["config_file"] = attrs.field(default=DEFAULT_CONFIG_FILE)
    # The file actually read ("" when none existed) and the notices for keys without effect.
    fields["config_source"] = attrs.field(default="")
    fields["notices"] = attrs.field(default=())
    return fields


DaemonConfigBase = attrs.make_class("DaemonConfigBase", _fields(), frozen=True)


class DaemonConfig(DaemonConfigBase):  # type: ignore[valid-type,misc]  # base class made by attrs.make_class from the option table
    """The daemon's whole configuration (frozen). Attribute names are L{Option.attr}."""

    def __getattr__(self, name: str) -> Any:  # for mypy: attributes come from OPTIONS
        raise AttributeError(name)

    def effective_log_level(self) -> str:
        """C{debug} when C{--debug} is on, else the log level."""
        return "debug" if self.debug else str(self.log_level)

    def default_hosts(self) -> tuple[str, ...]:
        """C{-H} values, or the default Unix socket."""
        return tuple(self.hosts) or ("unix:///var/run/pyd.sock",)

    def as_dict(self) -> dict[str, Any]:
        """The configuration keyed by daemon.json keys (for logs and reload diffs)."""
        return {o.key: getattr(self, o.attr) for o in OPTIONS}


def resolve_config_file(explicit: str | None) -> tuple[str, bool]:
    """The file to read and whether it must exist: C{--config-file} when given; else pyd's own
    default, or dockerd's C{/etc/docker/daemon.json} when pyd's does not exist (a host moving from
    dockerd keeps its file)."""
    if explicit is not None:
        return explicit, True
    if not os.path.exists(DEFAULT_CONFIG_FILE) and os.path.exists(DOCKERD_CONFIG_FILE):
        return DOCKERD_CONFIG_FILE, False
    return DEFAULT_CONFIG_FILE, False


def read_file(path: str, required: bool) -> dict[str, Any] | None:
    """Load daemon.json (None: absent, fine unless the operator named the file explicitly).

    Objects dockerd flattens (C{proxies}) are flattened to their keys here.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(
                f"unable to configure the pyd daemon with file {path}: no such file"
            ) from None
        return None
    except OSError as e:
        raise ConfigError(f"unable to read config file {path}: {e}") from e
    # As dockerd: a UTF-8 byte order mark (Notepad) is allowed.
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"unable to configure the pyd daemon with file {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"unable to configure the pyd daemon with file {path}: not an object")
    return _flatten(data)


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k not in NESTED}
    for outer, inner in NESTED.items():
        if outer not in data:
            continue
        block = data[outer]
        if not isinstance(block, dict):
            raise ConfigError(f"invalid value for {outer}: expected an object")
        unknown = sorted(k for k in block if k not in inner)
        if unknown:
            raise ConfigError(
                "the following directives don't match any configuration option: "
                + ", ".join(unknown)
            )
        for k, v in block.items():
            if k in out:
                raise ConfigError(f"{k} is set both in {outer} and on its own")
            out[k] = v
    unknown = sorted(k for k in out if k not in BY_KEY)
    if unknown:
        raise ConfigError(
            "the following directives don't match any configuration option: " + ", ".join(unknown)
        )
    return out


def _shown(key: str, value: Any) -> Any:
    """A value for an error message: proxy credentials masked, as dockerd masks them."""
    if key in ("http-proxy", "https-proxy") and isinstance(value, str):
        return mask_credentials(value)
    return value


def build(
    flags: Mapping[str, Any],
    config_file: str = DEFAULT_CONFIG_FILE,
    file_required: bool = False,
) -> DaemonConfig:
    """Merge flags (keyed by daemon.json key, only those given) with the file.

    @raise ConfigError: bad file, bad value, a value pyd cannot honour, or a key given both ways.
    """
    found = read_file(config_file, file_required)
    data = found or {}
    both = sorted(k for k in flags if k in data)
    if both:
        detail = ", ".join(
            f"{k}: (from flag: {_shown(k, flags[k])}, from file: {_shown(k, data[k])})"
            for k in both
        )
        raise ConfigError(
            "the following directives are specified both as a flag and in the "
            f"configuration file: {detail}"
        )
    values: dict[str, Any] = {}
    notices: list[str] = []
    for key, raw in list(data.items()) + list(flags.items()):
        opt = BY_KEY[key]
        if opt.blank_is_default and raw == "":
            continue
        value = opt.convert(raw, key)
        notice = opt.check(value)
        if notice:
            notices.append(notice)
        values[opt.attr] = value
    cfg = DaemonConfig(
        config_file=config_file,
        config_source=config_file if found is not None else "",
        notices=tuple(notices),
        **values,
    )
    validate(cfg)
    return cfg


def validate(cfg: DaemonConfig) -> None:
    """Cross-field checks. @raise ConfigError: the configuration cannot work."""
    tcp = False
    for h in cfg.default_hosts():
        spec = parse_host(h)
        tcp = tcp or spec.kind == "tcp"
    tls = cfg.tls or cfg.tlsverify
    if tls:
        for key in ("tlscert", "tlskey"):
            if not getattr(cfg, key):
                raise ConfigError(f"--{key} is required when TLS is enabled")
        if cfg.tlsverify and not cfg.tlscacert:
            raise ConfigError("--tlscacert is required with --tlsverify")
        for key in ("tlscacert", "tlscert", "tlskey", "tlscrl"):
            path = getattr(cfg, key)
            if path and not os.path.isfile(path):
                raise ConfigError(f"could not read {key} file {path}: no such file")
    if tcp and not tls and not cfg.insecure_plain_tcp:
        raise ConfigError(
            "refusing to serve the API on plain TCP: anyone who can connect would be root on this "
            "host. Use --tlsverify with --tlscacert/--tlscert/--tlskey, or pass "
            "--insecure-tcp-without-tls-gives-root-to-anyone if you really mean it"
        )
    rtmod.check_default(cfg.default_runtime, cfg.runtimes)
    if cfg.bip and "/" not in cfg.bip:
        raise ConfigError(f"invalid value for bip: {cfg.bip!r} (want ADDRESS/PREFIX)")
    _validate_v6(cfg)


def _validate_v6(cfg: DaemonConfig) -> None:
    """The IPv6 keys: addresses of the right family, and what dockerd refuses together."""
    for key, value in (("fixed-cidr-v6", cfg.fixed_cidr_v6), ("bip6", cfg.bip6)):
        if not value:
            continue
        try:
            iface = ipaddress.ip_interface(value)
        except ValueError:
            raise ConfigError(f"invalid value for {key}: {value!r} (want an IPv6 CIDR)") from None
        if iface.version != 6 or "/" not in value:
            raise ConfigError(f"invalid value for {key}: {value!r} (want an IPv6 CIDR)")
    if cfg.fixed_cidr_v6 and cfg.bip6:
        fixed = ipaddress.IPv6Network(cfg.fixed_cidr_v6, strict=False)
        if not fixed.subnet_of(ipaddress.IPv6Interface(cfg.bip6).network):
            raise ConfigError(f"fixed-cidr-v6 {cfg.fixed_cidr_v6} is not inside bip6 {cfg.bip6}")
    for base, size in cfg.default_address_pools:
        try:
            net = ipaddress.ip_network(base, strict=False)
        except ValueError:
            raise ConfigError(f"invalid value for default-address-pools: base {base!r}") from None
        if not net.prefixlen <= size <= net.max_prefixlen:
            raise ConfigError(
                f"invalid value for default-address-pools: size {size} does not fit base {base}"
            )


@attrs.frozen
class ListenSpec:
    """One C{-H} address, resolved."""

    kind: str  # "unix", "tcp" or "fd"
    address: str  # socket path, "host:port", or fd name ("" = all)
    host: str = ""
    port: int = 0

    def endpoint_description(self) -> str:
        """A Twisted server endpoint string for this address (TLS is wrapped separately)."""
        if self.kind == "unix":
            return "unix:" + _esc(self.address) + ":mode=660"
        if self.kind == "tcp":
            return f"tcp:{self.port}:interface={_esc(self.host or '0.0.0.0')}"
        if self.address.isdigit():
            return f"systemd:domain=UNIX:index={self.address}"
        if self.address:
            return f"systemd:domain=UNIX:name={_esc(self.address)}"
        return "systemd:domain=UNIX:index=0"


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def parse_host(value: str) -> ListenSpec:
    """Parse a C{-H} value like dockerd: C{unix://PATH}, C{tcp://HOST:PORT}, C{fd://[NAME]}.

    @raise ConfigError: unsupported scheme or missing parts.
    """
    v = value.strip()
    if v.startswith("/"):
        return ListenSpec("unix", v)
    if v.startswith("unix://"):
        path = v[len("unix://") :] or "/var/run/pyd.sock"
        return ListenSpec("unix", path)
    if v.startswith("fd://"):
        return ListenSpec("fd", v[len("fd://") :])
    if v.startswith("tcp://") or v.startswith(":") or ("://" not in v and ":" in v):
        u = urlsplit(v if "://" in v else "tcp://" + v)
        host = u.hostname or "0.0.0.0"
        try:
            port = u.port or 2376
        except ValueError as e:
            raise ConfigError(f"invalid bind address format: {value}") from e
        return ListenSpec("tcp", f"{host}:{port}", host, port)
    raise ConfigError(f"invalid bind address format: {value}")
