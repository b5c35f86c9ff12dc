"""Seccomp profiles in moby's format, turned into the OCI C{linux.seccomp} section (layer: drivers).

The default profile is moby's own, kept as data next to this module: C{seccomp_default.json} is
C{profiles/seccomp/default.json} of moby v28.2.2 (the engine version pyd reports; commit
45873be4ae3f5488c9498b3d9f17deaddaf609f4, Apache-2.0), byte for byte; C{DEFAULT_SHA256} pins it
(tests/unit/test_seccomp.py checks it). pyd's code holds no syscall list of its own.

A profile in moby's format is an allow-list whose rules are kept or dropped by conditions:
C{archMap} picks the architectures of this machine, and each rule's C{includes}/C{excludes}
name architectures, capabilities (of the container's bounding set) and a minimum kernel. The
translation of one profile for one capability set is the same for every container, so
L{ProfileCache} keeps it: a C{docker run --rm} does not rebuild it.
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import attrs

DEFAULT_FILE = os.path.join(os.path.dirname(__file__), "seccomp_default.json")
DEFAULT_SHA256 = "01536f1d1df938ae611eba20d6349e0de7a99b6ecdee1549427a0b01b8301e28"

# uname's machine -> the name moby's profiles use for it in includes/excludes "arches".
_MACHINE_TO_NATIVE = {
    "x86_64": "amd64",
    "i686": "x86",
    "i386": "x86",
    "aarch64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64": "mips64",
}
# The profile's arch name -> the OCI architecture of the archMap entry it selects.
_NATIVE_TO_OCI = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
    "mipsle": "SCMP_ARCH_MIPSEL",
    "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "riscv64": "SCMP_ARCH_RISCV64",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
}
# Fields of the OCI section a profile may carry through unchanged.
_PASS_THROUGH = ("defaultErrnoRet", "listenerPath", "listenerMetadata", "flags")
_SYSCALL_FIELDS = ("names", "action", "errnoRet", "args")


class ProfileError(ValueError):
    """A profile that does not decode or breaks the format's rules (dockerd's texts)."""


def native_arch(machine: str | None = None) -> str:
    """This machine's architecture as moby's profiles name it (C{amd64}, C{arm64}...)."""
    m = machine or platform.machine()
    return _MACHINE_TO_NATIVE.get(m, m)


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of the running kernel (C{6.1.0-18-amd64} -> (6, 1))."""
    m = re.match(r"(\d+)\.(\d+)", release or platform.release())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _min_kernel(value: Any) -> tuple[int, int] | None:
    if value in (None, ""):
        return None
    m = re.fullmatch(r"(\d+)\.(\d+)", str(value))
    if not m:
        raise ProfileError(f"Decoding seccomp profile failed: invalid kernel version: {value}")
    return int(m.group(1)), int(m.group(2))


@attrs.frozen
class _Filter:
    caps: frozenset[str] = frozenset()
    arches: frozenset[str] = frozenset()
    min_kernel: tuple[int, int] | None = None


@attrs.frozen
class _Rule:
    syscall: dict[str, Any] = attrs.field(eq=False)
    includes: _Filter = _Filter()
    excludes: _Filter = _Filter()


@attrs.frozen
class Profile:
    """A decoded profile: its top-level OCI fields, its archMap and its conditional rules."""

    top: dict[str, Any] = attrs.field(eq=False)
    arch_map: tuple[tuple[str, tuple[str, ...]], ...]
    rules: tuple[_Rule, ...]


def _filter(value: Any) -> _Filter:
    if value is None:
        return _Filter()
    if not isinstance(value, dict):
        raise ProfileError("Decoding seccomp profile failed: includes/excludes must be objects")
    caps = value.get("caps") or []
    arches = value.get("arches") or []
    if not all(isinstance(x, str) for x in [*caps, *arches]):
        raise ProfileError("Decoding seccomp profile failed: caps and arches must be strings")
    return _Filter(frozenset(caps), frozenset(arches), _min_kernel(value.get("minKernel")))


def parse_profile(text: str) -> Profile:
    """Decode a profile (moby's format, or a plain OCI seccomp section).

    @raise ProfileError: with dockerd's texts for what dockerd refuses.
    """
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise ProfileError(f"Decoding seccomp profile failed: {e}") from None
    if not isinstance(raw, dict):
        raise ProfileError("Decoding seccomp profile failed: a profile is a JSON object")
    if raw.get("architectures") and raw.get("archMap"):
        raise ProfileError(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use "
            "either 'architectures' or 'archMap'"
        )
    top: dict[str, Any] = {}
    if raw.get("defaultAction"):
        top["defaultAction"] = str(raw["defaultAction"])
    for key in _PASS_THROUGH:
        if raw.get(key) not in (None, "", [], {}):
            top[key] = raw[key]
    if raw.get("architectures"):
        top["architectures"] = [str(a) for a in raw["architectures"]]
    arch_map = []
    for entry in raw.get("archMap") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("architecture"), str):
            raise ProfileError("Decoding seccomp profile failed: invalid archMap entry")
        subs = tuple(str(s) for s in entry.get("subArchitectures") or ())
        arch_map.append((entry["architecture"], subs))
    rules = []
    for call in raw.get("syscalls") or []:
        if not isinstance(call, dict):
            raise ProfileError("Decoding seccomp profile failed: a syscall rule is an object")
        names = call.get("names") or []
        if call.get("name"):
            if names:
                raise ProfileError(
                    "both 'name' and 'names' are specified in the seccomp profile, use either "
                    "'name' or 'names'"
                )
            names = [call["name"]]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ProfileError("Decoding seccomp profile failed: syscall names must be strings")
        syscall = {k: call[k] for k in _SYSCALL_FIELDS if call.get(k) not in (None, [], "")}
        syscall["names"] = list(names)
        if "action" not in syscall:
            raise ProfileError("Decoding seccomp profile failed: a syscall rule needs an action")
        rules.append(_Rule(syscall, _filter(call.get("includes")), _filter(call.get("excludes"))))
    if "defaultAction" not in top and not rules:
        # dockerd: no default action and no syscalls means seccomp is off for the container
        return Profile({}, (), ())
    return Profile(top, tuple(arch_map), tuple(rules))


def _kept(rule: _Rule, arch: str, caps: frozenset[str], kernel: tuple[int, int]) -> bool:
    ex, inc = rule.excludes, rule.includes
    if arch in ex.arches or caps & ex.caps:
        return False
    if ex.min_kernel is not None and kernel >= ex.min_kernel:
        return False
    if inc.arches and arch not in inc.arches:
        return False
    if not inc.caps <= caps:
        return False
    return inc.min_kernel is None or kernel >= inc.min_kernel


def translate(
    profile: Profile, caps: Sequence[str], arch: str, kernel: tuple[int, int]
) -> dict[str, Any] | None:
    """The OCI C{linux.seccomp} section of C{profile} for a container whose bounding set is
    C{caps}, on C{arch} (moby's name) with C{kernel}; None when the profile turns seccomp off."""
    if not profile.top and not profile.rules:
        return None
    out: dict[str, Any] = dict(profile.top)
    oci_arch = _NATIVE_TO_OCI.get(arch)
    for main, subs in profile.arch_map:
        if main == oci_arch:
            out["architectures"] = [main, *subs]
            break
    capset = frozenset(caps)
    out["syscalls"] = [dict(r.syscall) for r in profile.rules if _kept(r, arch, capset, kernel)]
    return out


class ProfileCache:
    """Decoded profiles and their translations, per capability set: a profile's text is decoded
    once and translated once per bounding set (bounded, least recently used goes first)."""

    def __init__(
        self, arch: str | None = None, kernel: tuple[int, int] | None = None, size: int = 64
    ) -> None:
        self.arch = arch or native_arch()
        self.kernel = kernel or kernel_version()
        self._size = size
        self._profiles: OrderedDict[str, Profile] = OrderedDict()
        self._sections: OrderedDict[tuple[str, frozenset[str]], dict[str, Any] | None] = (
            OrderedDict()
        )

    def profile(self, text: str) -> Profile:
        """The decoded profile of C{text}.

        @raise ProfileError: it does not decode.
        """
        p = self._profiles.get(text)
        if p is None:
            p = parse_profile(text)
            self._remember(self._profiles, text, p)
        return p

    def section(self, text: str, caps: Sequence[str]) -> dict[str, Any] | None:
        """The OCI section of the profile C{text} for C{caps}, shared between the containers
        that ask for it: callers serialise it and never change it.

        @raise ProfileError: the profile does not decode.
        """
        key = (text, frozenset(caps))
        if key in self._sections:
            self._sections.move_to_end(key)
            return self._sections[key]
        sec = translate(self.profile(text), caps, self.arch, self.kernel)
        self._remember(self._sections, key, sec)
        return sec

    def _remember(self, table: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        table[key] = value
        while len(table) > self._size:
            table.popitem(last=False)


def read_default() -> str:
    """The text of moby's default profile shipped with pyd."""
    with open(DEFAULT_FILE, encoding="utf-8") as f:
        return f.read()
