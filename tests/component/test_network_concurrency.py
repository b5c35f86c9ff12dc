"""Containers' network set-ups run side by side (issue 21: concurrent `docker run` waited on
one lock for every namespace, veth and address), while what must run alone still does: a
set-up that publishes ports (it picks host ports from what the others hold) and network
create/remove. The kernel work is held at the io pool (a gate) to see who is inside at once."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from pyd.engine.networks import NetworkConfig, NetworkService
from pyd.state.models import ContainerRow
from pyd.state.networks import NetworkRepository
from tests.fakes.events import FakeEvents
from tests.fakes.network import FakeFirewall, FakeNetlink, FakeResolver
from tests.helpers.memdb import memory_db
from tests.helpers.netsvc import ContainerRef, Containers, net_request


class GatedBlocking:
    """Runs blocking work at once, except the veth attach, which waits until released."""

    def __init__(self, netlink: FakeNetlink) -> None:
        self.netlink = netlink
        self.held: list[tuple[Deferred[None], Callable[[], None]]] = []

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        if fn == self.netlink.attach:
            d: Deferred[None] = Deferred()
            self.held.append((d, lambda: fn(*args, **kwargs)))
            return d
        return succeed(fn(*args, **kwargs))

    def release_all(self) -> None:
        held, self.held = self.held, []
        for d, work in held:
            work()
            d.callback(None)


class ConcurrentSetupTests(SynchronousTestCase):
    def setUp(self) -> None:
        tmp = tempfile.mkdtemp(prefix="pyd-t-")
        self.addCleanup(shutil.rmtree, tmp, True)
        resolv = os.path.join(tmp, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.53\n")
        self.db = memory_db(alembic=True)
        self.addCleanup(self.db.close)
        self.netlink = FakeNetlink()
        self.blocking = GatedBlocking(self.netlink)
        self.containers = Containers()
        self.service = NetworkService(
            NetworkRepository(self.db),
            self.netlink,
            FakeFirewall(),
            FakeResolver(),
            self.blocking,
            FakeEvents(),
            NetworkConfig(exec_root=os.path.join(tmp, "exec"), resolv_conf=resolv),
            lookup=self.containers,
            can_bind=lambda ip, port, proto: True,
        )
        self.successResultOf(Deferred.fromCoroutine(self.service.start()))

    def setup(self, name: str, ports: bool = False) -> Deferred[Any]:
        cid = (name.encode().hex() + "0" * 64)[:64]
        with self.db.engine.begin() as conn:  # endpoint rows belong to a container row
            conn.execute(
                insert(ContainerRow).values(
                    id=cid, name="/" + name, image_id="i", image_ref="i", created=0,
                    status="created", config={}, host_config={}, state={},
                    network_settings={}, mounts=[], restart_count=0, extra={},
                )
            )  # fmt: skip
        self.containers.refs[cid] = ContainerRef(cid, name, False, "default")
        hc = {"PortBindings": {"80/tcp": [{"HostPort": ""}]}} if ports else {}
        return Deferred.fromCoroutine(
            self.service.setup(cid, name, name, "default", net_request(hc), ["80/tcp"])
        )

    def test_setups_side_by_side(self) -> None:
        """Two plain set-ups are both at their veth at once, with different addresses."""
        a, b = self.setup("a"), self.setup("b")
        self.assertEqual(len(self.blocking.held), 2)
        self.blocking.release_all()
        ips = {self.successResultOf(d).endpoints[0].ipv4 for d in (a, b)}
        self.assertEqual(len(ips), 2)

    def test_publishing_setup_alone(self) -> None:
        """A set-up that publishes ports waits for the plain ones in progress, and the plain
        ones asked after it wait for it (it is not starved); each then gets its own port."""
        a = self.setup("a")
        p = self.setup("p", ports=True)
        b = self.setup("b")
        self.assertEqual(len(self.blocking.held), 1)  # only a is inside
        self.blocking.release_all()
        self.successResultOf(a)
        self.assertEqual(len(self.blocking.held), 1)  # now p, alone
        self.assertNoResult(b)
        self.blocking.release_all()
        published = self.successResultOf(p).ports
        self.assertEqual(len(published), 1)
        self.assertEqual(len(self.blocking.held), 1)  # then b
        self.blocking.release_all()
        self.successResultOf(b)

    def test_network_create_waits(self) -> None:
        """Creating a network waits until no set-up is inside (it may not see half of one)."""
        from pyd.engine.networks import CreateRequest

        a = self.setup("a")
        created = Deferred.fromCoroutine(self.service.create(CreateRequest(name="n1")))
        self.assertNoResult(created)
        self.blocking.release_all()
        self.successResultOf(a)
        self.successResultOf(created)
