"""Which seccomp profile, devices and security options a container gets, and the create-time
refusals (pyd.engine.confinement, pyd.drivers.runtime.devices)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from twisted.trial import unittest

from pyd.core.errors import InvalidParameter
from pyd.drivers.runtime import devices as devmod
from pyd.drivers.runtime.seccomp import ProfileCache, read_default
from pyd.drivers.runtime.spec import DEFAULT_CAPS
from pyd.engine.confinement import Confinement, devices_of
from pyd.engine.spec import parse_create

CUSTOM = (
    '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}'
)


def spec(**hc: Any) -> Any:
    return parse_create({"Image": "busybox", "HostConfig": hc}, ncpu=2)


def conf(**kw: Any) -> Confinement:
    return Confinement(profiles=ProfileCache("amd64", (6, 1)), **kw)


class SeccompChoiceTests(unittest.TestCase):
    def test_choice(self) -> None:
        """Default: the daemon's profile; builtin: moby's; unconfined: none; JSON: that one;
        privileged: none unless a profile is named (dockerd's order)."""
        c = conf()
        default = c.seccomp_of(spec().security, DEFAULT_CAPS)
        assert default is not None
        self.assertEqual(default["defaultAction"], "SCMP_ACT_ERRNO")
        self.assertIsNone(c.seccomp_of(spec(SecurityOpt=["seccomp=unconfined"]).security, ()))
        self.assertIsNone(c.seccomp_of(spec(Privileged=True).security, DEFAULT_CAPS))
        custom = c.seccomp_of(spec(SecurityOpt=[f"seccomp={CUSTOM}"]).security, DEFAULT_CAPS)
        assert custom is not None
        self.assertEqual(custom["defaultAction"], "SCMP_ACT_ALLOW")
        priv = c.seccomp_of(
            spec(Privileged=True, SecurityOpt=[f"seccomp={CUSTOM}"]).security, DEFAULT_CAPS
        )
        self.assertEqual(priv, custom)
        off = conf(mode="unconfined", default_text="")
        self.assertIsNone(off.seccomp_of(spec().security, DEFAULT_CAPS))
        self.assertEqual(
            off.seccomp_of(spec(SecurityOpt=["seccomp=builtin"]).security, DEFAULT_CAPS),
            default,
        )

    def test_daemon_option(self) -> None:
        """seccomp-profile: builtin, unconfined, a file (read and decoded at start), or
        dockerd's start error."""
        self.assertEqual(Confinement.from_option("").mode, "builtin")
        self.assertEqual(Confinement.from_option("unconfined").default_text, "")
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write(CUSTOM)
            f.flush()
            c = Confinement.from_option(f.name)
            self.assertEqual((c.mode, c.default_text), (f.name, CUSTOM))
            self.assertIn(
                f"name=seccomp,profile={f.name}",
                c.security_options(cgroupns=False),
            )
        with self.assertRaises(ValueError) as cm:
            Confinement.from_option("/nonexistent/pyd-profile.json")
        self.assertIn(
            "opening seccomp profile (/nonexistent/pyd-profile.json) failed", str(cm.exception)
        )

    def test_security_options(self) -> None:
        self.assertEqual(
            conf(no_new_privileges=True).security_options(cgroupns=True),
            ["name=seccomp,profile=builtin", "name=cgroupns", "name=no-new-privileges"],
        )
        self.assertEqual(conf().security_options(False), ["name=seccomp,profile=builtin"])

    def test_no_new_privileges_default(self) -> None:
        on = conf(no_new_privileges=True)
        self.assertTrue(on.no_new_privileges_of(spec().security))
        self.assertFalse(
            on.no_new_privileges_of(spec(SecurityOpt=["no-new-privileges=false"]).security)
        )
        self.assertTrue(
            conf().no_new_privileges_of(spec(SecurityOpt=["no-new-privileges"]).security)
        )


class RefusalTests(unittest.TestCase):
    def refused(self, want: str, **hc: Any) -> None:
        with self.assertRaises(InvalidParameter) as cm:
            conf().check(spec(**hc))
        self.assertIn(want, str(cm.exception))

    def test_refusals(self) -> None:
        self.refused("Decoding seccomp profile failed", SecurityOpt=["seccomp={"])
        self.refused(
            "AppArmor is not enabled on this host", SecurityOpt=["apparmor=docker-default"]
        )
        self.refused("SELinux is not enabled", SecurityOpt=["label=level:s0"])
        self.refused(
            'invalid --security-opt 2: "no-new-privileges=maybe"',
            SecurityOpt=["no-new-privileges=maybe"],
        )
        self.refused("invalid device cgroup format 'c 1:3 rwx'", DeviceCgroupRules=["c 1:3 rwx"])
        self.refused(
            "invalid device mode: rwx",
            Devices=[
                {"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rwx"}
            ],
        )
        self.refused("invalid cgroup namespace mode: other", CgroupnsMode="other")
        self.refused(
            'could not select device driver "" with capabilities: [[gpu]]',
            DeviceRequests=[{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}],
        )

    def test_accepted(self) -> None:
        conf().check(
            spec(
                SecurityOpt=["apparmor=unconfined", "label=disable", "no-new-privileges:true",
                             "seccomp=unconfined", "writable-cgroups=true"],
                DeviceCgroupRules=["a *:* rwm", "c 1:3 r", "b 7:* m"],
                CgroupnsMode="private",
            )
        )  # fmt: skip


class DeviceTests(unittest.TestCase):
    def test_device_from_path(self) -> None:
        devs, rules = devmod.devices_from_path("/dev/null", "/dev/mynull", "rw")
        self.assertEqual(
            (devs[0]["path"], devs[0]["type"], devs[0]["major"], devs[0]["minor"]),
            ("/dev/mynull", "c", 1, 3),
        )
        self.assertEqual(
            rules, [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
        )

    def test_not_a_device(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "f")
            open(path, "w").close()
            for p, why in ((path, "not a device node"), (d, "not a device node"),
                           (os.path.join(d, "none"), "no such file or directory")):  # fmt: skip
                with self.assertRaises(devmod.DeviceError) as cm:
                    devmod.devices_from_path(p, "", "rwm")
                self.assertEqual(
                    str(cm.exception),
                    f'error gathering device information while adding custom device "{p}": {why}',
                )

    def test_cgroup_rules(self) -> None:
        self.assertEqual(
            devmod.cgroup_rule("a *:* rwm"), {"allow": True, "type": "a", "access": "rwm"}
        )
        self.assertEqual(
            devmod.cgroup_rule("c 10:237 r"),
            {"allow": True, "type": "c", "major": 10, "minor": 237, "access": "r"},
        )

    def test_privileged_gets_host_devices(self) -> None:
        devs, rules = devices_of(spec(Privileged=True))
        paths = {d["path"] for d in devs}
        self.assertTrue({"/dev/null", "/dev/zero"} <= paths)
        self.assertFalse(any(p.startswith(("/dev/pts/", "/dev/shm/")) for p in paths))
        self.assertNotIn("/dev/console", paths)
        self.assertEqual(rules, [])

    def test_devices_and_rules_of_a_spec(self) -> None:
        devs, rules = devices_of(
            spec(
                Devices=[
                    {
                        "PathOnHost": "/dev/null",
                        "PathInContainer": "/dev/x",
                        "CgroupPermissions": "rwm",
                    }
                ],
                DeviceCgroupRules=["c 10:237 r"],
            )
        )
        self.assertEqual([d["path"] for d in devs], ["/dev/x"])
        self.assertEqual(len(rules), 2)


class DefaultFileTests(unittest.TestCase):
    def test_builtin_is_the_vendored_file(self) -> None:
        self.assertEqual(conf().builtin_text, read_default())
