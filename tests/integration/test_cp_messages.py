"""Every refusal of C{docker cp} into or out of a container names the entry (or the path) and the
rule, as a 4xx, and shows no internals (issue 18).

The suite's hostile archives (tests/helpers/hostile.py) are put into a stopped container's root,
and hostile paths are read from it, through the archive service with the real helper
(L{pyd.drivers.streams.rootview}, spawned as the daemon spawns it, chrooted into the view). Each
refusal must be a client error (never the 500 a helper's traceback would give), name the entry
or path and the rule, and contain no Python exception class, no errno text in Python's form and
no host path (the root, the daemon's temporary directory). What is accepted must have landed
inside the container's root.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import TestCase

from pyd.core.errors import InvalidParameter, NotFound, PydError
from pyd.core.records import Change
from pyd.core.seams import InlineBlocking
from pyd.drivers.process import ReactorProcessRunner
from pyd.engine.archive import ArchiveService
from pyd.engine.streams import StreamTarget
from tests.helpers.hostile import CONTAINED, CP_ACCEPTED, CP_PATHS, CP_RULES, REFUSED
from tests.helpers.leaks import leaks

pytestmark = pytest.mark.integration

CID = "c" * 64


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class _Targets:
    """One stopped container."""

    async def stream_target(self, ref: str) -> StreamTarget:
        if ref not in ("c1", CID):
            raise NotFound(f"No such container: {ref}")
        return StreamTarget(CID, "c1", "img", "exited", 0, False, False, False, "", "", None)


class _Rootfs:
    """The container's root is a plain directory (the helper mounts nothing over it)."""

    def __init__(self, root: str) -> None:
        self.root = root

    async def mount_rw_layer(self, container_id: str) -> str:
        return self.root

    async def unmount_rw_layer(self, container_id: str) -> None:
        return None

    async def changes(self, container_id: str) -> list[Change]:
        return []


class CpMessageTests(TestCase):
    timeout = 300

    def setUp(self) -> None:
        self.base = tempfile.mkdtemp(prefix="pyd-t-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.root = os.path.join(self.base, "root")
        os.makedirs(os.path.join(self.root, "data"))
        os.makedirs(os.path.join(self.root, "etc"))
        with open(os.path.join(self.root, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0::/root:/bin/sh\n")
        with open(os.path.join(self.root, "file"), "w") as f:
            f.write("f\n")
        os.symlink("/etc", os.path.join(self.root, "abs"))
        os.symlink("loop", os.path.join(self.root, "loop"))
        os.symlink("../../../..", os.path.join(self.root, "up"))
        os.symlink("/nonexistent", os.path.join(self.root, "dangling"))
        self.tmp = os.path.join(self.base, "tmp")
        self.svc = ArchiveService(
            _Targets(),
            _Rootfs(self.root),
            ReactorProcessRunner(_reactor()),
            InlineBlocking(),
            self.tmp,
        )
        self.host_paths = [self.base, self.root, self.tmp, tempfile.gettempdir() + "/"]

    def check_refusal(self, case: str, e: PydError, *texts: str) -> None:
        """A 4xx naming C{texts}, with no internals."""
        message = str(e)
        self.assertIsInstance(e, InvalidParameter | NotFound, (case, type(e), message))
        self.assertEqual(leaks(message, self.host_paths), [], (case, message))
        for text in texts:
            self.assertIn(text, message, case)

    async def put(self, path: str, data: bytes) -> PydError | None:
        try:
            await self.svc.put("c1", path, io.BytesIO(data))
        except PydError as e:
            return e
        return None

    def test_every_refused_archive_has_a_rule(self) -> None:
        """Each hostile archive is either refused with a known rule or accepted as dockerd."""
        self.assertEqual(set(CP_RULES) | set(CP_ACCEPTED), set(REFUSED))

    def test_hostile_archives_into_a_container(self) -> Deferred[None]:
        """Each refused archive names its entry and its rule in dockerd's C{Error processing
        tar file(...)}; device nodes and absolute names land inside the root."""

        async def go() -> None:
            for case, rule in sorted(CP_RULES.items()):
                data, entry = REFUSED[case]
                e = await self.put("/data", data)
                self.assertIsNotNone(e, case)
                assert e is not None
                texts = [rule, "Error processing tar file("]
                if entry is not None:
                    texts.append(entry)
                self.check_refusal(case, e, *texts)
            before = set(os.listdir("/etc"))
            for case in CP_ACCEPTED:
                self.assertIsNone(await self.put("/data", REFUSED[case][0]), case)
            for case, data in CONTAINED.items():
                self.assertIsNone(await self.put("/data", data), case)
            self.assertEqual(set(os.listdir("/etc")), before)
            self.assertTrue(stat.S_ISBLK(os.lstat(f"{self.root}/data/etc/passwd").st_mode))
            self.assertTrue(os.path.exists(f"{self.root}/data/etc/pyd-abs"))
            self.assertEqual(sorted(os.listdir(self.base)), ["root", "tmp"])
            self.assertEqual(os.listdir(self.tmp), [])  # the spooled archives went

        return ensureDeferred(go())

    def test_hostile_paths(self) -> Deferred[None]:
        """Stat, get and put of each hostile path: refused with the path and the rule as a
        4xx, or served from inside the container's root."""

        async def go() -> None:
            for path, text in sorted(CP_PATHS.items()):
                for op in ("stat", "get"):
                    case = f"{op} {path[:40]}"
                    try:
                        if op == "stat":
                            await self.svc.stat("c1", path)
                        else:
                            _, f = await self.svc.get("c1", path)
                            f.close()
                    except PydError as e:
                        self.assertIsNotNone(text, (case, str(e)))
                        assert text is not None
                        self.check_refusal(case, e, text)
                    else:
                        self.assertIsNone(text, case)
                e = await self.put(path, CONTAINED["absolute name"])
                if e is not None:
                    self.check_refusal(f"put {path[:40]}", e)
            # what was served came from the container's root, never the host's
            found = await self.svc.stat("c1", "../../etc/passwd")
            self.assertEqual(found.size, len("root:x:0:0::/root:/bin/sh\n"))

        return ensureDeferred(go())
