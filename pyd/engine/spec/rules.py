"""dockerd's rules for a container's configuration, shared by the create spec and update (layer:
engine).

Pure functions with dockerd's 400 texts: the resource, restart-policy and log-configuration
checks (create and C{docker update}), C{ExtraHosts} and sysctl names, signals, and Go's value
parsers (C{strconv}, go-units sizes) the create spec and the API read values with. The rest of
the create checks run in L{pyd.engine.spec.validate}; what a container is given from its
configuration (image defaults, hosts and resolv.conf, its log plan) is
L{pyd.engine.containers.runconfig}.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import posixpath
import re
import signal as _signal
from collections.abc import Mapping, Sequence
from typing import Any

from pyd.core.errors import InvalidParameter
from pyd.core.ids import go_quote, line_safe
from pyd.drivers.syslog import FORMATS as SYSLOG_FORMATS
from pyd.drivers.syslog import SyslogError, facility_code, parse_address

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
    # ASCII digits only: str.isdigit() admits superscripts and other scripts' digits, which
    # int() then refuses or reads (Go's Atoi takes neither)
    if v.isascii() and v.isdigit():
        n = int(v)
        if n == 0 or n > 64:
            raise InvalidParameter(f"Invalid signal: {value}")
        return n
    if not v.startswith("SIG"):
        v = "SIG" + v
    if v.startswith("SIGRTMIN+") or v.startswith("SIGRTMAX-"):
        # moby's SignalMap: RTMIN+1..RTMIN+15 and RTMAX-14..RTMAX-1
        off_text = v[9:]
        if not (off_text.isascii() and off_text.isdigit()) or not 1 <= int(off_text) <= 15:
            raise InvalidParameter(f"Invalid signal: {value}")
        off = int(off_text)
        if v.startswith("SIGRTMAX-") and off > 14:
            raise InvalidParameter(f"Invalid signal: {value}")
        base = int(_signal.SIGRTMIN if v.startswith("SIGRTMIN") else _signal.SIGRTMAX)
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


def parse_link(value: str) -> tuple[str, str]:
    """moby's C{opts.ParseLink}: C{name:alias}, C{name} (the alias is the name) or inspect's
    C{/name:/parent/alias} form.

    @raise InvalidParameter: dockerd's texts (dockerd answers them with a 500; they are the
        client's input, so pyd says 400).
    """
    if not value:
        raise InvalidParameter("empty string specified for links")
    parts = value.split(":")
    if len(parts) > 2:
        raise InvalidParameter(f"bad format for links: {value}")
    if len(parts) == 1:
        return value, value
    if parts[0].startswith("/"):
        return parts[0][1:], posixpath.basename(parts[1])
    return parts[0], parts[1]


# Endpoint driver options dockerd 28 acts on itself for every driver (libnetwork's netlabel
# EndpointSysctls and Ifname); pyd does not, so a request naming them is refused. Any other key
# is the driver's, and dockerd's bridge reads none of a client's: it keeps them for inspect.
ENDPOINT_OPTS_ACTED_ON = (
    "com.docker.network.endpoint.sysctls",
    "com.docker.network.endpoint.ifname",
)


def validate_endpoint(driver_opts: Mapping[str, str], gw_priority: int) -> None:
    """An C{EndpointSettings}' options pyd cannot honour, for create and connect alike.

    @raise InvalidParameter: a driver option dockerd applies and pyd does not, or a gateway
        priority.
    """
    for key in ENDPOINT_OPTS_ACTED_ON:
        if key in driver_opts:
            raise InvalidParameter(
                f"EndpointSettings.DriverOpts {go_quote(key)} is not supported by pyd"
            )
    if gw_priority:
        raise InvalidParameter("EndpointSettings.GwPriority is not supported by pyd")


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


_OSES = frozenset(
    ("linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix",
     "android", "ios", "plan9", "js", "wasip1")
)  # fmt: skip
_ARCH_ALIASES = {
    "x86_64": ("amd64", ""), "x86-64": ("amd64", ""), "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""), "arm64": ("arm64", ""), "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"), "arm": ("arm", "v7"), "i386": ("386", ""), "386": ("386", ""),
    "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
    "mips64": ("mips64", ""), "mips64le": ("mips64le", ""), "loong64": ("loong64", ""),
}  # fmt: skip


def parse_platform(value: str, host_arch: str = "amd64") -> tuple[str, str, str]:
    """containerd's C{platforms.Parse} (what dockerd runs on a C{platform} parameter), with
    its normalisation: (os, architecture, variant).

    @raise InvalidParameter: containerd's texts.
    """
    parts = value.lower().split("/")
    unknown = InvalidParameter(
        f"{go_quote(value)}: unknown operating system or architecture: invalid argument"
    )
    if len(parts) == 1:
        if parts[0] in _OSES:
            return parts[0], host_arch, ""
        if parts[0] in _ARCH_ALIASES:
            return ("linux", *_ARCH_ALIASES[parts[0]])
        raise unknown
    if len(parts) > 3 or not all(parts):
        raise InvalidParameter(
            f"{go_quote(value)}: cannot parse platform specifier: invalid argument"
        )
    arch, variant = _ARCH_ALIASES.get(parts[1], (parts[1], ""))
    if len(parts) == 3:
        variant = "" if (arch, parts[2]) == ("arm64", "v8") else parts[2]
    return parts[0], arch, variant


def normalize_arch(arch: str) -> str:
    """containerd's C{platforms.NormalizeArch}, the architecture alone: C{x86_64} -> C{amd64},
    C{aarch64} -> C{arm64}, C{armhf} -> C{arm}."""
    low = arch.lower()
    return _ARCH_ALIASES.get(low, (low, ""))[0]


def format_platform(os_: str, arch: str, variant: str) -> str:
    """containerd's C{platforms.Format}."""
    return "/".join(p for p in (os_, arch, variant) if p)
