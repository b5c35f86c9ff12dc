"""How many worker-thread hops the volume API's writes take (issue 21): a plain volume's create
and removal are one hop each, on the DB thread (the directory work runs there, next to the
row's commit), and only a removal with content left to delete takes the io threads too. The
rules around the hop: the directory exists before the row, a failed directory leaves no row,
the row's deletion stands when the directory step fails after it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import PydError, SystemError_
from pyd.core.seams import InlineBlocking
from pyd.engine.events import EventService
from pyd.engine.volumes import VolumeService
from pyd.state import migrate
from pyd.state.db import Database, make_engine
from pyd.state.events import EventRepository
from pyd.state.volumes import VolumeRepository
from tests.unit.test_volumes_engine import FakeMountDriver

P = ParamSpec("P")
T = TypeVar("T")


class CountingBlocking(InlineBlocking):
    """Inline blocking that records the name of each function it runs (one hop each)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        self.calls.append(getattr(fn, "__name__", repr(fn)))
        return super().run(fn, *args, **kwargs)


class HeldBlocking(CountingBlocking):
    """Counting blocking whose C{remove_tree} calls wait until L{release} runs them."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[Deferred[Any], Callable[[], Any]]] = []

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        if getattr(fn, "__name__", "") != "remove_tree":
            return super().run(fn, *args, **kwargs)
        self.calls.append("remove_tree")
        d: Deferred[T] = Deferred()
        self.held.append((d, lambda: fn(*args, **kwargs)))
        return d

    def release(self) -> None:
        held, self.held = self.held, []
        for d, call in held:
            d.callback(call())


class VolumeHopTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-hops-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.db_hops = CountingBlocking()
        self.db = Database(make_engine(None), self.db_hops)
        self.db.run_sync(migrate.upgrade)
        self.addCleanup(self.db.close)
        clock = Clock()
        clock.advance(1_800_000_000)
        self.driver = FakeMountDriver(self.tmp)
        self.io_hops = HeldBlocking()
        self.driver._blocking = self.io_hops
        self.repo = VolumeRepository(self.db)
        self.svc = VolumeService(
            self.repo, self.driver, EventService(EventRepository(self.db), clock)
        )
        self.successResultOf(self.repo.all())  # the mirror: inspect reads no row
        self.db_hops.calls.clear()

    def hops(self) -> tuple[list[str], list[str]]:
        out = (list(self.db_hops.calls), list(self.io_hops.calls))
        self.db_hops.calls.clear()
        self.io_hops.calls.clear()
        return out

    def run_(self, coro: Any) -> Any:
        return self.successResultOf(Deferred.fromCoroutine(coro))

    def test_plain_create_and_remove_one_hop_each(self) -> None:
        vol = self.run_(self.svc.create("plain"))
        self.assertEqual(self.hops(), (["_write"], []))
        self.assertTrue(os.path.isdir(vol.mountpoint))
        self.assertEqual(vol.created, int(os.stat(self.driver.volume_dir("plain")).st_ctime))
        # answered without waiting for the empty directory's deletion (io threads, after)
        self.run_(self.svc.remove("plain"))
        self.assertEqual(self.hops(), (["_write_then"], ["remove_tree"]))
        (trash,) = os.listdir(self.driver.root)
        self.assertTrue(trash.startswith(".trash-plain-"))
        self.io_hops.release()
        self.assertEqual(sorted(os.listdir(self.driver.root)), [])
        self.assertEqual(self.successResultOf(self.repo.get("plain")), None)

    def test_remove_with_content_purges_on_io_threads(self) -> None:
        vol = self.run_(self.svc.create("full"))
        os.makedirs(os.path.join(vol.mountpoint, "a", "b"))
        with open(os.path.join(vol.mountpoint, "a", "b", "f"), "w") as f:
            f.write("x")
        os.symlink("/etc", os.path.join(vol.mountpoint, "etc"))
        self.hops()
        # the answer waits for the content's deletion
        d = Deferred.fromCoroutine(self.svc.remove("full"))
        self.assertNoResult(d)
        self.assertEqual(self.hops(), (["_write_then"], ["remove_tree"]))
        self.io_hops.release()
        self.successResultOf(d)
        self.assertEqual(sorted(os.listdir(self.driver.root)), [])
        self.assertTrue(os.path.isdir("/etc"))  # the link was removed, not followed

    def test_volume_with_options_keeps_io_hop(self) -> None:
        self.run_(self.svc.create("opts", options={"type": "tmpfs", "device": "tmpfs"}))
        db, io = self.hops()
        self.assertEqual(db, ["_write"])
        self.assertIn("make_now", io)
        self.assertTrue(os.path.isfile(os.path.join(self.driver.volume_dir("opts"), "opts.json")))

    def test_directory_failure_leaves_no_row(self) -> None:
        os.makedirs(self.driver.root)
        with open(self.driver.volume_dir("blocked"), "w"):
            pass  # a file where the volume's directory goes
        f = self.failureResultOf(Deferred.fromCoroutine(self.svc.create("blocked")), PydError)
        self.assertIsInstance(f.value, SystemError_)
        self.assertIn("create blocked: error while creating volume path", str(f.value))
        self.assertNotIn("Errno", str(f.value))
        self.assertEqual(self.successResultOf(self.repo.all()), [])

    def test_mounted_data_refused_after_row_deleted(self) -> None:
        """The directory step runs after the commit: its refusal is reported (without force)
        and the row stays deleted; the directory is left in place for the next start."""
        self.run_(self.svc.create("busy"))
        self.patch(
            __import__("pyd.drivers.volumes.local", fromlist=["is_mountpoint"]),
            "is_mountpoint",
            lambda path: True,
        )
        f = self.failureResultOf(Deferred.fromCoroutine(self.svc.remove("busy")), SystemError_)
        self.assertIn("still mounted", str(f.value))
        self.assertEqual(self.successResultOf(self.repo.get("busy")), None)
        self.assertTrue(os.path.isdir(self.driver.data_path("busy")))
        # with force, the same refusal is only logged
        self.run_(self.svc.create("busy2"))
        self.run_(self.svc.remove("busy2", force=True))
        self.assertEqual(self.successResultOf(self.repo.get("busy2")), None)
        self.flushLoggedErrors()
