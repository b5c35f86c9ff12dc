"""FilterCache: which seccomp sections may reuse crun's compiled filter, and what it keeps."""

from __future__ import annotations

import base64
import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.drivers.runtime.bpfcache import ANNOTATION, FilterCache
from pyd.drivers.runtime.oci import OciRuntime

CRUN = OciRuntime("crun", "/usr/bin/crun", "/run/x/crun")
RUNC = OciRuntime("runc", "/usr/bin/runc", "/run/x/runc")


def spec(**section: object) -> dict[str, object]:
    return {"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO", **section}}}


class FilterCacheTests(SynchronousTestCase):
    def test_keys(self) -> None:
        """The same section has one key whatever its key order; another section, runtime
        binary, runc, flags, a listener or no section at all: none or another."""
        a = FilterCache.key(spec(syscalls=[{"names": ["read"]}], architectures=["X"]), CRUN)
        b = FilterCache.key({"linux": {"seccomp": {"architectures": ["X"], "syscalls": [
            {"names": ["read"]}], "defaultAction": "SCMP_ACT_ERRNO"}}}, CRUN)  # fmt: skip
        self.assertIsNotNone(a)
        self.assertEqual(a, b)
        self.assertNotEqual(a, FilterCache.key(spec(syscalls=[{"names": ["write"]}]), CRUN))
        other = OciRuntime("crun", "/opt/crun", "/run/x/crun")
        self.assertNotEqual(a, FilterCache.key(spec(syscalls=[{"names": ["read"]}]), other))
        self.assertIsNone(FilterCache.key(spec(), RUNC))
        self.assertIsNone(FilterCache.key(spec(flags=["SECCOMP_FILTER_FLAG_LOG"]), CRUN))
        self.assertIsNone(FilterCache.key(spec(listenerPath="/run/l.sock"), CRUN))
        self.assertIsNone(FilterCache.key({"linux": {}}, CRUN))
        for own in ("run.oci.seccomp_bpf_data", "run.oci.seccomp_fail_unknown_syscall"):
            self.assertIsNone(FilterCache.key({**spec(), "annotations": {own: "1"}}, CRUN))
        self.assertIsNotNone(FilterCache.key({**spec(), "annotations": {"org.x": "1"}}, CRUN))

    def test_with_filter_only_once_kept(self) -> None:
        cache = FilterCache()
        s = spec()
        key = cache.key(s, CRUN)
        self.assertIs(cache.with_filter(s, key), s)
        cache.keep(key, "QUJD")  # type: ignore[arg-type]
        out = cache.with_filter({**s, "annotations": {"a": "b"}}, key)
        self.assertEqual(out["annotations"], {"a": "b", ANNOTATION: "QUJD"})
        self.assertEqual(out["linux"], s["linux"])  # the section stays
        self.assertNotIn("annotations", s)  # the caller's spec is not changed

    def test_bounded(self) -> None:
        cache = FilterCache()
        keys = [f"k{i}" for i in range(20)]
        for k in keys:
            cache.keep(k, "AAAAAAAAAAA=")
        self.assertFalse(cache.known("k0"))
        self.assertTrue(cache.known("k19"))
        self.assertEqual(sum(cache.known(k) for k in keys), 16)

    def test_read_checks_the_file(self) -> None:
        root = tempfile.mkdtemp(prefix="pyd-bpf-")
        self.addCleanup(lambda: __import__("shutil").rmtree(root))
        rt = OciRuntime("crun", "/usr/bin/crun", root)
        os.makedirs(os.path.join(root, "c1"))
        os.makedirs(os.path.join(root, "c2"))
        with open(os.path.join(root, "c1", "seccomp.bpf"), "wb") as f:
            f.write(b"\x06\x00\x00\x00\x00\x00\xff\x7f")  # one instruction: RET ALLOW
        with open(os.path.join(root, "c2", "seccomp.bpf"), "wb") as f:
            f.write(b"\x06\x00\x00")  # not whole instructions
        self.assertEqual(
            FilterCache.read(rt, "c1"),
            base64.b64encode(b"\x06\x00\x00\x00\x00\x00\xff\x7f").decode(),
        )
        self.assertIsNone(FilterCache.read(rt, "c2"))
        self.assertIsNone(FilterCache.read(rt, "missing"))
        os.symlink(os.path.join(root, "c1", "seccomp.bpf"), os.path.join(root, "c2", "link"))
        os.rename(os.path.join(root, "c2", "link"), os.path.join(root, "c2", "seccomp.bpf"))
        self.assertIsNone(FilterCache.read(rt, "c2"))  # a symlink is not followed
