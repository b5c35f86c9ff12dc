"""moby's seccomp profile format to the OCI section: the vendored default profile, the rule
conditions (capabilities, architectures, minimum kernel), dockerd's refusals, the cache."""

from __future__ import annotations

import hashlib
import json

from twisted.trial import unittest

from pyd.drivers.runtime import seccomp as sc
from pyd.drivers.runtime.spec import ALL_CAPS, DEFAULT_CAPS


def _names(section: dict) -> set[str]:
    return {n for rule in section["syscalls"] for n in rule["names"]}


def _allowed(section: dict) -> set[str]:
    return {
        n
        for rule in section["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args")
        for n in rule["names"]
    }


class DefaultProfileTests(unittest.TestCase):
    def test_vendored_file_is_mobys(self) -> None:
        """The file is the one the module's docstring names (moby v28.2.2), unchanged."""
        with open(sc.DEFAULT_FILE, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), sc.DEFAULT_SHA256)

    def test_allow_list_with_capability_conditions(self) -> None:
        """Default-deny (EPERM); unshare/mount/setns only with CAP_SYS_ADMIN, ptrace with
        CAP_SYS_PTRACE; the x86_64 architectures from archMap."""
        text = sc.read_default()
        default = sc.translate(sc.parse_profile(text), DEFAULT_CAPS, "amd64", (6, 1))
        assert default is not None
        self.assertEqual(default["defaultAction"], "SCMP_ACT_ERRNO")
        self.assertEqual(default["defaultErrnoRet"], 1)
        self.assertEqual(
            default["architectures"], ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        )
        allowed = _allowed(default)
        self.assertIn("read", allowed)
        for call in ("unshare", "mount", "setns", "bpf", "reboot"):
            self.assertNotIn(call, allowed)
        admin = sc.translate(
            sc.parse_profile(text), (*DEFAULT_CAPS, "CAP_SYS_ADMIN"), "amd64", (6, 1)
        )
        assert admin is not None
        self.assertTrue({"unshare", "mount", "setns"} <= _allowed(admin))
        self.assertNotIn("reboot", _allowed(admin))
        every = sc.translate(sc.parse_profile(text), ALL_CAPS, "amd64", (6, 1))
        assert every is not None
        self.assertIn("reboot", _allowed(every))
        self.assertIn("ptrace", _allowed(every))

    def test_no_syscall_list_in_code(self) -> None:
        """pyd's code keeps no syscall names of its own (they come from the JSON)."""
        import inspect

        from pyd.drivers.runtime import spec

        for mod in (sc, spec):
            src = inspect.getsource(mod)
            for call in ('"unshare"', '"keyctl"', '"ptrace"'):
                self.assertNotIn(call, src)


class ConditionTests(unittest.TestCase):
    PROFILE = json.dumps(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
            ],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"name": "only_arm", "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
                {"names": ["not_amd"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
                {"names": ["new_k"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.8"}},
                {"names": ["old_k"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.8"}},
                {"names": ["adm"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["noadm"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            ],
        }
    )  # fmt: skip

    def names(self, caps: tuple[str, ...], arch: str, kernel: tuple[int, int]) -> set[str]:
        out = sc.translate(sc.parse_profile(self.PROFILE), caps, arch, kernel)
        assert out is not None
        return _names(out)

    def test_conditions(self) -> None:
        self.assertEqual(self.names((), "amd64", (6, 1)), {"read", "new_k", "noadm"})
        self.assertEqual(self.names((), "amd64", (5, 4)), {"read", "old_k", "noadm"})
        self.assertEqual(
            self.names(("CAP_SYS_ADMIN",), "arm64", (5, 8)),
            {"read", "only_arm", "not_amd", "new_k", "adm"},
        )

    def test_arch_map(self) -> None:
        out = sc.translate(sc.parse_profile(self.PROFILE), (), "arm64", (6, 1))
        assert out is not None
        self.assertEqual(out["architectures"], ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        self.assertNotIn("archMap", out)

    def test_refusals(self) -> None:
        """dockerd's texts for what it refuses."""
        cases = {
            "{": "Decoding seccomp profile failed",
            '{"architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "x"}],'
            ' "defaultAction": "SCMP_ACT_ALLOW"}': "both 'architectures' and 'archMap'",
            '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"],'
            ' "action": "SCMP_ACT_ALLOW"}]}': "both 'name' and 'names'",
            '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"],'
            ' "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "five"}}]}': "invalid kernel",
        }
        for text, want in cases.items():
            with self.assertRaises(sc.ProfileError) as cm:
                sc.parse_profile(text)
            self.assertIn(want, str(cm.exception))

    def test_empty_profile_is_unconfined(self) -> None:
        """No default action and no syscalls: seccomp off, as dockerd."""
        self.assertIsNone(sc.translate(sc.parse_profile("{}"), (), "amd64", (6, 1)))

    def test_kernel_and_arch_names(self) -> None:
        self.assertEqual(sc.kernel_version("6.1.0-18-amd64"), (6, 1))
        self.assertEqual(sc.native_arch("x86_64"), "amd64")
        self.assertEqual(sc.native_arch("aarch64"), "arm64")


class CacheTests(unittest.TestCase):
    def test_translated_once_per_capability_set(self) -> None:
        """A second container with the same bounding set gets the cached section (no decode, no
        translation); another set gets its own."""
        cache = sc.ProfileCache("amd64", (6, 1))
        text = sc.read_default()
        first = cache.section(text, DEFAULT_CAPS)
        calls = []
        real = sc.translate

        def counting(*a: object, **k: object) -> object:
            calls.append(1)
            return real(*a, **k)  # type: ignore[arg-type]  # a pass-through wrapper: the arguments are the wrapped call's

        self.patch(sc, "translate", counting)
        self.assertIs(cache.section(text, tuple(reversed(DEFAULT_CAPS))), first)
        self.assertEqual(calls, [])
        other = cache.section(text, (*DEFAULT_CAPS, "CAP_SYS_ADMIN"))
        self.assertEqual(calls, [1])
        self.assertIsNot(other, first)

    def test_bounded(self) -> None:
        cache = sc.ProfileCache("amd64", (6, 1), size=2)
        for i in range(5):
            cache.section(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "n": i}), ())
        self.assertEqual(len(cache._sections), 2)
        self.assertEqual(len(cache._profiles), 2)
