"""BuildKit's Dockerfile frontend syntax on the classic API: the C{# syntax=} directive, the
automatic platform ARGs, C{FROM --platform}, and the options of C{RUN --mount/--network/--security}
(layer: engine).

Everything here is pure: it decides what a Dockerfile asks for and how BuildKit words a refusal.
L{pyd.engine.builder.mounts} prepares the mounts a RUN step gets, L{pyd.engine.builder.builder}
dispatches the steps.
"""

from __future__ import annotations

import json
import platform as _platform
import posixpath
import re
from collections.abc import Callable

import attrs

# `# syntax=` values that name the frontend this daemon has built in: docker/dockerfile (or
# -upstream) at 1, 1.x, 1.x.y, latest or labs, optionally -labs/-experimental, by tag or digest.
_BUILTIN_FRONTEND = re.compile(
    r"^(?:(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)/)?"
    r"docker/dockerfile(?:-upstream)?"
    r"(?::(?:latest|labs|master|1(?:\.\d+){0,2}(?:-labs|-experimental)?))?"
    r"(?:@sha256:[0-9a-f]{64})?$"
)

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_SHARING = ("shared", "private", "locked")
_MOUNT_KEYS = (
    "type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode",
    "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env",
)  # fmt: skip
NO_SESSION = (
    "the classic build API (POST /build) carries no BuildKit session, so there is no {what} "
    "to mount; add required=false to build without it"
)


class FrontendError(ValueError):
    """A BuildKit-syntax option this daemon refuses (the message is shown to the user)."""


def check_syntax(value: str) -> None:
    """Accept the built-in Dockerfile frontend named by C{# syntax=}; refuse any other.

    @raise FrontendError: another frontend image (the classic API cannot run one).
    """
    ref = value.split(" ", 1)[0].strip()
    if _BUILTIN_FRONTEND.match(ref):
        return
    raise FrontendError(
        f"unsupported Dockerfile frontend {ref!r} (# syntax=): this daemon builds with its "
        "built-in frontend only (docker/dockerfile:1, 1.x or labs); the classic build API "
        "cannot run a frontend image"
    )


# --- platforms ---------------------------------------------------------------------------------


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) of this host, as Go/OCI name them."""
    m = _platform.machine()
    arch, variant = {
        "x86_64": ("amd64", ""),
        "amd64": ("amd64", ""),
        "aarch64": ("arm64", ""),
        "arm64": ("arm64", ""),
        "armv7l": ("arm", "v7"),
        "armv6l": ("arm", "v6"),
        "i686": ("386", ""),
        "i386": ("386", ""),
    }.get(m, (m, ""))
    return "linux", arch, variant


def _format(os_: str, arch: str, variant: str) -> str:
    return f"{os_}/{arch}" + (f"/{variant}" if variant else "")


def platform_args() -> dict[str, str]:
    """BuildKit's automatic ARGs in the global scope: the target is the host (this daemon
    builds for its own platform only), so TARGET* and BUILD* carry the same values."""
    os_, arch, variant = host_platform()
    plat = _format(os_, arch, variant)
    out: dict[str, str] = {}
    for prefix in ("TARGET", "BUILD"):
        out[prefix + "PLATFORM"] = plat
        out[prefix + "OS"] = os_
        out[prefix + "ARCH"] = arch
        out[prefix + "VARIANT"] = variant
    return out


def check_platform(value: str) -> None:
    """C{FROM --platform=} / C{--platform}: only the host's platform can be built here.

    @raise FrontendError: any other platform.
    """
    os_, arch, variant = host_platform()
    parts = value.strip().lower().split("/")
    ok = (
        bool(parts)
        and parts[0] == os_
        and (len(parts) == 1 or parts[1] == arch)
        and (len(parts) < 3 or parts[2] == variant or (arch == "arm64" and parts[2] == "v8"))
        and len(parts) <= 3
    )
    if not ok:
        raise FrontendError(
            f"platform {value!r} is not supported: this daemon builds for its own platform "
            f"{_format(os_, arch, variant)} only (no emulation)"
        )


# --- RUN options -------------------------------------------------------------------------------


@attrs.frozen
class Mount:
    """One C{RUN --mount=...} as BuildKit reads it (after variable expansion)."""

    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str = ""
    readonly: bool = True
    id: str = ""
    sharing: str = "shared"
    required: bool = False
    size: int = 0
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    def key(self) -> str:
        """Its part of the step's cache key (every option that changes what the step sees)."""
        return json.dumps(attrs.asdict(self), sort_keys=True, separators=(",", ":"))


@attrs.frozen
class RunOptions:
    """A RUN's BuildKit flags: its mounts, network mode and security mode."""

    mounts: tuple[Mount, ...] = ()
    network: str = ""  # "" (the build's), "default", "none", "host"
    security: str = ""  # "" / "sandbox", "insecure"

    def key(self) -> str:
        """The part of the step's cache key these flags make ("" when none were given)."""
        if not self.mounts and not self.network and not self.security:
            return ""
        parts = [m.key() for m in self.mounts]
        return f"run:mounts=[{';'.join(parts)}],network={self.network},security={self.security}"


def _bool(key: str, value: str) -> bool:
    v = value.lower()
    if v in ("1", "t", "true"):
        return True
    if v in ("0", "f", "false"):
        return False
    raise FrontendError(f"invalid value for {key}: {value}")


def _csv_fields(value: str) -> list[str]:
    """Go's CSV reader on one record: fields split at commas, double quotes group."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    i = 0
    while i < len(value):
        c = value[i]
        if quoted:
            if c == '"':
                if value[i + 1 : i + 2] == '"':
                    cur.append('"')
                    i += 1
                else:
                    quoted = False
            else:
                cur.append(c)
        elif c == '"' and not cur:
            quoted = True
        elif c == ",":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    if quoted:
        raise FrontendError(f'failed to parse csv mounts: unterminated quote in "{value}"')
    out.append("".join(cur))
    return out


def _size(value: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*", value.lower())
    if not m:
        raise FrontendError(f"invalid value for size: {value}")
    return int(float(m.group(1)) * 1024 ** "_kmgtp".index(m.group(2) or "_"))


def parse_mount(value: str, expand: Callable[[str], str], workdir: str = "/") -> Mount:
    """One C{--mount=} value with BuildKit's rules and messages; C{expand} substitutes
    variables in each value (not in C{from}, as BuildKit).

    @raise FrontendError: a bad field.
    """
    fields: dict[str, object] = {"type": "bind"}
    ro_auto = True
    for field in _csv_fields(value):
        key, eq, val = field.partition("=")
        key = key.lower()
        mtype = str(fields["type"])
        if not eq:
            if key in ("readonly", "ro"):
                fields["readonly"], ro_auto = True, False
            elif key in ("readwrite", "rw"):
                fields["readonly"], ro_auto = False, False
            elif key == "required" and mtype in ("secret", "ssh"):
                fields["required"] = True
            elif key == "required":
                raise FrontendError(f"unexpected key '{key}' for mount type '{mtype}'")
            else:
                raise FrontendError(f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "from":
            if "$" in val[:-1]:
                raise FrontendError(
                    f"'{key}' doesn't support variable expansion, define alias stage instead"
                )
        else:
            val = expand(val)
        if key == "type":
            if val.lower() not in MOUNT_TYPES:
                raise FrontendError(f'unsupported mount type "{val}"')
            fields["type"] = val.lower()
        elif key == "from":
            fields["from_"] = val
        elif key in ("source", "src"):
            fields["source"] = val
        elif key in ("target", "dst", "destination"):
            fields["target"] = val
        elif key in ("readonly", "ro"):
            fields["readonly"], ro_auto = _bool(key, val), False
        elif key in ("readwrite", "rw"):
            fields["readonly"], ro_auto = not _bool(key, val), False
        elif key == "required":
            if mtype not in ("secret", "ssh"):
                raise FrontendError(f"unexpected key '{key}' for mount type '{mtype}'")
            fields["required"] = _bool(key, val)
        elif key == "size":
            if mtype != "tmpfs":
                raise FrontendError(f"unexpected key '{key}' for mount type '{mtype}'")
            fields["size"] = _size(val)
        elif key == "id":
            fields["id"] = val
        elif key == "sharing":
            if val.lower() not in _SHARING:
                raise FrontendError(f'unsupported sharing value "{val}"')
            fields["sharing"] = val.lower()
        elif key in ("mode", "uid", "gid"):
            try:
                n = int(val, 8 if key == "mode" else 10)
            except ValueError:
                raise FrontendError(f"invalid value {val} for {key}") from None
            if not 0 <= n < 2**32:
                raise FrontendError(f"invalid value {val} for {key}")
            fields[key] = n
        elif key == "env":
            fields["env"] = val
        else:
            raise FrontendError(f"unexpected key '{key}' in '{field}'")
    mtype = str(fields.pop("type"))
    env = fields.pop("env", None)
    if mtype not in ("secret", "ssh", "cache"):
        for k in ("mode", "uid", "gid"):
            if k in fields:
                raise FrontendError(f'{k} not allowed for "{mtype}" type mounts')
    if "sharing" in fields and mtype != "cache":
        raise FrontendError(f"invalid cache sharing set for {mtype} mount")
    if ro_auto:
        fields["readonly"] = mtype not in ("cache", "tmpfs")
    m = Mount(type=mtype, **fields)  # type: ignore[arg-type]  # fields is a dict[str, object] checked by the parser above
    if mtype == "secret":
        if m.from_:
            raise FrontendError("secret mount should not have a from")
        if not (m.source or m.target or m.id or env):
            raise FrontendError("invalid secret mount. one of source, target required")
        return m
    if mtype == "ssh":
        return m
    target = m.target
    if not target:
        raise FrontendError(f'invalid mount target "" for {mtype} mount: target is required')
    if not target.startswith("/"):
        target = posixpath.join("/", workdir or "/", target)
    target = posixpath.normpath(target)
    if target == "/":
        raise FrontendError(f'invalid mount target "{target}"')
    mid = m.id
    if mtype == "cache" and not mid:
        mid = posixpath.normpath(m.target)
    return attrs.evolve(m, target=target, id=mid)


def parse_run_options(
    flags: list[tuple[str, str]], expand: Callable[[str], str], workdir: str
) -> RunOptions:
    """A RUN's C{--mount}, C{--network}, C{--security} (C{--device} is refused here).

    @raise FrontendError: a bad or unsupported value.
    """
    mounts: list[Mount] = []
    network = security = ""
    for name, value in flags:
        if name == "mount":
            mounts.append(parse_mount(value, expand, workdir))
        elif name == "network":
            network = expand(value)
            if network not in ("default", "none", "host"):
                raise FrontendError(f"unsupported network mode {network!r}")
        elif name == "security":
            security = expand(value)
            if security not in ("sandbox", "insecure"):
                raise FrontendError(f"unsupported security mode {security!r}")
        else:
            raise FrontendError(
                f"RUN --{name} is not supported by this daemon (it needs BuildKit's device "
                "entitlements)"
            )
    seen: set[str] = set()
    for m in mounts:
        if m.type in ("secret", "ssh"):
            continue
        if m.target in seen:
            raise FrontendError(f"mount destination {m.target} is used more than once")
        seen.add(m.target)
    return RunOptions(tuple(mounts), network, security)


def git_url(src: str) -> bool:
    """Whether an ADD source names a git repository (BuildKit's detection, simplified)."""
    s = src.lower()
    return (
        s.startswith(("git://", "git@", "ssh://"))
        or (s.startswith(("http://", "https://")) and (s.split("#", 1)[0].endswith(".git")))
        or (s.startswith(("github.com/", "gitlab.com/", "bitbucket.org/")))
    )
