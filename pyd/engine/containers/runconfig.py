"""What a container is given from its configuration (layer: engine): the image's defaults merged
into the request's config, the command it runs, the C{/etc/hosts} and C{/etc/resolv.conf} it
gets, how its output is kept (the log plan dockerd's logger initialisation makes at start), and
dockerd's start error texts. dockerd's checks of the configuration are
L{pyd.engine.spec.rules}.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from pyd.core.errors import SystemError_
from pyd.core.records import Image
from pyd.engine.spec.records import LogConfig
from pyd.engine.spec.rules import (
    LOCAL_MAX_FILE,
    LOCAL_MAX_SIZE,
    go_atoi,
    go_bool,
    go_size,
    parse_extra_host,
)


def stored_copy(section: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a request's JSON section for the container record, its keys interned.

    Each request's JSON decodes to new key strings ("Hostname", "AttachStdin", ... ~60 of them
    in the CLI's Config and HostConfig); kept as they are, 200 created containers held ~0.7 MB
    of the same names, and the memory they left behind once removed did not all go back
    (docs/performance.md, issue 21). Strings, numbers and None are shared (immutable); lists
    and dicts are copied, as C{copy.deepcopy} did."""
    return {_intern(k): _copied(v) for k, v in section.items()}


def _intern(k: Any) -> Any:
    return sys.intern(k) if type(k) is str else k


def _copied(v: Any) -> Any:
    if isinstance(v, dict):
        return {_intern(k): _copied(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copied(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_copied(x) for x in v)
    return v


def _env_key(e: str) -> str:
    return e.split("=", 1)[0]


def merge_user_env(env: Sequence[str], older: Sequence[str]) -> list[str]:
    """moby's config C{merge} (daemon/commit.go, used by create and commit): C{env} as given,
    then each entry of C{older} whose name it does not set."""
    keys = {_env_key(e) for e in env}
    return [*env, *(e for e in older if _env_key(e) not in keys)]


def merge_image_defaults(config: dict[str, Any], image: Image) -> dict[str, Any]:
    """dockerd's C{merge}: fill what the request left empty from the image's config."""
    c = dict(config)
    ic = image.container_config
    if not c.get("User"):
        c["User"] = ic.get("User") or ""
    c["Env"] = merge_user_env(c.get("Env") or [], ic.get("Env") or [])
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


def start_error(
    args: Sequence[str], runtime_message: str, runtime: str = "crun"
) -> tuple[str, int]:
    """Translate a runtime refusal into dockerd's start error text and the exit code it records.

    127: the executable does not exist; 126: it cannot be executed; 128: anything else.
    A refusal to run the command is dockerd 28's text whatever the runtime (crun words these
    differently): C{runc create failed: unable to start container process: error during
    container init: exec: ...} (runc >= 1.2, the runc of dockerd 28's packages, wraps every
    init error in C{error during container init}). Any other refusal is the runtime's own
    words after its name as dockerd's text gives it (C{runc create failed}, C{crun}).
    """
    prefix = (
        "failed to create task for container: failed to create shim task: OCI runtime create "
        "failed: "
    )
    known = process_error(args[0] if args else "", runtime_message)
    if known is not None:
        text = known[0].replace(_UNABLE, _UNABLE + "error during container init: ", 1)
        return f"{prefix}runc create failed: {text}", known[1]
    return (f"{prefix}{runtime}: {runtime_message}: unknown", 128)


_UNABLE = "unable to start container process: "


def process_error(exe: str, m: str) -> tuple[str, int] | None:
    """dockerd's words (runc's C{unable to start container process}) for a runtime's refusal
    to run C{exe}, with the exit code dockerd records; None for any other refusal.

    Shared by start (after C{OCI runtime create failed: }) and exec (after C{OCI runtime exec
    failed: exec failed: }): crun and runc word these differently, dockerd shows runc's.
    """
    if "not found in $PATH" in m or ("executable file" in m and "not found" in m):
        if "/" in exe:
            # crun says "not found in $PATH" for a path too; runc (dockerd) stats it
            return (
                f'unable to start container process: exec: "{exe}": '
                f"stat {exe}: no such file or directory: unknown",
                127,
            )
        return (
            f'unable to start container process: exec: "{exe}": '
            "executable file not found in $PATH: unknown",
            127,
        )
    if ("No such file or directory" in m and "open executable" in m) or (
        "/" in exe and "no such file or directory" in m.lower()
    ):
        return (
            f'unable to start container process: exec: "{exe}": '
            f"stat {exe}: no such file or directory: unknown",
            127,
        )
    # crun cannot open a directory as the executable: "open executable: Operation not
    # permitted"; runc (dockerd) says permission denied, as for a file without x.
    if (
        "Permission denied" in m
        or "permission denied" in m
        or "Is a directory" in m
        or ("open executable" in m and "Operation not permitted" in m)
    ):
        return (
            f'unable to start container process: exec: "{exe}": permission denied: unknown',
            126,
        )
    return None


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
