"""Where a build's context is unpacked (pyd.engine.builder.scratch): a small plain tar in a
regular file goes to the daemon's directory in memory, anything else to the build's scratch
directory on disk; both are removed after the build, leftovers at start and by prune."""

from __future__ import annotations

import errno
import gzip
import io
import os
import tempfile
from typing import Any
from unittest import mock

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import InvalidParameter
from pyd.core.seams import InlineBlocking
from pyd.engine.builder import fs, scratch
from pyd.engine.builder.builder import BuildOptions, BuildService
from tests.fakes.build import FakeBuildContainers, FakeBuildImages, FakeProgress
from tests.helpers.sync import run_sync
from tests.unit.builder.helpers import make_tar


class ScratchTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-scratch-")
        self.addCleanup(fs.remove_tree, self.tmp)
        self.mem = os.path.join(self.tmp, "mem")
        self.work = os.path.join(self.tmp, "work")
        os.makedirs(self.work)

    def _file(self, data: bytes) -> Any:
        f = tempfile.TemporaryFile(dir=self.tmp)  # noqa: SIM115 - closed by the cleanup
        self.addCleanup(f.close)
        f.write(data)
        f.seek(0)
        return f

    def test_memory_root_only_on_a_tmpfs(self) -> None:
        """One directory per data root on a tmpfs; none where the path is no tmpfs mount."""
        self.assertEqual(scratch.memory_root("/var/lib/pyd", shm="/proc"), "")
        self.assertEqual(scratch.memory_root("/var/lib/pyd", shm=self.tmp), "")
        with mock.patch.object(scratch, "_is_tmpfs", return_value=True):
            a = scratch.memory_root("/var/lib/pyd", shm="/dev/shm")
            self.assertTrue(a.startswith("/dev/shm/pyd-build-"))
            self.assertNotEqual(a, scratch.memory_root("/var/lib/other", shm="/dev/shm"))

    def test_small_plain_upload_goes_to_memory_anything_else_to_disk(self) -> None:
        plain = make_tar({"Dockerfile": "FROM busybox\n"}).getvalue()
        where = scratch.context_dir(self.mem, self.work, "b1", self._file(plain))
        self.assertEqual(where, os.path.join(self.mem, "b1"))
        self.assertTrue(scratch.in_memory(self.mem, where))
        self.assertEqual(os.stat(where).st_mode & 0o777, 0o700)
        for i, body in enumerate(
            [
                self._file(gzip.compress(plain)),  # compressed: its size says nothing
                io.BytesIO(plain),  # not a file
                None,  # no body
            ]
        ):
            work = os.path.join(self.tmp, f"w{i}")
            os.makedirs(work)
            where = scratch.context_dir(self.mem, work, f"c{i}", body)
            self.assertEqual(where, os.path.join(work, "context"))
            self.assertFalse(scratch.in_memory(self.mem, where))
        with mock.patch.object(scratch, "MEMORY_CONTEXT_MAX", len(plain) - 1):
            work = os.path.join(self.tmp, "big")
            os.makedirs(work)
            where = scratch.context_dir(self.mem, work, "d", self._file(plain))
            self.assertEqual(where, os.path.join(work, "context"))
        where = scratch.context_dir("", self.work, "e", self._file(plain))
        self.assertEqual(where, os.path.join(self.work, "context"))


class BuildContextPlacementTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-scratch-")
        self.addCleanup(fs.remove_tree, self.tmp)
        self.mem = os.path.join(self.tmp, "mem")
        self.images = FakeBuildImages(os.path.join(self.tmp, "store"))
        self.images.add_base("busybox", {"bin/sh": "sh"}, {"Cmd": ["sh"]})
        self.svc = BuildService(
            self.images,
            FakeBuildContainers(self.images, lambda *_: (b"", 0)),
            InlineBlocking(),
            os.path.join(self.tmp, "builds"),
            Clock(),
            memory_root=self.mem,
        )

    def _body(self, files: dict[str, bytes | str]) -> Any:
        f = tempfile.TemporaryFile(dir=self.tmp)  # noqa: SIM115 - closed by the cleanup
        self.addCleanup(f.close)
        f.write(make_tar(files).getvalue())
        f.seek(0)
        return f

    def test_context_in_memory_is_used_and_removed(self) -> None:
        """COPY reads the context from memory; after the build neither it nor the scratch
        directory is left."""
        body = self._body({"Dockerfile": "FROM busybox\nCOPY a /a\n", "a": "from memory"})
        prepared = run_sync(self.svc.prepare(body, BuildOptions()))
        self.assertTrue(prepared.context.startswith(self.mem + "/"))
        res = run_sync(self.svc.run(prepared, FakeProgress()))
        with open(os.path.join(self.images.image_dir(res.image_id), "a")) as f:
            self.assertEqual(f.read(), "from memory")
        self.assertEqual(os.listdir(self.mem), [])
        self.assertEqual(os.listdir(os.path.join(self.tmp, "builds")), [])

    def test_a_bad_context_leaves_nothing(self) -> None:
        body = self._body({"nodockerfile": "x"})
        self.assertRaises(InvalidParameter, run_sync, self.svc.prepare(body, BuildOptions()))
        self.assertEqual(os.listdir(self.mem), [])
        self.assertEqual(os.listdir(os.path.join(self.tmp, "builds")), [])

    def test_a_full_tmpfs_falls_back_to_disk(self) -> None:
        """No room in memory after all (ENOSPC while unpacking): unpacked on disk."""
        real = fs.extract_context
        calls: list[str] = []

        def extract(src: Any, dest: str, max_size: int = 0, keep_free: int = 0) -> int:
            calls.append(dest)
            if dest.startswith(self.mem):
                try:
                    raise OSError(errno.ENOSPC, "No space left on device")
                except OSError as e:
                    raise fs.BuildFileError("Error processing tar file: no space") from e
            return real(src, dest, max_size, keep_free)

        body = self._body({"Dockerfile": "FROM busybox\n"})
        with mock.patch.object(fs, "extract_context", extract):
            prepared = run_sync(self.svc.prepare(body, BuildOptions()))
        self.assertEqual(len(calls), 2)
        self.assertEqual(prepared.context, os.path.join(prepared.workdir, "context"))
        self.assertEqual(os.listdir(self.mem), [])
        run_sync(self.svc.discard(prepared))

    def test_start_and_prune_sweep_leftovers_stop_removes_the_directory(self) -> None:
        """A context a crash left in memory is removed at start; prune removes those of no
        live build; stop removes the empty directory."""
        os.makedirs(os.path.join(self.mem, "left", "sub"))
        with open(os.path.join(self.mem, "left", "sub", "f"), "wb") as f:
            f.write(b"12345")
        run_sync(self.svc.start())
        self.assertEqual(os.listdir(self.mem), [])
        os.makedirs(os.path.join(self.mem, "again"))
        with open(os.path.join(self.mem, "again", "f"), "wb") as f:
            f.write(b"123")
        ids, size = run_sync(self.svc.prune())
        self.assertIn("again", ids)
        self.assertGreaterEqual(size, 3)
        run_sync(self.svc.stop())
        self.assertFalse(os.path.exists(self.mem))
