"""Daemon configuration: flags + daemon.json -> a frozen L{DaemonConfig} (layer: config).

Keys and flags are dockerd's where dockerd has one. Like dockerd, an unknown key in the file, bad
JSON, a bad value, or a key set both in the file and as a flag is an error naming the key.
Every option is one row of L{OPTIONS}; the tap builds its flags from the same table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
ROLES = ("viewer", "operator", "admin")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


def _str(v: Any, key: str) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"invalid value for {key}: expected a string, got {v!r}")
    return v


def _bool(v: Any, key: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "1", "false", "0"):
        return v.lower() in ("true", "1")
    raise ConfigError(f"invalid value for {key}: expected a boolean, got {v!r}")


def _int(v: Any, key: str) -> int:
    if isinstance(v, bool):
        raise ConfigError(f"invalid value for {key}: expected an integer, got {v!r}")
    try:
        return int(v)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid value for {key}: expected an integer, got {v!r}") from e


def _strlist(v: Any, key: str) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"invalid value for {key}: expected a list of strings, got {v!r}")
    return tuple(v)


def _strmap(v: Any, key: str) -> dict[str, str]:
    if isinstance(v, list | tuple):  # flag form: k=v entries
        out: dict[str, str] = {}
        for item in v:
            k, sep, val = str(item).partition("=")
            if not sep:
                raise ConfigError(f"invalid value for {key}: {item!r} is not key=value")
            out[k] = val
        return out
    if not isinstance(v, dict):
        raise ConfigError(f"invalid value for {key}: expected an object, got {v!r}")
    return {str(k): str(x) for k, x in v.items()}


def _pools(v: Any, key: str) -> tuple[tuple[str, int], ...]:
    items = v if isinstance(v, list | tuple) else [v]
    out = []
    for item in items:
        if isinstance(item, str):  # flag form: base=10.10.0.0/16,size=24
            fields = dict(p.split("=", 1) for p in item.split(",") if "=" in p)
        elif isinstance(item, dict):
            fields = item
        else:
            raise ConfigError(f"invalid value for {key}: {item!r}")
        if "base" not in fields or "size" not in fields:
            raise ConfigError(f"invalid value for {key}: each pool needs base and size")
        out.append((str(fields["base"]), _int(fields["size"], key)))
    return tuple(out)


def _level(v: Any, key: str) -> str:
    s = _str(v, key).lower()
    if s == "warning":
        s = "warn"
    if s not in LOG_LEVELS:
        raise ConfigError(f"invalid value for {key}: {v!r} (use one of {', '.join(LOG_LEVELS)})")
    return s


def _role(v: Any, key: str) -> str:
    s = _str(v, key)
    if s not in ROLES:
        raise ConfigError(f"invalid value for {key}: {v!r} (use one of {', '.join(ROLES)})")
    return s


def _any_map(v: Any, key: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ConfigError(f"invalid value for {key}: expected an object")
    return dict(v)


@attrs.frozen
class Option:
    """One configuration option: its daemon.json key, attribute, flag(s), type and default."""

    key: str
    attr: str
    convert: Callable[[Any, str], Any]
    default: Any
    flag: str | None = None  # long flag name, None = file only
    short: str | None = None
    repeat: bool = False  # flag may be given several times (list)
    is_flag: bool = False  # boolean switch without a value
    reload: bool = False  # SIGHUP applies a change
    doc: str = ""


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
    ),
    Option(
        "exec-root",
        "exec_root",
        _str,
        "/run/pyd",
        "exec-root",
        doc="Root directory of runtime state",
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
        doc="Logging level: debug, info, warn, error, fatal",
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
    Option("group", "group", _str, "pyd", "group", "G", doc="Group owning the Unix socket(s)"),
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
        "default-address-pools",
        "default_address_pools",
        _pools,
        (),
        "default-address-pool",
        repeat=True,
        doc="Pools for new networks: base=CIDR,size=N",
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
        False,
        "ip-masq",
        doc="Masquerade container traffic leaving the host (off by default in pyd)",
    ),
    Option("mtu", "mtu", _int, 1500, "mtu", doc="MTU of container interfaces"),
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
    ),
    Option(
        "log-opts",
        "log_opts",
        _strmap,
        {},
        "log-opt",
        repeat=True,
        doc="Default log driver options (max-size, max-file)",
    ),
    Option(
        "default-runtime",
        "default_runtime",
        _str,
        "crun",
        "default-runtime",
        doc="OCI runtime for containers",
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
    ),
    Option(
        "shutdown-timeout",
        "shutdown_timeout",
        _int,
        15,
        "shutdown-timeout",
        doc="Seconds to wait for in-flight requests at shutdown",
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
    Option("runtimes", "runtimes", _any_map, {}, None, doc="Extra OCI runtimes: {name: {path}}"),
    Option("features", "features", _any_map, {}, None, doc="Accepted for dockerd compatibility"),
)

BY_KEY = {o.key: o for o in OPTIONS}
BY_ATTR = {o.attr: o for o in OPTIONS}


def _fields() -> dict[str, Any]:
    fields = {o.attr: attrs.field(default=o.default) for o in OPTIONS}
    fields["config_file"] = attrs.field(default="/etc/pyd/daemon.json")
    return fields


DaemonConfigBase = attrs.make_class("DaemonConfigBase", _fields(), frozen=True)


class DaemonConfig(DaemonConfigBase):  # type: ignore[valid-type,misc]
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


def read_file(path: str, required: bool) -> dict[str, Any]:
    """Load daemon.json; absent is fine unless the operator named the file explicitly."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(
                f"unable to configure the pyd daemon with file {path}: no such file"
            ) from None
        return {}
    except OSError as e:
        raise ConfigError(f"unable to read config file {path}: {e}") from e
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"unable to configure the pyd daemon with file {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"unable to configure the pyd daemon with file {path}: not an object")
    unknown = sorted(k for k in data if k not in BY_KEY)
    if unknown:
        raise ConfigError(
            "the following directives don't match any configuration option: " + ", ".join(unknown)
        )
    return data


def build(flags: Mapping[str, Any], config_file: str, file_required: bool) -> DaemonConfig:
    """Merge flags (keyed by daemon.json key, only those given) with the file.

    @raise ConfigError: bad file, bad value, or a key given both ways.
    """
    data = read_file(config_file, file_required)
    both = sorted(k for k in flags if k in data)
    if both:
        detail = ", ".join(f"{k}: (from flag: {flags[k]}, from file: {data[k]})" for k in both)
        raise ConfigError(
            "the following directives are specified both as a flag and in the "
            f"configuration file: {detail}"
        )
    values: dict[str, Any] = {}
    for key, raw in list(data.items()) + list(flags.items()):
        opt = BY_KEY[key]
        values[opt.attr] = opt.convert(raw, key)
    cfg = DaemonConfig(config_file=config_file, **values)
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
    if cfg.bip and "/" not in cfg.bip:
        raise ConfigError(f"invalid value for bip: {cfg.bip!r} (want ADDRESS/PREFIX)")


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
