"""Legacy links: moby's ParseLink and ToEnv, and the container service's link rules."""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import Conflict, InvalidParameter, NotFound
from pyd.engine.containers.links import link_env
from pyd.engine.spec.rules import parse_link
from tests.helpers.sync import run_sync
from tests.unit.test_containers_engine import EngineTestBase


class ParseLinkTests(SynchronousTestCase):
    """L{parse_link} as moby's opts.ParseLink."""

    def test_forms(self) -> None:
        """name:alias, name alone (alias = name), and inspect's /child:/parent/alias form."""
        self.assertEqual(parse_link("db:web"), ("db", "web"))
        self.assertEqual(parse_link("db"), ("db", "db"))
        self.assertEqual(parse_link("/db:/app/web"), ("db", "web"))

    def test_errors(self) -> None:
        """dockerd's texts."""
        for bad, text in (("", "empty string specified for links"),
                          ("a:b:c", "bad format for links: a:b:c")):  # fmt: skip
            with self.assertRaises(InvalidParameter) as c:
                parse_link(bad)
            self.assertEqual(str(c.exception), text)


class LinkEnvTests(SynchronousTestCase):
    """L{link_env} as moby 28.2's Link.ToEnv."""

    def test_ports_ranges_and_env(self) -> None:
        """TCP first; consecutive ports of one protocol are a range (two are enough); the
        child's env without HOME and PATH; a dash in the alias becomes an underscore."""
        env = link_env(
            "/app/my-db",
            "172.17.0.2",
            ["PATH=/bin", "HOME=/root", "FOO=a=b", "NOVALUE"],
            ["53/udp", "81/tcp", "80/tcp"],
        )
        ip = "172.17.0.2"
        self.assertEqual(
            env,
            [
                f"MY_DB_PORT=tcp://{ip}:80",
                f"MY_DB_PORT_80_TCP=tcp://{ip}:80",
                f"MY_DB_PORT_80_TCP_ADDR={ip}",
                "MY_DB_PORT_80_TCP_PORT=80",
                "MY_DB_PORT_80_TCP_PROTO=tcp",
                f"MY_DB_PORT_81_TCP=tcp://{ip}:81",
                f"MY_DB_PORT_81_TCP_ADDR={ip}",
                "MY_DB_PORT_81_TCP_PORT=81",
                "MY_DB_PORT_81_TCP_PROTO=tcp",
                f"MY_DB_PORT_53_UDP=udp://{ip}:53",
                f"MY_DB_PORT_53_UDP_ADDR={ip}",
                "MY_DB_PORT_53_UDP_PORT=53",
                "MY_DB_PORT_53_UDP_PROTO=udp",
                f"MY_DB_PORT_80_TCP_START=tcp://{ip}:80",
                "MY_DB_PORT_80_TCP_PORT_START=80",
                f"MY_DB_PORT_80_TCP_END=tcp://{ip}:81",
                "MY_DB_PORT_80_TCP_PORT_END=81",
                "MY_DB_NAME=/app/my-db",
                "MY_DB_ENV_FOO=a=b",
            ],
        )

    def test_no_ports(self) -> None:
        """Without exposed ports only the name and the env."""
        self.assertEqual(link_env("/a/b", "", ["X=1"], []), ["B_NAME=/a/b", "B_ENV_X=1"])


class ServiceLinkTests(EngineTestBase):
    """The container service: registration, start, inspect view, removal."""

    def _hosts(self, cid: str) -> str:
        with open(os.path.join(self.svc.bundle_dir(cid), "hosts")) as f:
            return f.read()

    def test_link_on_default_bridge(self) -> None:
        """The child's line (alias, hostname, name) goes before the parent's own; the
        variables reach the process; inspect shows /child:/parent/alias; the link name names
        the child; rm of the link drops the running parent's line."""
        child = self.started("db", Cmd=["sleep", "1"], Hostname="dbh", Env=["PW=s"],
                             ExposedPorts={"5432/tcp": {}})  # fmt: skip
        parent = self.started("app", Cmd=["sleep", "1"], HostConfig={"Links": ["db:web"]})
        hosts = self._hosts(parent)
        self.assertIn("10.250.0.2\tweb dbh db\n", hosts)
        self.assertLess(hosts.index("web dbh db"), hosts.index(parent[:12]))
        env = self.runtime.containers[parent]["spec"]["process"]["env"]
        self.assertIn("WEB_PORT=tcp://10.250.0.2:5432", env)
        self.assertIn("WEB_NAME=/app/web", env)
        self.assertIn("WEB_ENV_PW=s", env)
        # networking is asked to open the child's exposed ports to it (dockerd's link rules,
        # effective with icc off)
        self.assertEqual(self.networks.links[parent], [("10.250.0.2", ("5432/tcp",))])
        c = self.svc.resolve("app")
        self.assertEqual(self.svc.links_shown(c), ["/db:/app/web"])
        self.assertEqual(self.svc.resolve("app/web").id, child)
        self.assertEqual(self.svc.link_names(self.svc.resolve("db")), ["/app/web"])
        run_sync(self.svc.remove_link("app/web"))
        self.assertNotIn("web dbh db", self._hosts(parent))
        self.assertIsNone(self.svc.links_shown(self.svc.resolve("app")))
        self.assertRaises(NotFound, self.svc.resolve, "app/web")

    def test_link_errors(self) -> None:
        """A missing child is a 400 at create; a stopped one fails the start; a container's own
        name is not a link name to remove."""
        err = self.fail_with(
            self.svc.create("pp", {"Image": "busybox"}, {"Links": ["nope:x"]}), InvalidParameter
        )
        self.assertEqual(str(err), "could not get container for nope: No such container: nope")
        self.assertRaises(NotFound, self.svc.resolve, "pp")
        self.create("stopped", Cmd=["sleep", "1"])
        cid = self.create("qq", Cmd=["sleep", "1"], HostConfig={"Links": ["stopped:s"]})
        err = self.fail_with(self.svc.start(cid), Conflict)
        self.assertEqual(str(err), "Cannot link to a non running container: /stopped AS /qq/s")
        err = self.fail_with(self.svc.remove_link("stopped"), InvalidParameter)
        self.assertEqual(str(err), "Conflict, cannot remove the default link name of the container")
        self.fail_with(self.svc.remove_link("nope/x"), NotFound)

    def test_host_child_refused(self) -> None:
        """Linking to a host-network container is dockerd's conflict."""
        self.started("hh", Cmd=["sleep", "1"], HostConfig={"NetworkMode": "host"})
        err = self.fail_with(
            self.svc.create("pp", {"Image": "busybox"}, {"Links": ["hh"]}), InvalidParameter
        )
        self.assertIn("host type networking can't be used with links", str(err))

    def test_parent_hosts_follow_a_restarted_child(self) -> None:
        """A child restarted with a new address: the running parent's line gets it (dockerd's
        addLegacyLinks updates its parents' /etc/hosts)."""
        child = self.started("db", Cmd=["sleep", "1"], Hostname="dbh")
        parent = self.started("app", Cmd=["sleep", "1"], HostConfig={"Links": ["db:web"]})
        self.assertIn("10.250.0.2\tweb dbh db\n", self._hosts(parent))
        d = Deferred.fromCoroutine(self.svc.stop(child, timeout=0))
        self.clock.advance(1)
        self.successResultOf(d)
        run_sync(self.svc.start(child))
        hosts = self._hosts(parent)
        self.assertIn("10.250.0.4\tweb dbh db\n", hosts)
        self.assertNotIn("10.250.0.2\tweb", hosts)
