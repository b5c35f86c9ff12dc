"""Docker's rules for a container's configuration (layer: engine).

Pure functions: the checks shared by create and update (resources, restart policy) and the log
configuration's, with dockerd's 400 messages; merge image defaults, parse signals and sizes, and
render the C{/etc/hosts}, C{/etc/hostname} and C{/etc/resolv.conf} a container gets. The rest of
the create checks run in the create spec's parser (L{pyd.engine.spec.validate}); users and groups
are resolved in L{pyd.engine.users}.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import signal as _signal
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from pyd.core.errors import InvalidParameter, SystemError_
from pyd.core.ids import go_quote, line_safe
from pyd.core.records import Image
from pyd.drivers.syslog import FORMATS as SYSLOG_FORMATS
from pyd.drivers.syslog import SyslogError, facility_code, parse_address
from pyd.engine.spec.records import LogConfig

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MIN_MEMORY = 6 * 1024 * 1024
DEFAULT_SHM = 64 * 1024 * 1024
RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")
# The log drivers pyd serves; dockerd's others (syslog, journald, gelf...) are refused like a
# plugin dockerd cannot find.
LOG_DRIVERS = ("json-file", "local", "none", "syslog", "journald")
LOCAL_MAX_SIZE = 20 * 1024 * 1024  # dockerd's local driver defaults
LOCAL_MAX_FILE = 5
_COMMON_LOG_OPTS = ("env", "env-regex", "labels", "labels-regex", "tag")

HEALTH_DEFAULTS = {
    "Interval": 30_000_000_000,
    "Timeout": 30_000_000_000,
    "StartPeriod": 0,
    "StartInterval": 5_000_000_000,
    "Retries": 3,
}


def parse_signal(value: str | int | None, default: int = _signal.SIGTERM) -> int:
    """A signal given as a number, C{TERM} or C{SIGTERM}.

    @raise InvalidParameter: unknown signal (dockerd's text).
    """
    if value is None or value == "":
        return default
    if isinstance(value, int):
        return value
    v = value.strip().upper()
    if v.isdigit():
        n = int(v)
        if n == 0 or n > 64:
            raise InvalidParameter(f"Invalid signal: {value}")
        return n
    if not v.startswith("SIG"):
        v = "SIG" + v
    if v.startswith("SIGRTMIN+") or v.startswith("SIGRTMAX-"):
        base = int(_signal.SIGRTMIN if v.startswith("SIGRTMIN") else _signal.SIGRTMAX)
        off = int(v[9:])
        return base + off if v.startswith("SIGRTMIN") else base - off
    sig = getattr(_signal, v, None)
    if not isinstance(sig, int) or v.startswith("SIG_"):
        raise InvalidParameter(f"Invalid signal: {value}")
    return int(sig)


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$", re.I)


def parse_size(value: str) -> int:
    """C{10m}, C{1g}, C{512k}, C{1024} as bytes (binary units, like go-units RAMInBytes)."""
    m = _SIZE.match(value.strip())
    if not m:
        raise InvalidParameter(f"invalid size: '{value}'")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    return int(float(m.group(1)) * mult[m.group(2).lower()])


def _env_key(e: str) -> str:
    return e.split("=", 1)[0]


def merge_env(image_env: Sequence[str], env: Sequence[str]) -> list[str]:
    """Image env first, the container's entries replace same-named ones."""
    out: list[str] = list(image_env)
    for e in env:
        key = _env_key(e)
        out = [x for x in out if _env_key(x) != key]
        out.append(e)
    return out


def merge_image_defaults(config: dict[str, Any], image: Image) -> dict[str, Any]:
    """dockerd's C{merge}: fill what the request left empty from the image's config."""
    c = dict(config)
    ic = image.container_config
    if not c.get("User"):
        c["User"] = ic.get("User") or ""
    c["Env"] = merge_env(ic.get("Env") or [], c.get("Env") or [])
    if c.get("Entrypoint") is None or c.get("Entrypoint") == []:
        if c.get("Entrypoint") is None:
            c["Entrypoint"] = ic.get("Entrypoint")
            if not c.get("Cmd"):
                c["Cmd"] = ic.get("Cmd")
        elif not c.get("Cmd"):
            c["Cmd"] = ic.get("Cmd")
    c.setdefault("Cmd", None)
    if c.get("Entrypoint") == [""]:
        c["Entrypoint"] = None
    if not c.get("WorkingDir"):
        c["WorkingDir"] = ic.get("WorkingDir") or ""
    ports = dict(ic.get("ExposedPorts") or {})
    ports.update(c.get("ExposedPorts") or {})
    c["ExposedPorts"] = ports or None
    vols = dict(ic.get("Volumes") or {})
    vols.update(c.get("Volumes") or {})
    c["Volumes"] = vols or None
    labels = dict(ic.get("Labels") or {})
    labels.update(c.get("Labels") or {})
    c["Labels"] = labels
    if not c.get("StopSignal") and ic.get("StopSignal"):
        c["StopSignal"] = ic["StopSignal"]
    ihc = ic.get("Healthcheck")
    hc = c.get("Healthcheck")
    if ihc:
        if not hc:
            c["Healthcheck"] = dict(ihc)
        else:
            merged = dict(hc)
            if not merged.get("Test"):
                merged["Test"] = ihc.get("Test")
            for k in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
                if not merged.get(k):
                    merged[k] = ihc.get(k, 0)
            c["Healthcheck"] = merged
    if not c.get("OnBuild"):
        c["OnBuild"] = None
    return c


def command_of(config: dict[str, Any]) -> list[str]:
    """Entrypoint + Cmd: what the container runs."""
    return list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])


def validate_restart_policy(rp: dict[str, Any] | None, auto_remove: bool) -> None:
    """dockerd's checks of C{RestartPolicy}."""
    rp = rp or {}
    name = rp.get("Name") or ""
    count = rp.get("MaximumRetryCount") or 0
    if name not in RESTART_POLICIES:
        raise InvalidParameter(
            f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        )
    if name != "on-failure" and count:
        raise InvalidParameter(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )
    if count < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    if auto_remove and name not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")


def validate_resources(hc: dict[str, Any], ncpu: int) -> list[str]:
    """dockerd's resource checks (shared by create and update); returns warnings."""
    warnings: list[str] = []
    mem = hc.get("Memory") or 0
    swap = hc.get("MemorySwap") or 0
    if mem and mem < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if mem and swap > 0 and swap < mem:
        raise InvalidParameter(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    if not mem and swap > 0:
        raise InvalidParameter(
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        )
    res = hc.get("MemoryReservation") or 0
    if res and res < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if mem and res and mem < res:
        raise InvalidParameter(
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        )
    nano = hc.get("NanoCpus") or 0
    if nano and (hc.get("CpuPeriod") or hc.get("CpuQuota")):
        if hc.get("CpuPeriod"):
            raise InvalidParameter(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set"
            )
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if nano < 0 or nano > ncpu * 1_000_000_000:
        raise InvalidParameter(
            f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )
    period = hc.get("CpuPeriod") or 0
    if period and (period < 1000 or period > 1_000_000):
        raise InvalidParameter(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    quota = hc.get("CpuQuota") or 0
    if quota and quota > 0 and quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    shares = hc.get("CpuShares") or 0
    if shares < 0:
        raise InvalidParameter("invalid CPU shares: must be a positive integer")
    weight = hc.get("BlkioWeight") or 0
    if weight and (weight < 10 or weight > 1000):
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    host_cpus, host_mems = host_cpusets()
    for key, what, available, missing in (
        ("CpusetCpus", "cpus", host_cpus, "CPUs"),
        ("CpusetMems", "mems", host_mems, "memory nodes"),
    ):
        value = hc.get(key) or ""
        try:
            wanted = parse_uint_list(value)
        except ValueError as e:
            raise InvalidParameter(f"Invalid value {value} for cpuset {what}: {e}") from None
        # Checked here, not left to the kernel: a cpuset it rejects is the client's mistake
        # (dockerd's 400, daemon/daemon_unix.go verifyPlatformContainerResources).
        if not wanted <= parse_uint_list(available):
            raise InvalidParameter(
                f"Requested {missing} are not available - requested {value}, available: {available}"
            )
    return warnings


def parse_uint_list(value: str) -> set[int]:
    """A cpuset list (C{0-2,5}) as Go's C{parsers.ParseUintList} reads it.

    @raise ValueError: C{invalid format: <value>}.
    """
    out: set[int] = set()
    if not value:
        return out
    bad = ValueError(f"invalid format: {value}")
    for part in value.split(","):
        lo, dash, hi = part.partition("-")
        if not re.fullmatch(r"\+?[0-9]+", lo) or (dash and not re.fullmatch(r"\+?[0-9]+", hi)):
            raise bad
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first or last - first > 65536:
            raise bad
        out.update(range(first, last + 1))
    return out


@functools.cache
def host_cpusets() -> tuple[str, str]:
    """The CPUs and memory nodes containers may use (the root cgroup's effective cpuset, as
    dockerd's sysinfo reads it); read once (a few bytes of cgroupfs)."""
    found = []
    for name, fallback in (
        ("cpus", lambda: _ranges(sorted(os.sched_getaffinity(0)))),
        ("mems", lambda: "0"),
    ):
        try:
            with open(f"/sys/fs/cgroup/cpuset.{name}.effective") as f:
                found.append(f.read().strip() or fallback())
        except OSError:
            found.append(fallback())
    return found[0], found[1]


def _ranges(ns: Sequence[int]) -> str:
    parts: list[str] = []
    for n in ns:
        if parts and n == int(parts[-1].rpartition("-")[2]) + 1:
            parts[-1] = parts[-1].partition("-")[0] + f"-{n}"
        else:
            parts.append(str(n))
    return ",".join(parts)


NO_SPACES = "it must not contain whitespace or control characters"


def parse_extra_host(h: str) -> tuple[str, str]:
    """An C{ExtraHosts} entry, C{name:ip} (or C{name=ip}; C{[v6]} brackets allowed), as
    (name, ip); C{ip} may be C{host-gateway}.

    @raise InvalidParameter: dockerd's C{bad format for add-host} / C{invalid IP address in
        add-host}, or a name that is not a single host name.
    """
    if not isinstance(h, str):
        raise InvalidParameter(f"bad format for add-host: {go_quote(str(h))}")
    if "=" in h and (":" not in h or h.index("=") < h.index(":")):
        name, sep, ip = h.partition("=")
    else:
        name, sep, ip = h.partition(":")
    if not sep or not name:
        raise InvalidParameter(f"bad format for add-host: {go_quote(h)}")
    if not line_safe(name):
        raise InvalidParameter(f"invalid host name in add-host: {go_quote(name)}: {NO_SPACES}")
    if ip == "host-gateway":
        return name, ip
    bare = ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        bare = ""
    if not bare or not line_safe(bare):  # a v6 zone (%...) is not checked by ipaddress
        raise InvalidParameter(f"invalid IP address in add-host: {go_quote(ip)}")
    return name, bare


HOSTS_BASE = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::\tip6-localnet\n"
    "ff00::\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def render_hosts(
    entries: Sequence[tuple[str, str]], extra_hosts: Sequence[str], host_file: str | None = None
) -> str:
    """C{/etc/hosts}: the base block (or the host's file for C{--network host}), ExtraHosts, own entries."""
    text = host_file if host_file is not None else HOSTS_BASE
    if text and not text.endswith("\n"):
        text += "\n"
    for h in extra_hosts:
        name, ip = parse_extra_host(h)
        if ip == "host-gateway":
            continue
        text += f"{ip}\t{name}\n"
    for addr, names in entries:
        text += f"{addr}\t{names}\n"
    return text


def render_resolv_conf(
    host_text: str,
    servers: Sequence[str],
    search: Sequence[str],
    options: Sequence[str],
    keep_localhost: bool = False,
) -> str:
    """C{/etc/resolv.conf} the way dockerd writes it.

    Explicit servers/search/options replace the host's; localhost nameservers of the host file
    are dropped (they mean nothing inside a network namespace) and Google's are used if none stay.
    """
    host_servers: list[str] = []
    host_search: list[str] = []
    host_opts: list[str] = []
    for line in host_text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith(("#", ";")):
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            host_servers.append(parts[1])
        elif parts[0] in ("search", "domain"):
            host_search = parts[1:]
        elif parts[0] == "options":
            host_opts.extend(parts[1:])
    if not keep_localhost:
        host_servers = [s for s in host_servers if not (s.startswith("127.") or s == "::1")]
        if not host_servers and not servers:
            host_servers = ["8.8.8.8", "8.8.4.4"]
    ns = list(servers) or host_servers
    se = list(search) or host_search
    op = list(options) or host_opts
    out = ""
    if se and se != ["."]:
        out += "search " + " ".join(se) + "\n"
    for s in ns:
        out += f"nameserver {s}\n"
    if op:
        out += "options " + " ".join(op) + "\n"
    return out


def start_error(args: Sequence[str], runtime_message: str) -> tuple[str, int]:
    """Translate a runtime refusal into dockerd's start error text and the exit code it records.

    127: the executable does not exist; 126: it cannot be executed; 128: anything else.
    """
    exe = args[0] if args else ""
    prefix = "failed to create task for container: failed to create shim task: OCI runtime create failed: "
    m = runtime_message
    if "not found in $PATH" in m or ("executable file" in m and "not found" in m):
        return (
            f'{prefix}crun: unable to start container process: exec: "{exe}": '
            "executable file not found in $PATH: unknown",
            127,
        )
    if ("No such file or directory" in m and "open executable" in m) or (
        "/" in exe and "No such file or directory" in m
    ):
        return (
            f'{prefix}crun: unable to start container process: exec: "{exe}": '
            f"stat {exe}: no such file or directory: unknown",
            127,
        )
    if "Permission denied" in m or "permission denied" in m or "Is a directory" in m:
        return (
            f'{prefix}crun: unable to start container process: exec: "{exe}": '
            "permission denied: unknown",
            126,
        )
    if "chdir" in m or "cwd" in m:
        return (f"{prefix}crun: {m}: unknown", 128)
    return (f"{prefix}crun: {m}: unknown", 128)


# --- logging ------------------------------------------------------------------------------------


@attrs.frozen
class LogPlan:
    """How a container's output is kept: C{driver} none, or a k8s-file log rotated at
    C{max_size} bytes (0: never) keeping C{max_files} files."""

    driver: str
    max_size: int = 0
    max_files: int = 1
    # syslog: the driver's options (address, facility, format, tag); the file is then dockerd's
    # "dual logging" cache, which `docker logs` reads.
    forward: Mapping[str, str] | None = None

    @property
    def rotates(self) -> bool:
        """Whether pyd must keep rotated files (conmon alone keeps one)."""
        return self.max_size > 0 and self.max_files > 1


def validate_log_config(lc: dict[str, Any]) -> None:
    """dockerd's C{ValidateLogOpts} at create: mode, max-buffer-size, the driver, its keys.

    Values are checked when the container starts (L{log_plan}), as dockerd does.

    @raise InvalidParameter: with dockerd's text.
    """
    ltype = lc.get("Type") or "json-file"
    cfg: dict[str, str] = dict(lc.get("Config") or {})
    if ltype == "none":
        return
    mode = cfg.get("mode", "")
    if mode not in ("", "blocking", "non-blocking"):
        raise InvalidParameter(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in cfg:
        if mode != "non-blocking":
            raise InvalidParameter(
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'"
            )
        try:
            go_size(str(cfg["max-buffer-size"]), binary=True)
        except ValueError as e:
            raise InvalidParameter(f"error parsing option max-buffer-size: {e}") from e
    if ltype not in LOG_DRIVERS:
        raise InvalidParameter(
            f'error looking up logging plugin {ltype}: plugin "{ltype}" not found'
        )
    if ltype == "syslog":
        _validate_syslog(cfg)
        return
    if ltype == "journald":
        for key in cfg:
            if key not in (*_COMMON_LOG_OPTS, *_CACHE_OPTS, "mode", "max-buffer-size"):
                raise InvalidParameter(f"unknown log opt '{key}' for journald log driver")
        return
    allowed = ("max-file", "max-size", "compress", *_COMMON_LOG_OPTS)
    for key in cfg:
        if key in ("mode", "max-buffer-size") or key in allowed:
            continue
        if ltype == "local":
            raise InvalidParameter(f"unknown log opt '{key}' for log driver local")
        raise InvalidParameter(f"unknown log opt '{key}' for json-file log driver")


def log_plan(lc: LogConfig | Mapping[str, Any]) -> LogPlan:
    """dockerd's logger initialisation at start: parse max-size, max-file, compress.

    @param lc: the spec's L{LogConfig} (or the wire C{LogConfig} section).
    @raise SystemError_: C{failed to initialize logging driver: ...} (dockerd's texts; compressed
        rotation is accepted but rotated files stay uncompressed).
    """
    if isinstance(lc, LogConfig):
        ltype, given = lc.type or "json-file", lc.config
    else:
        ltype, given = lc.get("Type") or "json-file", lc.get("Config") or {}
    cfg: dict[str, str] = {k: str(v) for k, v in given.items()}
    try:
        if ltype == "none":
            return LogPlan("none")
        if ltype == "local":
            return _local_plan(cfg)
        if ltype in ("syslog", "journald"):
            return _forwarding_plan(ltype, cfg)
        return _json_file_plan(cfg)
    except ValueError as e:
        raise SystemError_(f"failed to initialize logging driver: {e}") from e


_CACHE_OPTS = ("cache-disabled", "cache-max-size", "cache-max-file", "cache-compress")
_SYSLOG_OPTS = (
    "syslog-address", "syslog-facility", "syslog-format", "syslog-tls-ca-cert", "syslog-tls-cert",
    "syslog-tls-key", "syslog-tls-skip-verify", *_CACHE_OPTS, *_COMMON_LOG_OPTS,
)  # fmt: skip


def _validate_syslog(cfg: dict[str, str]) -> None:
    """dockerd's syslog ValidateLogOpt: known keys, a usable address, facility and format."""
    for key in cfg:
        if key not in _SYSLOG_OPTS and key not in ("mode", "max-buffer-size"):
            raise InvalidParameter(f"unknown log opt '{key}' for syslog log driver")
    for key in ("syslog-tls-ca-cert", "syslog-tls-cert", "syslog-tls-key"):
        if cfg.get(key):
            raise InvalidParameter(f"{key}: pyd's syslog driver uses the system's CA store only")
    try:
        parse_address(cfg.get("syslog-address", ""))
        facility_code(cfg.get("syslog-facility", ""))
    except SyslogError as e:
        raise InvalidParameter(str(e)) from e
    if cfg.get("syslog-format", "") not in SYSLOG_FORMATS:
        raise InvalidParameter(f"Invalid syslog format: {cfg['syslog-format']}")
    if "cache-disabled" in cfg and go_bool_ok(cfg["cache-disabled"]) is None:
        raise InvalidParameter(f"invalid value for cache-disabled: {cfg['cache-disabled']}")


def go_bool_ok(value: str) -> bool | None:
    """L{go_bool}, or None for a value Go does not parse."""
    try:
        return go_bool(value)
    except ValueError:
        return None


def _forwarding_plan(driver: str, cfg: dict[str, str]) -> LogPlan:
    """The local cache (dockerd's dual logging: cache-max-size/-file, 20m x 5 by default) and
    the options to forward with (syslog, journald)."""
    local = {k.removeprefix("cache-"): v for k, v in cfg.items() if k.startswith("cache-")}
    plan = _local_plan({k: v for k, v in local.items() if k != "disabled"})
    forward = {k: v for k, v in cfg.items() if k.startswith("syslog-") or k == "tag"}
    return LogPlan(driver, plan.max_size, plan.max_files, forward)


def _json_file_plan(cfg: dict[str, str]) -> LogPlan:
    size = -1
    if "max-size" in cfg:
        size = go_size(cfg["max-size"])
        if size <= 0:
            raise ValueError("max-size must be a positive number")
    files = 1
    if "max-file" in cfg:
        files = go_atoi(cfg["max-file"])
        if files < 1:
            raise ValueError("max-file cannot be less than 1")
    if "compress" in cfg and go_bool(cfg["compress"]) and (files == 1 or size == -1):
        raise ValueError(
            "compress cannot be true when max-file is less than 2 or max-size is not set"
        )
    return LogPlan("json-file", max(size, 0), files)


def _local_plan(cfg: dict[str, str]) -> LogPlan:
    size, files, compress = LOCAL_MAX_SIZE, LOCAL_MAX_FILE, True
    if "max-size" in cfg:
        try:
            size = go_size(cfg["max-size"])
        except ValueError as e:
            raise ValueError(f"invalid value for max-size: {cfg['max-size']}: {e}") from e
    if "max-file" in cfg:
        try:
            files = go_atoi(cfg["max-file"])
        except ValueError as e:
            raise ValueError(f"invalid value for max-file: {cfg['max-file']}: {e}") from e
    if "compress" in cfg:
        try:
            compress = go_bool(cfg["compress"])
        except ValueError as e:
            raise ValueError(f"invalid boolean value for compress: {e}") from e
    if size < 0:
        raise ValueError("max-size must not be negative")
    if files < 0:
        raise ValueError("max-file must not be negative")
    if compress and files <= 1:
        raise ValueError("compression cannot be enabled when max file count is 1")
    return LogPlan("local", size, max(files, 1))


_GO_INT = re.compile(r"^[+-]?[0-9]+$")
_SYSCTL_PART = re.compile(r"^[A-Za-z0-9_@:+-]+\Z")
_GO_FLOAT = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


def sysctl_name(key: str) -> str:
    """A C{--sysctl} key as the dotted name of the C{/proc/sys} file it writes.

    The runtime writes C{/proc/sys/<key with . turned into />}, so C{.} and C{/} both separate
    names; a C{..} or empty part would leave the named subtree (C{net/../kernel/core_pattern}
    is C{kernel.core_pattern}). The authorization rules judge the name this returns.

    @raise InvalidParameter: an empty, C{.} or C{..} part, or a character no sysctl has.
    """
    parts = key.replace("/", ".").split(".")
    if any(p in ("", ".", "..") or not _SYSCTL_PART.match(p) for p in parts):
        raise InvalidParameter(f"invalid sysctl name {key!r}")
    return ".".join(parts)


def go_atoi(value: str) -> int:
    """Go's C{strconv.Atoi}, with its error text."""
    if not _GO_INT.match(value):
        raise ValueError(f'strconv.Atoi: parsing "{value}": invalid syntax')
    return int(value)


def go_bool(value: str) -> bool:
    """Go's C{strconv.ParseBool}, with its error text."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def go_size(value: str, binary: bool = False) -> int:
    """go-units C{FromHumanSize} (k = 1000; C{binary}: C{RAMInBytes}, k = 1024), same errors."""
    sep = max(value.rfind(ch) for ch in "0123456789. ")
    if sep < 0:
        raise ValueError(f"invalid size: '{value}'")
    if value[sep] != " ":
        num, sfx = value[: sep + 1], value[sep + 1 :]
    else:
        num, sfx = value[:sep], value[sep + 1 :]
    if not _GO_FLOAT.match(num):
        raise ValueError(f'strconv.ParseFloat: parsing "{num}": invalid syntax')
    size = float(num)
    if size < 0:
        raise ValueError(f"invalid size: '{value}'")
    if not sfx:
        return int(size)
    low = sfx.lower()
    if len(sfx) > 3:
        raise ValueError(f"invalid suffix: '{sfx}'")
    if low[0] == "b":
        if len(low) > 1:
            raise ValueError(f"invalid suffix: '{low}'")
        return int(size)
    base = 1024 if binary else 1000
    power = "kmgtp".find(low[0]) + 1
    if power == 0 or (len(low) == 2 and low[1] != "b") or (len(low) == 3 and low[1:] != "ib"):
        raise ValueError(f"invalid suffix: '{low}'")
    return int(size * base**power)
