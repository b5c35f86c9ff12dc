"""What confines a container: its seccomp filter, devices and security options (layer: engine).

dockerd's rules for which seccomp profile a container gets (the daemon's default, C{builtin},
C{unconfined}, or the profile's JSON the CLI sends as C{seccomp=<json>}; a privileged container
runs unconfined unless it names a profile), which devices it sees (C{--device}, every host
device when privileged, C{--device-cgroup-rule}), and the refusals of what this host cannot
give (C{--gpus} without a GPU driver, AppArmor and SELinux labels where the kernel has none).
The translation of a profile is cached per bounding set (L{ProfileCache}), so a start pays
nothing for it after the first container of its kind.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

from pyd.core.errors import InvalidParameter
from pyd.drivers.runtime import devices as devmod
from pyd.drivers.runtime.seccomp import ProfileCache, ProfileError, read_default
from pyd.engine.spec.records import CreateSpec, Security

BUILTIN = "builtin"
UNCONFINED = "unconfined"


@attrs.frozen
class Confinement:
    """The daemon-wide defaults: its seccomp profile (C{mode} is what C{docker info} shows:
    C{builtin}, C{unconfined} or the file's path; C{default_text} the profile it names, ""
    when unconfined), C{--no-new-privileges}, and whether the kernel has AppArmor/SELinux."""

    mode: str = BUILTIN
    default_text: str = attrs.field(factory=read_default)
    builtin_text: str = attrs.field(factory=read_default)
    profiles: ProfileCache = attrs.field(factory=ProfileCache, eq=False)
    no_new_privileges: bool = False
    apparmor: bool = False
    selinux: bool = False

    @classmethod
    def from_option(
        cls, profile: str, no_new_privileges: bool = False, read: Any = None
    ) -> Confinement:
        """The daemon option C{seccomp-profile}: "" or C{builtin}, C{unconfined}, or a path
        (read now, with C{read(path) -> str}, and decoded: a bad file stops the start).

        @raise ValueError: dockerd's C{opening seccomp profile (path) failed} text, or the
            profile's decoding error.
        """
        builtin = read_default()
        kw: dict[str, Any] = {
            "builtin_text": builtin,
            "no_new_privileges": no_new_privileges,
            "apparmor": _enabled("/sys/module/apparmor/parameters/enabled"),
            "selinux": os.path.exists("/sys/fs/selinux/enforce"),
        }
        if profile in ("", BUILTIN):
            return cls(mode=BUILTIN, default_text=builtin, **kw)
        if profile == UNCONFINED:
            return cls(mode=UNCONFINED, default_text="", **kw)
        try:
            text = (read or _read)(profile)
        except OSError as e:
            raise ValueError(
                f"opening seccomp profile ({profile}) failed: {e.strerror or 'unreadable'}"
            ) from None
        conf = cls(mode=profile, default_text=text, **kw)
        conf.profiles.profile(text)
        return conf

    def security_options(self, cgroupns: bool) -> list[str]:
        """C{docker info}'s SecurityOptions, in dockerd's order."""
        out = ["name=apparmor"] if self.apparmor else []
        out.append(f"name=seccomp,profile={self.mode}")
        if self.selinux:
            out.append("name=selinux")
        if cgroupns:
            out.append("name=cgroupns")
        if self.no_new_privileges:
            out.append("name=no-new-privileges")
        return out

    def check(self, spec: CreateSpec) -> None:
        """The create-time refusals of confinement options (nothing is created).

        @raise InvalidParameter: a seccomp profile that does not decode, an AppArmor profile or
            SELinux label on a host without them, a device cgroup rule or device mode in a bad
            format, a device request no driver here can serve (C{--gpus}).
        """
        sec = spec.security
        if spec.namespaces.cgroupns not in ("", "host", "private"):
            raise InvalidParameter(f"invalid cgroup namespace mode: {spec.namespaces.cgroupns}")
        for key, value in sec.security_opt:
            if key == "no-new-privileges" and value.lower() not in _BOOLS:
                raise InvalidParameter(f'invalid --security-opt 2: "no-new-privileges={value}"')
            if key == "writable-cgroups" and value.lower() not in _BOOLS:
                raise InvalidParameter(f'invalid --security-opt 2: "writable-cgroups={value}"')
        seccomp = sec.seccomp
        if seccomp not in ("", BUILTIN, UNCONFINED):
            try:
                self.profiles.profile(seccomp)
            except ProfileError as e:
                raise InvalidParameter(str(e)) from None
        if sec.apparmor not in ("", UNCONFINED) and not self.apparmor:
            raise InvalidParameter(
                f'AppArmor is not enabled on this host: cannot apply the AppArmor profile "'
                f'{sec.apparmor}" (only apparmor=unconfined is accepted)'
            )
        for key, value in sec.security_opt:
            if key == "label" and value != "disable" and not self.selinux:
                raise InvalidParameter(
                    f'SELinux is not enabled on this host: cannot apply "label={value}" '
                    "(only label=disable is accepted)"
                )
        for d in spec.devices.devices:
            perms = d.cgroup_permissions or "rwm"
            if not perms or any(ch not in "rwm" for ch in perms) or len(perms) > 3:
                raise InvalidParameter(f"invalid device mode: {perms}")
        for rule in spec.devices.cgroup_rules:
            try:
                devmod.cgroup_rule(rule)
            except devmod.DeviceError as e:
                raise InvalidParameter(str(e)) from None
        for req in spec.devices.requests:
            caps = "[" + " ".join("[" + " ".join(c) + "]" for c in req.capabilities) + "]"
            # dockerd's text: no device driver (nvidia, cdi) is registered on this host
            raise InvalidParameter(
                f'could not select device driver "{req.driver}" with capabilities: {caps}'
            )

    def no_new_privileges_of(self, sec: Security) -> bool:
        """The container's C{no-new-privileges}: its own option, else the daemon's default."""
        if any(k == "no-new-privileges" for k, _ in sec.security_opt):
            return sec.no_new_privileges
        return self.no_new_privileges

    def seccomp_of(self, sec: Security, caps: tuple[str, ...]) -> dict[str, Any] | None:
        """The OCI seccomp section for a container with the bounding set C{caps} (None:
        unconfined), as dockerd chooses the profile."""
        opt = sec.seccomp
        if opt == UNCONFINED:
            return None
        if sec.privileged and opt in ("",):
            return None
        if opt == BUILTIN:
            text = self.builtin_text
        elif opt:
            text = opt
        else:
            text = self.default_text
        if not text:
            return None
        try:
            return self.profiles.section(text, caps)
        except ProfileError as e:  # checked at create; a stored one from an older pyd
            raise InvalidParameter(str(e)) from None

    def writable_cgroups(self, sec: Security) -> bool:
        """C{--security-opt writable-cgroups[=true]}: /sys/fs/cgroup mounted read-write."""
        return sec.option("writable-cgroups").lower() in ("true", "1", "t")


_BOOLS = ("1", "t", "true", "0", "f", "false")


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _enabled(path: str) -> bool:
    try:
        with open(path) as f:
            return f.read().strip().upper().startswith("Y")
    except OSError:
        return False


def devices_of(spec: CreateSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The device nodes and the extra device cgroup rules of a container (blocking: stats
    host device nodes; run in the io pool). Privileged: every host device.

    @raise InvalidParameter: a C{--device} that is not a device node.
    """
    devs: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    if spec.security.privileged:
        devs.extend(devmod.host_devices())
    for d in spec.devices.devices:
        try:
            more, more_rules = devmod.devices_from_path(
                d.path_on_host, d.path_in_container, d.cgroup_permissions or "rwm"
            )
        except devmod.DeviceError as e:
            raise InvalidParameter(str(e)) from None
        seen = {x["path"] for x in more}
        devs = [x for x in devs if x["path"] not in seen] + more
        rules.extend(more_rules)
    for rule in spec.devices.cgroup_rules:
        try:
            rules.append(devmod.cgroup_rule(rule))
        except devmod.DeviceError as e:
            raise InvalidParameter(str(e)) from None
    return devs, rules
