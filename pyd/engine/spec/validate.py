"""dockerd's create checks of a decoded create body, with its 400 texts (layer: engine).

Called by L{pyd.engine.spec.parse.parse_create} only, on the sections Go's typed decoding gave
(so every value already has its Go type). The checks shared with C{docker update} (resources,
restart policy) and with the engine's create (log configuration) are in
L{pyd.engine.spec.rules}, which this module calls.
"""

from __future__ import annotations

from typing import Any

from pyd.core.errors import InvalidParameter
from pyd.core.ids import go_clean, go_quote, line_safe
from pyd.engine.spec import rules

ULIMIT_NAMES = {
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
    "rss", "rtprio", "rttime", "sigpending", "stack", "as",
}  # fmt: skip


def _nonneg(hc: dict[str, Any], key: str) -> int:
    v = hc.get(key) or 0
    if not isinstance(v, int):
        raise InvalidParameter(f"invalid {key}: must be an integer")
    return v


def validate_healthcheck(hc: dict[str, Any] | None) -> None:
    """dockerd's checks of C{Healthcheck} durations and retries."""
    if not hc:
        return
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        v = _nonneg(hc, key)
        if v != 0 and v < 1_000_000:
            raise InvalidParameter(f"{key} in Healthcheck cannot be less than 1ms")
    if _nonneg(hc, "Retries") < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")


def validate_create(config: dict[str, Any], hc: dict[str, Any], ncpu: int) -> list[str]:
    """Everything dockerd checks before creating (image-independent part). As dockerd's
    translateWorkingDir, C{config}'s WorkingDir is replaced by its cleaned form."""
    translate_working_dir(config)
    if config.get("StopSignal"):
        rules.parse_signal(config["StopSignal"])
    if not isinstance(config.get("Env") or [], list):
        raise InvalidParameter("invalid Env: expected an array")
    for e in config.get("Env") or []:
        if not isinstance(e, str) or not e or e.startswith("="):
            raise InvalidParameter(f"invalid environment variable: {e}")
    validate_healthcheck(config.get("Healthcheck"))
    rules.validate_restart_policy(hc.get("RestartPolicy"), bool(hc.get("AutoRemove")))
    warnings = rules.validate_resources(hc, ncpu)
    for u in hc.get("Ulimits") or []:
        name = (u or {}).get("Name", "")
        if name not in ULIMIT_NAMES:
            raise InvalidParameter(f"invalid ulimit type: {name}")
        if (u.get("Soft") or 0) > (u.get("Hard") or 0):
            raise InvalidParameter(
                f"ulimit soft limit must be less than or equal to hard limit: {u.get('Soft')} > {u.get('Hard')}"
            )
    shm = hc.get("ShmSize") or 0
    if shm < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    for opt in hc.get("SecurityOpt") or []:
        parse_security_opt(opt)
    rules.validate_log_config(hc.get("LogConfig") or {})
    validate_file_names(config, hc)
    return warnings


def translate_working_dir(config: dict[str, Any]) -> None:
    """moby's translateWorkingDir (daemon/container.go), the first check of a create: a
    working directory must be absolute, and is kept cleaned (Go's filepath.Clean: no C{.},
    C{..}, doubled or trailing slash), so inspect shows C{/a/b} for C{/a/./b/}.

    @raise InvalidParameter: dockerd's text for a relative one.
    """
    wd = config.get("WorkingDir") or ""
    if not wd:
        return
    if not wd.startswith("/"):
        raise InvalidParameter(
            f"the working directory '{wd}' is invalid, it needs to be an absolute path"
        )
    config["WorkingDir"] = go_clean(wd)


def validate_file_names(config: dict[str, Any], hc: dict[str, Any]) -> None:
    """Names the daemon writes into the container's C{/etc/hosts}, C{/etc/hostname} and
    C{resolv.conf}: one line each, so no control characters (a newline would add a line of the
    caller's choosing) and no whitespace (it separates a line's fields). dockerd has no check of
    its own for most of them; C{ExtraHosts} get dockerd's texts.

    @raise InvalidParameter: the first bad name, quoted as Go quotes it.
    """
    for key in ("Hostname", "Domainname"):
        value = config.get(key) or ""
        if not isinstance(value, str) or not line_safe(value):
            raise InvalidParameter(f"invalid {key} {go_quote(str(value))}: {rules.NO_SPACES}")
    for h in hc.get("ExtraHosts") or []:
        rules.parse_extra_host(h)
    for key in ("Dns", "DnsSearch", "DnsOptions"):
        for value in hc.get(key) or []:
            if not isinstance(value, str) or not value or not line_safe(value):
                raise InvalidParameter(
                    f"invalid {key} entry {go_quote(str(value))}: {rules.NO_SPACES}"
                )


def parse_security_opt(opt: str) -> tuple[str, str]:
    """C{key=value} (or C{key:value}, or C{no-new-privileges}) -> (key, value).

    @raise InvalidParameter: malformed or unknown option.
    """
    if opt in ("no-new-privileges",):
        return ("no-new-privileges", "true")
    key, sep, value = opt.partition("=")
    if not sep:
        key, sep, value = opt.partition(":")
    if not sep:
        raise InvalidParameter(f'invalid --security-opt 1: "{opt}"')
    if key not in (
        "no-new-privileges",
        "seccomp",
        "apparmor",
        "label",
        "systempaths",
        "writable-cgroups",
    ):
        raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
    return key, value
