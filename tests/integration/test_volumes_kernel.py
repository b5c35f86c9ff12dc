"""The local volume driver against the real kernel (root): mounts, copy-up fidelity, scoping."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.seams import InlineBlocking
from pyd.drivers import inroot
from pyd.drivers.process import ProcessResult
from pyd.drivers.volumes.copy import copy_up, tree_size
from pyd.drivers.volumes.local import LocalVolumeDriver, VolumeDriverError, is_mountpoint

pytestmark = pytest.mark.integration


class BlockingRunner:
    """A ProcessRunner that really runs the program (synchronously; tests have no reactor)."""

    def run(self, argv: Sequence[str], **kw: Any) -> Deferred[ProcessResult]:
        r = subprocess.run(list(argv), capture_output=True, check=False)
        return succeed(ProcessResult(tuple(argv), r.returncode, r.stdout, r.stderr))


def _umount_all_under(path: str) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split(" ")[4] for line in f]
    for p in sorted((p for p in points if p.startswith(path + "/")), reverse=True):
        subprocess.run(["umount", "-l", p], check=False)


class LocalDriverMountTests(SynchronousTestCase):
    """type/device/o options become a real mount on _data, and come off again."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-vol-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.addCleanup(_umount_all_under, self.tmp)
        self.driver = LocalVolumeDriver(self.tmp, InlineBlocking(), BlockingRunner())

    def ok(self, d: Any) -> Any:
        if not isinstance(d, Deferred):
            d = Deferred.fromCoroutine(d)
        return self.successResultOf(d)

    def test_tmpfs_size_enforced(self) -> None:
        """A tmpfs volume with size=1m is mounted on _data; writing 2 MB fails with ENOSPC."""
        self.ok(self.driver.create("tv", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}))
        self.ok(self.driver.mount("tv", "tmpfs", "tmpfs", "size=1m"))
        path = self.driver.data_path("tv")
        self.assertTrue(self.ok(self.driver.is_mounted("tv")))
        with self.assertRaises(OSError) as cm, open(os.path.join(path, "big"), "wb") as f:
            for _ in range(32):
                f.write(b"\0" * 65536)
                f.flush()
        self.assertEqual(cm.exception.errno, errno.ENOSPC)
        # removal is refused while mounted: data would vanish under a running container
        self.failureResultOf(self.driver.remove("tv"), VolumeDriverError)
        self.ok(self.driver.unmount("tv"))
        self.assertFalse(is_mountpoint(path))
        self.ok(self.driver.unmount("tv"))  # idempotent
        self.ok(self.driver.remove("tv"))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "volumes", "tv")))

    def test_bind_option_volume(self) -> None:
        """type=none,o=bind,device=<dir> binds an existing host directory into the volume."""
        src = os.path.join(self.tmp, "host")
        os.mkdir(src)
        with open(os.path.join(src, "hello"), "w") as f:
            f.write("hi")
        self.ok(self.driver.create("bv", {"type": "none", "device": src, "o": "bind"}))
        self.ok(self.driver.mount("bv", "none", src, "bind"))
        with open(os.path.join(self.driver.data_path("bv"), "hello")) as f:
            self.assertEqual(f.read(), "hi")
        self.ok(self.driver.unmount("bv"))
        self.assertEqual(os.listdir(self.driver.data_path("bv")), [])

    def test_mount_failure_message(self) -> None:
        """A mount the kernel refuses fails with mount's stderr; passwords are masked."""
        self.ok(self.driver.create("bad", {"type": "nosuchfs", "device": "x"}))
        f = self.failureResultOf(
            Deferred.fromCoroutine(self.driver.mount("bad", "nosuchfs", "x", "password=s3cret")),
            VolumeDriverError,
        )
        self.assertIn("failed to mount local volume", str(f.value))
        self.assertNotIn("s3cret", str(f.value))


class CopyUpTests(SynchronousTestCase):
    """copy_tree keeps owners, modes, times, xattrs, links, devices (as dockerd's CopyDir)."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-copy-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.src = os.path.join(self.tmp, "src")
        self.dst = os.path.join(self.tmp, "dst")
        os.mkdir(self.dst)
        s = self.src
        os.mkdir(s, 0o750)
        os.chown(s, 1000, 1001)
        os.mkdir(os.path.join(s, "sticky"))
        os.chmod(os.path.join(s, "sticky"), 0o1777)
        p = os.path.join(s, "suid")
        with open(p, "wb") as f:
            f.write(b"#!/bin/sh\n" * 1000)
        os.chown(p, 0, 5)
        os.chmod(p, 0o4755)
        os.setxattr(p, "user.note", b"kept")
        os.setxattr(
            p, "security.capability", bytes.fromhex("0100000200200000000000000000000000000000")
        )
        os.link(p, os.path.join(s, "hard"))
        os.symlink("/etc/passwd", os.path.join(s, "abs-link"))
        os.lchown(os.path.join(s, "abs-link"), 7, 7)
        os.mknod(os.path.join(s, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mkfifo(os.path.join(s, "fifo"), 0o640)
        os.makedirs(os.path.join(s, "a", "b"))
        with open(os.path.join(s, "a", "b", "f"), "w") as f:
            f.write("deep")
        os.chown(os.path.join(s, "a", "b", "f"), 33, 33)
        os.utime(os.path.join(s, "a", "b", "f"), ns=(1_000_000_000, 2_000_000_000))

    def test_fidelity(self) -> None:
        """Every property survives the copy; the top directory takes the source's owner/mode."""
        with inroot.InRoot(self.src) as src:
            copy_up(src, "/", self.dst)
        d = self.dst
        top = os.lstat(d)
        self.assertEqual((top.st_uid, top.st_gid, stat.S_IMODE(top.st_mode)), (1000, 1001, 0o750))
        self.assertEqual(stat.S_IMODE(os.lstat(os.path.join(d, "sticky")).st_mode), 0o1777)
        st = os.lstat(os.path.join(d, "suid"))
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (0, 5, 0o4755))
        self.assertEqual(os.getxattr(os.path.join(d, "suid"), "user.note"), b"kept")
        self.assertEqual(
            os.getxattr(os.path.join(d, "suid"), "security.capability"),
            bytes.fromhex("0100000200200000000000000000000000000000"),
        )
        self.assertEqual(os.lstat(os.path.join(d, "hard")).st_ino, st.st_ino)
        self.assertEqual(os.readlink(os.path.join(d, "abs-link")), "/etc/passwd")
        self.assertEqual(os.lstat(os.path.join(d, "abs-link")).st_uid, 7)
        nul = os.lstat(os.path.join(d, "null"))
        self.assertTrue(stat.S_ISCHR(nul.st_mode))
        self.assertEqual((os.major(nul.st_rdev), os.minor(nul.st_rdev)), (1, 3))
        self.assertTrue(stat.S_ISFIFO(os.lstat(os.path.join(d, "fifo")).st_mode))
        f = os.lstat(os.path.join(d, "a", "b", "f"))
        self.assertEqual((f.st_uid, f.st_mtime_ns), (33, 2_000_000_000))
        with open(os.path.join(d, "a", "b", "f")) as fh:
            self.assertEqual(fh.read(), "deep")
        self.assertEqual(tree_size(d), tree_size(self.src))

    def test_populate_only_empty(self) -> None:
        """The driver's populate copies into an empty volume only, through scoped symlinks."""
        driver = LocalVolumeDriver(self.tmp, InlineBlocking(), BlockingRunner())
        rootfs = os.path.join(self.tmp, "rootfs")
        os.makedirs(os.path.join(rootfs, "srv"))
        os.symlink("../../../../src", os.path.join(rootfs, "srv", "data"))
        target = os.path.join(self.tmp, "t")
        os.mkdir(target)
        # the symlink climbs out of the rootfs: it resolves to <rootfs>/src, which is missing
        self.assertFalse(self.successResultOf(driver.populate(rootfs, "/srv/data", target)))
        os.mkdir(os.path.join(rootfs, "src"))
        with inroot.InRoot(self.src) as src:
            copy_up(src, "/", os.path.join(rootfs, "src"))
        self.assertTrue(self.successResultOf(driver.populate(rootfs, "/srv/data", target)))
        self.assertTrue(os.path.exists(os.path.join(target, "a", "b", "f")))
        self.assertFalse(self.successResultOf(driver.populate(rootfs, "/srv/data", target)))
