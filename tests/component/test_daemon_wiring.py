"""The whole daemon in process: L{build_service} with fake drivers, a memory reactor, and StubTreq
over the real API site. Proves the wiring: every area is built, started in order, and a
container created from a loaded image starts and inspects through all of them."""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.daemon.eager import UnixPort
from tests.helpers.images import DEFAULT_TAG, busybox_image_tar
from tests.helpers.wiring import InProcessDaemon


class DaemonWiringTests(SynchronousTestCase):
    """build_service wires every area by construction; the tree starts and serves."""

    def setUp(self) -> None:
        self.daemon = InProcessDaemon()
        self.addCleanup(self.daemon.cleanup)
        self.tmp = self.daemon.tmp
        self.config = self.daemon.config
        self.reactor = self.daemon.reactor
        self.runtime = self.daemon.runtime
        self.service = self.daemon.service
        self.successResultOf(self.daemon.start())
        self.addCleanup(self.stop)
        self.call = self.daemon.call

    def stop(self) -> None:
        d = self.daemon.stop()
        if d is not None:
            self.successResultOf(d)

    def test_shutdown_timeout(self) -> None:
        """A stop hook that never finishes holds shutdown for shutdown-timeout seconds (15, the
        default), then the daemon stops anyway (pidfile removed)."""
        self.assertEqual(self.config.shutdown_timeout, 15)
        hung: Deferred[None] = Deferred()
        self.service.lifecycle.stop.append(lambda: hung)
        d = self.service.stopService()
        self.reactor.pump([0.05] * 3)
        self.assertNoResult(d)
        self.reactor.advance(15)
        self.reactor.pump([0.05] * 3)
        self.successResultOf(d)
        self.assertFalse(os.path.exists(self.config.pidfile))

    def test_started_tree(self) -> None:
        """Start-up locked the data root, wrote the pidfile, listened on the -H socket."""
        with open(self.config.pidfile) as f:
            self.assertEqual(int(f.read()), os.getpid())
        # pyd's own Unix port (connections that answer in the read's turn, pyd.daemon.eager)
        [port] = [r for r in self.reactor.getReaders() if isinstance(r, UnixPort)]
        self.assertEqual(port.getHost().name, f"{self.tmp}/pyd.sock".encode())
        # the site behind the connection guard (per-peer and handshake caps)
        self.assertIs(port.factory.wrappedFactory, self.service.site)
        code, info = self.call("GET", "/v1.50/info")
        self.assertEqual(code, 200)
        self.assertEqual(info["Name"], "testhost")
        self.assertEqual(info["NCPU"], 2)
        self.stop()
        self.assertFalse(os.path.exists(self.config.pidfile))

    def test_create_start_inspect(self) -> None:
        """A loaded image, a container created from it, started and inspected: the request
        goes through the router, the engine areas and the (fake) drivers."""
        built = busybox_image_tar(os.path.join(self.tmp, "bb.tar"))
        with open(built.path, "rb") as f:
            code, _ = self.call("POST", "/v1.50/images/load?quiet=1", f.read(), "application/x-tar")
        self.assertEqual(code, 200)
        code, body = self.call(
            "POST", "/v1.50/containers/create?name=web", {"Image": DEFAULT_TAG, "Cmd": ["true"]}
        )
        self.assertEqual(code, 201, body)
        cid = body["Id"]
        code, body = self.call("POST", f"/v1.50/containers/{cid}/start")
        self.assertEqual(code, 204, body)
        self.assertIn(("start", cid), self.runtime.calls)
        self.assertEqual(self.runtime.containers[cid]["status"], "running")
        code, inspect = self.call("GET", f"/v1.50/containers/{cid}/json")
        self.assertEqual(code, 200)
        self.assertEqual(inspect["Name"], "/web")
        self.assertEqual(inspect["Image"], built.id)
        self.assertTrue(inspect["State"]["Running"])
        self.assertEqual(list(inspect["NetworkSettings"]["Networks"]), ["bridge"])
        # The image area sees the container through the wiring (removal is refused).
        code, body = self.call("DELETE", f"/v1.50/images/{DEFAULT_TAG}")
        self.assertEqual(code, 409, body)
