"""OCI runtimes as dockerd configures them: the C{runtimes} key (C{--add-runtime NAME=PATH}) and
C{default-runtime} (layer: config).

pyd registers the runtimes it finds installed under their stock names (L{STOCK_RUNTIMES}: crun,
and Debian's runc also as containerd's C{io.containerd.runc.v2}, as dockerd lists it); daemon.json
adds more by path, with C{runtimeArgs} given to the binary before every command. What dockerd
refuses is refused with its text (moby v28.5.2 daemon/runtime_unix.go C{setupRuntimes},
opts/runtime.go C{RuntimeOpt.Set}); what only containerd can run (a C{runtimeType} shim, shim
C{options}) is refused naming why.
"""

from __future__ import annotations

from typing import Any

from pyd.config.base import ConfigError

# name -> binary (looked up on PATH at start); "runc" is dockerd's stock name and reserved.
STOCK_RUNTIMES: dict[str, str] = {
    "crun": "crun",
    "runc": "runc",
    "io.containerd.runc.v2": "runc",
}
RESERVED = "runc"
# pyd sets the state root of each runtime itself (its own directory under the exec root).
_OWN_ARGS = ("--root",)


def runtimes(v: Any, key: str) -> dict[str, dict[str, Any]]:
    """The C{runtimes} object, or the C{--add-runtime NAME=PATH} flag values.

    @return: C{{name: {"path": str, "runtimeArgs": [str, ...]}}}.
    @raise ConfigError: dockerd's texts for a reserved, duplicate or malformed runtime; pyd's
        for what only containerd could run.
    """
    if isinstance(v, list | tuple):
        return _from_flags(v)
    if not isinstance(v, dict):
        raise ConfigError(f"invalid value for {key}: expected an object, got {v!r}")
    if RESERVED in v:
        raise ConfigError(f"runtime name '{RESERVED}' is reserved")
    return {str(name): _entry(str(name), rt) for name, rt in v.items()}


def _from_flags(values: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for val in values:
        k, sep, path = str(val).partition("=")
        k, path = k.strip().lower(), path.strip()
        if not sep or not k or not path:
            raise ConfigError(f"invalid runtime argument: {val}")
        if k == RESERVED:
            raise ConfigError(f"runtime name '{RESERVED}' is reserved")
        if k in out:
            raise ConfigError(f"runtime '{k}' was already defined")
        out[k] = {"path": path, "runtimeArgs": []}
    return out


def _entry(name: str, rt: Any) -> dict[str, Any]:
    if not isinstance(rt, dict):
        raise ConfigError(f"runtime {name}: expected an object with a path")
    unknown = sorted(k for k in rt if k not in ("path", "runtimeArgs", "runtimeType", "options"))
    if unknown:
        raise ConfigError(f"runtime {name}: unknown key(s) {', '.join(unknown)}")
    path, rtype = rt.get("path") or "", rt.get("runtimeType") or ""
    args = rt.get("runtimeArgs") or []
    if not isinstance(path, str) or not isinstance(rtype, str):
        raise ConfigError(f"runtime {name}: path and runtimeType must be strings")
    if not path and not rtype:
        raise ConfigError(f"runtime {name}: either a runtimeType or a path must be configured")
    if path and rtype:
        raise ConfigError(
            f"runtime {name}: cannot configure both path and runtimeType for the same runtime"
        )
    if rtype:
        raise ConfigError(
            f"runtime {name}: runtimeType {rtype!r} names a containerd shim, which pyd cannot "
            "run (pyd runs OCI runtimes itself, through conmon): give the path of an OCI "
            "runtime binary instead"
        )
    if rt.get("options"):
        raise ConfigError(f"runtime {name}: options cannot be used with a path runtime")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"runtime {name}: runtimeArgs must be a list of strings")
    for a in args:
        if a.split("=", 1)[0] in _OWN_ARGS:
            raise ConfigError(
                f"runtime {name}: runtimeArgs may not set {a.split('=', 1)[0]}: pyd gives each "
                "runtime its own state directory under the exec root"
            )
    return {"path": path, "runtimeArgs": list(args)}


def check_default(default: str, configured: dict[str, Any]) -> None:
    """dockerd's start-up check of C{default-runtime}.

    @raise ConfigError: C{specified default runtime 'X' does not exist}.
    """
    if default and default not in STOCK_RUNTIMES and default not in configured:
        raise ConfigError(f"specified default runtime '{default}' does not exist")


def table(configured: dict[str, Any]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every runtime name -> (path as configured, runtimeArgs): the stock ones, then
    daemon.json's (which may replace a stock one, e.g. crun at another path)."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {n: (p, ()) for n, p in STOCK_RUNTIMES.items()}
    for name, rt in configured.items():
        out[name] = (rt["path"], tuple(rt.get("runtimeArgs") or ()))
    return out
