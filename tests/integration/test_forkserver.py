"""The sealed helpers' fork server (pyd.drivers.helpers, pyd.drivers.forkserver), real processes.

A helper forked from the server ends as a spawned one does (exit status, a signal, stdout,
stderr), sees only the descriptors it was given, and the `docker cp` view helper extracts
through it as through a spawned helper. Other programs, and calls the server cannot take, go
to the wrapped runner.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from pyd.drivers import sealed
from pyd.drivers.helpers import ForkServerRunner
from pyd.drivers.process import ProcessFailed, ProcessResult, ReactorProcessRunner
from pyd.drivers.streams import rootview

pytestmark = pytest.mark.integration

PROBE = "tests.helpers.forkserver_probe"
VIEW = "pyd.drivers.streams.rootview"


class _Recording:
    """The wrapped runner: records what it was asked, then spawns it."""

    def __init__(self, real: ReactorProcessRunner) -> None:
        self.real = real
        self.calls: list[tuple[str, ...]] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        check: bool = False,
        child_fds: Mapping[int, Any] | None = None,
    ) -> Deferred[ProcessResult]:
        self.calls.append(tuple(argv))
        return self.real.run(argv, stdin=stdin, env=env, cwd=cwd, check=check, child_fds=child_fds)


class ForkServerTests(TestCase):
    def setUp(self) -> None:
        from twisted.internet import reactor

        self.spawned = ReactorProcessRunner(reactor)
        self.fallback = _Recording(self.spawned)
        self.runner = ForkServerRunner(reactor, self.fallback, modules=(PROBE, VIEW))
        self.addCleanup(self.runner.stop)
        self.dir = tempfile.mkdtemp(prefix="pyd-t-forkserver-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def _stdin(self, data: bytes) -> int:
        fd = os.open(self.dir, os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, 0o600)
        self.addCleanup(os.close, fd)
        os.write(fd, data)
        return fd

    @inlineCallbacks
    def test_forked_helper_ends_as_a_spawned_one(self) -> Any:
        """Exit status, stdout and stderr are those of the same helper spawned; the forked
        one holds only 0-2 and the fd it was given at its place, not the server's socket."""
        fd = self._stdin(b"tarbytes")
        for rc in (0, 3):
            argv = sealed.helper_argv(PROBE, "echo", "a b", str(rc))
            forked = yield self.runner.run(argv, child_fds={0: fd, 3: fd})
            spawned = yield self.spawned.run(argv, child_fds={0: fd, 3: fd})
            self.assertEqual(self.fallback.calls, [])
            self.assertEqual((forked.rc, forked.stderr), (spawned.rc, spawned.stderr))
            out, ref = json.loads(forked.stdout), json.loads(spawned.stdout)
            self.assertEqual(out["args"], ["echo", "a b", str(rc)])
            self.assertEqual(out["stdin"], "tarbytes")
            # the directory read's own descriptor comes and goes; nothing else is open
            self.assertEqual(out["fds"][:4], [0, 1, 2, 3])
            self.assertLessEqual(len(out["fds"]), 5)
            self.assertEqual(out["fds"], ref["fds"])
            self.assertNotEqual(out["pid"], ref["pid"])
        with self.assertRaises(ProcessFailed):
            yield self.runner.run(sealed.helper_argv(PROBE, "echo", "1"), check=True)

    @inlineCallbacks
    def test_signals_and_exceptions(self) -> Any:
        """Death by a signal is C{-signal}; an exception is status 1 with its traceback on
        stderr, without source lines (the helpers' sealed hook is not installed here, the
        interpreter's is: only the last line is compared)."""
        killed = yield self.runner.run(sealed.helper_argv(PROBE, "kill", "0"))
        self.assertEqual(killed.rc, -signal.SIGKILL)
        failed = yield self.runner.run(sealed.helper_argv(PROBE, "raise", "0"))
        self.assertEqual(failed.rc, 1)
        self.assertEqual(failed.stderr.strip().splitlines()[-1], b"RuntimeError: probe failed")

    @inlineCallbacks
    def test_concurrent_helpers(self) -> Any:
        """Several at once each get their own result."""
        ds = [self.runner.run(sealed.helper_argv(PROBE, "echo", str(i), str(i))) for i in range(6)]
        results = yield gatherResults(ds)
        self.assertEqual([r.rc for r in results], list(range(6)))
        self.assertEqual(
            [json.loads(r.stdout)["args"][1] for r in results], [str(i) for i in range(6)]
        )

    @inlineCallbacks
    def test_others_and_a_dead_server_go_to_the_wrapped_runner(self) -> Any:
        """Another program, input on stdin, a module it does not serve: spawned. A server
        that died is replaced by the next call (the one that finds it gone is spawned)."""
        yield self.runner.run(["true"])
        yield self.runner.run(sealed.helper_argv(PROBE, "echo", "0"), stdin=b"x")
        yield self.runner.run(sealed.helper_argv("pyd.drivers.storage.untar", "--help"))
        self.assertEqual(len(self.fallback.calls), 3)
        first = yield self.runner.run(sealed.helper_argv(PROBE, "echo", "0"))
        self.assertEqual(len(self.fallback.calls), 3)
        server = self.runner._server
        assert server is not None and server.transport is not None
        server.transport.signalProcess("KILL")
        yield server.ended
        second = yield self.runner.run(sealed.helper_argv(PROBE, "echo", "0"))
        self.assertEqual(second.rc, 0)
        self.assertNotEqual(json.loads(first.stdout)["pid"], json.loads(second.stdout)["pid"])

    @inlineCallbacks
    def test_cp_view_put_through_the_server(self) -> Any:
        """The docker cp helper extracts a plain tar (read in place) and a gzip'ed one
        through the server, refuses a directory over a file, and writes only inside the
        view's root."""
        root = os.path.join(self.dir, "root")
        os.makedirs(os.path.join(root, "dst"))
        os.makedirs(os.path.join(root, "dst", "d"))
        spec = {"mode": "mounts", "root": root, "mounts": [], "checks": {}}
        for mode, name in (("w", "plain"), ("w:gz", "gz")):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode=mode) as tf:
                data = os.urandom(300_000)
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            fd = self._stdin(buf.getvalue())
            os.lseek(fd, 5, os.SEEK_SET)  # the helper reads from the start whatever the offset
            argv = rootview.helper_argv(spec, "put", "/dst", "--no-overwrite-dir-non-dir")
            result = yield self.runner.run(argv, child_fds={0: fd})
            self.assertEqual((result.rc, json.loads(result.stdout)), (0, {"ok": True}), result)
            with open(os.path.join(root, "dst", name), "rb") as f:
                self.assertEqual(f.read(), data)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            tf.addfile(tarfile.TarInfo("d"))
        argv = rootview.helper_argv(spec, "put", "/dst", "--no-overwrite-dir-non-dir")
        result = yield self.runner.run(argv, child_fds={0: self._stdin(buf.getvalue())})
        self.assertEqual(json.loads(result.stdout)["error"], "dir-non-dir")
        self.assertTrue(os.path.isdir(os.path.join(root, "dst", "d")))
        self.assertEqual(self.fallback.calls, [])

    @inlineCallbacks
    def test_idle_server_ends_and_comes_back(self) -> Any:
        """The server ends once no helper ran for its idle time (an idle daemon keeps no
        server); the next helper starts a new one."""
        from twisted.internet import reactor

        runner = ForkServerRunner(reactor, self.fallback, modules=(PROBE,), idle=0.1)
        self.addCleanup(runner.stop)
        first = yield runner.run(sealed.helper_argv(PROBE, "echo", "0"))
        server = runner._server
        assert server is not None
        yield server.ended
        self.assertIsNone(runner._server)
        second = yield runner.run(sealed.helper_argv(PROBE, "echo", "0"))
        self.assertEqual((first.rc, second.rc), (0, 0))
        self.assertIsNot(runner._server, server)
        self.assertEqual(self.fallback.calls, [])
