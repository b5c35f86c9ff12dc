"""C{--change} instructions for commit and import (layer: engine).

dockerd accepts a subset of Dockerfile instructions there: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL (and HEALTHCHECK, SHELL). Each one edits the image's
C{config} section.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from typing import Any

from pyd.core.errors import InvalidParameter

ALLOWED = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "USER",
    "VOLUME",
    "WORKDIR",
    "STOPSIGNAL",
    "SHELL",
)


def _json_or_shell(rest: str, shell: list[str]) -> list[str]:
    rest = rest.strip()
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return [*shell, rest]


def _pairs(rest: str, what: str) -> list[tuple[str, str]]:
    words = shlex.split(rest, posix=True)
    if not words:
        raise InvalidParameter(f"{what} requires at least one argument")
    if "=" not in words[0]:
        # legacy form: NAME value with spaces
        parts = rest.strip().split(None, 1)
        return [(parts[0], parts[1] if len(parts) > 1 else "")]
    out = []
    for w in words:
        k, sep, v = w.partition("=")
        if not sep or not k:
            raise InvalidParameter(f"{what} names can not be blank")
        out.append((k, v))
    return out


def apply_changes(config: dict[str, Any], changes: Iterable[str]) -> dict[str, Any]:
    """Apply dockerd's C{--change} instructions to an image C{config} (returns a copy).

    @raise InvalidParameter: an unknown or malformed instruction (dockerd's text).
    """
    cfg = dict(config)
    for raw in changes:
        for raw_line in raw.splitlines():
            line = raw_line.strip()
            if not line:
                continue
            word, _, rest = line.partition(" ")
            instr = word.upper()
            if instr not in ALLOWED:
                # dockerd's parser lower-cases the instruction before naming it
                raise InvalidParameter(f"{word.lower()} is not a valid change command")
            shell = list(cfg.get("Shell") or ["/bin/sh", "-c"])
            if instr == "CMD":
                cfg["Cmd"] = _json_or_shell(rest, shell)
            elif instr == "ENTRYPOINT":
                cfg["Entrypoint"] = _json_or_shell(rest, shell)
                if "Cmd" in cfg and not rest.strip().startswith("["):
                    cfg["Cmd"] = None
            elif instr == "ENV":
                env = list(cfg.get("Env") or [])
                for k, v in _pairs(rest, "ENV"):
                    env = [e for e in env if e.split("=", 1)[0] != k]
                    env.append(f"{k}={v}")
                cfg["Env"] = env
            elif instr == "LABEL":
                labels = dict(cfg.get("Labels") or {})
                for k, v in _pairs(rest, "LABEL"):
                    labels[k] = v
                cfg["Labels"] = labels
            elif instr == "EXPOSE":
                ports = dict(cfg.get("ExposedPorts") or {})
                for port in rest.split():
                    ports[(port if "/" in port else port + "/tcp").lower()] = {}
                cfg["ExposedPorts"] = ports
            elif instr == "VOLUME":
                vols = dict(cfg.get("Volumes") or {})
                for v in _json_or_shell(rest, []) if rest.strip().startswith("[") else rest.split():
                    vols[v] = {}
                cfg["Volumes"] = vols
            elif instr == "USER":
                cfg["User"] = rest.strip()
            elif instr == "WORKDIR":
                cfg["WorkingDir"] = rest.strip()
            elif instr == "STOPSIGNAL":
                cfg["StopSignal"] = rest.strip()
            elif instr == "ONBUILD":
                cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), rest.strip()]
            elif instr == "SHELL":
                value = _json_or_shell(rest, [])
                if not rest.strip().startswith("["):
                    raise InvalidParameter("SHELL requires the arguments to be in JSON form")
                cfg["Shell"] = value
    return cfg
