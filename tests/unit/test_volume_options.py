"""Local volume mount options never reach mount(8) as its own options (issue 12, escape 5)."""

from __future__ import annotations

import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import InvalidParameter
from pyd.drivers.volumes.local import VolumeDriverError, mount_options_error
from tests.helpers.sync import run_sync
from tests.unit.test_volumes_engine import make_service


class MountOptionsErrorTests(SynchronousTestCase):
    """The pure check of type/device/o."""

    def test_plain_options_pass(self) -> None:
        """What dockerd's documentation shows passes: tmpfs, bind, nfs."""
        for fstype, device, o in (
            ("tmpfs", "tmpfs", "size=100m,uid=1000"),
            ("none", "/srv/data", "bind"),
            ("nfs", ":/export/x", "addr=10.0.0.1,rw,nfsvers=4"),
            ("btrfs", "/dev/sdb1", ""),
            ("fuse.sshfs", "u@h:/p", "ro"),
            ("", "", ""),
        ):
            self.assertEqual(mount_options_error(fstype, device, o), "", (fstype, device, o))

    def test_leading_dash_refused(self) -> None:
        """A value mount(8) would read as its own option is refused, in every field."""
        for args in (
            ("tmpfs", "-T/tmp/fstab", ""),
            ("tmpfs", "--fstab=/tmp/x", ""),
            ("-T/x", "tmpfs", ""),
            ("tmpfs", "tmpfs", "-T/x"),
            ("tmpfs", "tmpfs", "size=1m,-T/x"),
            ("tmpfs", "tmpfs", "size=1m,,x"),
        ):
            self.assertNotEqual(mount_options_error(*args), "", args)

    def test_host_acting_options_refused(self) -> None:
        """remount/move, X-mount.*, helper=, loop and friends act on the host: refused."""
        for o in (
            "remount",
            "remount,ro",
            "size=1m,move",
            "X-mount.mkdir",
            "x-mount.owner=0",
            "X-mount.mode=0777",
            "helper=x",
            "uhelper=x",
            "loop",
            "loop=/dev/loop0",
            "offset=4",
            "users",
            "owner",
        ):
            self.assertNotEqual(mount_options_error("tmpfs", "tmpfs", o), "", o)

    def test_type_and_device_shapes(self) -> None:
        """A type is a plain name (mount(8) runs /sbin/mount.TYPE); a bind needs an absolute
        device (a relative one is relative to the daemon's directory); no control characters."""
        for args in (
            ("../../tmp/x", "tmpfs", ""),
            ("tm/pfs", "tmpfs", ""),
            ("tmpfs,bind", "tmpfs", ""),
            ("tmpfs", "etc", "bind"),
            ("none", "etc", "rbind,ro"),
            ("tmpfs", "tmp\nfs", ""),
            ("tmpfs", "tmpfs", "size=1m\n"),
        ):
            self.assertNotEqual(mount_options_error(*args), "", args)


class VolumeCreateOptionsTests(SynchronousTestCase):
    """The volume service refuses such options at create with a 400, and the driver refuses to
    mount a stored volume that has them."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-vol-opt-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.svc, self.driver, _db, _events = make_service(self.tmp)

    def test_create_refused(self) -> None:
        """docker volume create --opt type=tmpfs --opt device=-T/x: 400, nothing created."""
        e = self.assertRaises(
            InvalidParameter,
            run_sync,
            self.svc.create("v1", options={"type": "tmpfs", "device": "-T/etc/x"}),
        )
        self.assertEqual(str(e), "create v1: invalid device '-T/etc/x': must not start with '-'")
        e = self.assertRaises(
            InvalidParameter,
            run_sync,
            self.svc.create("v2", options={"type": "tmpfs", "device": "t", "o": "remount"}),
        )
        self.assertIn("'remount' is not allowed", str(e))
        self.assertEqual(run_sync(self.svc.list_volumes()), [])

    def test_driver_refuses_stored_options(self) -> None:
        """A volume stored with such options (before this check) is never mounted."""
        self.assertRaises(
            VolumeDriverError, run_sync, self.driver.mount("v", "tmpfs", "-T/etc/x", "")
        )
        self.assertEqual(self.driver.runner.calls, [])
        run_sync(self.driver.mount("v", "tmpfs", "tmpfs", "size=1m"))
        self.assertEqual(self.driver.runner.calls[0][-3], "--")
