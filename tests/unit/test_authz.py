"""Role rules (pyd.api.authz): what viewer and operator may do, and who gets which role."""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pyd.api.authz import Lookup, NoLookup, Policy, check
from pyd.api.base import Route, match_route
from pyd.core import certs
from pyd.core.errors import Forbidden, InvalidParameter
from tests.helpers.sync import run_sync


class FakeRequest:
    """Just what the rules read: the body, the query arguments and headers."""

    def __init__(self, body: Any = None, args: dict[bytes, list[bytes]] | None = None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.content = io.BytesIO(raw)
        self.args = args or {}

    def getHeader(self, name: str) -> None:
        return None


def router_classes() -> list[Any]:
    """Every router class, in the order the daemon wires them (shared prefixes: first wins)."""
    from pyd.api.build import BuildRouter
    from pyd.api.cluster import ClusterRouter
    from pyd.api.container_streams import ContainerStreamsRouter
    from pyd.api.containers import ContainersRouter
    from pyd.api.distribution import DistributionRouter
    from pyd.api.exec import ExecRouter
    from pyd.api.images import ImagesRouter
    from pyd.api.metrics import MetricsRouter
    from pyd.api.networks import NetworksRouter
    from pyd.api.system import SystemRouter
    from pyd.api.volumes import VolumesRouter

    return [
        SystemRouter, ClusterRouter, VolumesRouter, NetworksRouter, ImagesRouter,
        ContainersRouter, ContainerStreamsRouter, ExecRouter, MetricsRouter, BuildRouter,
        DistributionRouter,
    ]  # fmt: skip


def route_for(method: str, path: str) -> Route | None:
    """The route the root matches for C{method path} (without C{/vX.Y})."""
    first = path.strip("/").split("/")[0]
    routers = [r for r in router_classes() if first in r.prefixes]
    return match_route(routers, method, path)


def run_check(
    role: str,
    method: str,
    path: str,
    request: Any,
    policy: Policy,
    lookup: Lookup | None = None,
) -> None:
    """Run the (async) check; with in-memory lookups it finishes at once. The request gets the
    route the root would match for it (among every router, as wired)."""
    if not hasattr(request, "pyd_route"):
        request.pyd_route = route_for(method, path)
    run_sync(check(role, method, path, request, policy, lookup))


def refuse(
    testcase: SynchronousTestCase,
    role: str,
    method: str,
    path: str,
    body: Any = None,
    policy: Policy | None = None,
    args: dict[bytes, list[bytes]] | None = None,
) -> str:
    with testcase.assertRaises(Forbidden) as cm:
        run_check(role, method, path, FakeRequest(body, args), policy or Policy())
    return str(cm.exception)


def allow(
    role: str, method: str, path: str, body: Any = None, policy: Policy | None = None
) -> None:
    run_check(role, method, path, FakeRequest(body), policy or Policy())


class ViewerTests(SynchronousTestCase):
    """Viewers read; they change nothing and read no file contents."""

    def test_reads_allowed(self) -> None:
        """List, inspect, logs, stats, top, events, version, info and df are allowed."""
        for path in (
            "/containers/json",
            "/containers/abc/json",
            "/containers/abc/logs",
            "/containers/abc/stats",
            "/containers/abc/top",
            "/images/json",
            "/images/library/busybox:latest/json",
            "/images/x/history",
            "/networks",
            "/networks/n1",
            "/volumes",
            "/volumes/v",
            "/events",
            "/version",
            "/info",
            "/system/df",
            "/exec/e1/json",
        ):
            allow("viewer", "GET", path)
        allow("viewer", "HEAD", "/containers/json")

    def test_writes_and_file_reads_refused(self) -> None:
        """Create, exec, delete, export, archive and image save are refused, naming the role."""
        msg = refuse(self, "viewer", "POST", "/containers/create", {})
        self.assertIn("role viewer may not POST /containers/create", msg)
        for method, path in (
            ("DELETE", "/containers/abc"),
            ("GET", "/containers/abc/export"),
            ("GET", "/containers/abc/archive"),
            ("GET", "/images/get"),
            ("POST", "/containers/abc/exec"),
            ("POST", "/build"),
        ):
            refuse(self, "viewer", method, path)


class OperatorTests(SynchronousTestCase):
    """Operators do everything except what gives root on the host."""

    def test_plain_container_allowed(self) -> None:
        """An ordinary create with a named volume and a tmpfs is allowed."""
        allow(
            "operator",
            "POST",
            "/containers/create",
            {
                "Image": "busybox",
                "HostConfig": {
                    "Binds": ["data:/data"],
                    "NetworkMode": "bridge",
                    "Mounts": [{"Type": "tmpfs", "Target": "/t"}],
                },
            },
        )
        allow("operator", "POST", "/containers/abc/start")
        allow("operator", "DELETE", "/containers/abc")

    def test_root_giving_options_refused(self) -> None:
        """Privileged, host namespaces, caps, devices and unconfined options are refused."""
        cases = [
            ({"Privileged": True}, "create privileged containers"),
            ({"PidMode": "host"}, "PidMode=host"),
            ({"NetworkMode": "host"}, "NetworkMode=host"),
            ({"IpcMode": "host"}, "IpcMode=host"),
            ({"UsernsMode": "host"}, "UsernsMode=host"),
            ({"CapAdd": ["SYS_ADMIN"]}, "add capability SYS_ADMIN"),
            ({"Devices": [{"PathOnHost": "/dev/sda"}]}, "host devices (Devices)"),
            ({"SecurityOpt": ["seccomp=unconfined"]}, "unconfined security options"),
            ({"SecurityOpt": ["apparmor:unconfined"]}, "unconfined security options"),
            ({"SecurityOpt": ["label=disable"]}, "unconfined security options"),
            ({"Binds": ["/etc:/x:ro"]}, "bind-mount host path /etc"),
            (
                {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/h"}]},
                "bind-mount host path /",
            ),
            (
                {
                    "Mounts": [
                        {
                            "Type": "volume",
                            "Target": "/h",
                            "VolumeOptions": {
                                "DriverConfig": {
                                    "Options": {"type": "none", "o": "bind", "device": "/root"}
                                }
                            },
                        }
                    ]
                },
                "host path /root",
            ),
        ]
        for hc, rule in cases:
            msg = refuse(self, "operator", "POST", "/containers/create", {"HostConfig": hc})
            self.assertIn("role operator may not", msg)
            self.assertIn(rule, msg)

    def test_exec_update_volume_build_plugins(self) -> None:
        """Privileged exec, device updates, bind-backed volumes, host-network builds, plugins."""
        self.assertIn(
            "privileged exec",
            refuse(
                self, "operator", "POST", "/containers/a/exec", {"Cmd": ["sh"], "Privileged": True}
            ),
        )
        allow("operator", "POST", "/containers/a/exec", {"Cmd": ["sh"]})
        refuse(
            self,
            "operator",
            "POST",
            "/containers/a/update",
            {"Devices": [{"PathOnHost": "/dev/x"}]},
        )
        allow("operator", "POST", "/containers/a/update", {"Memory": 1 << 20})
        refuse(
            self,
            "operator",
            "POST",
            "/volumes/create",
            {"Name": "v", "DriverOpts": {"type": "none", "o": "bind", "device": "/etc"}},
        )
        allow("operator", "POST", "/volumes/create", {"Name": "v"})
        refuse(self, "operator", "POST", "/build", args={b"networkmode": [b"host"]})
        refuse(self, "operator", "POST", "/plugins/pull")

    def test_allowed_bind_paths(self) -> None:
        """Binds under allowed-bind-paths pass; '..' and symlinks out of them do not."""
        import os
        import tempfile

        base = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(base))
        os.mkdir(os.path.join(base, "ok"))
        os.symlink("/etc", os.path.join(base, "ok", "escape"))
        policy = Policy(allowed_bind_paths=(os.path.join(base, "ok"),))
        allow(
            "operator",
            "POST",
            "/containers/create",
            {"HostConfig": {"Binds": [f"{base}/ok/sub:/x"]}},
            policy,
        )
        refuse(
            self,
            "operator",
            "POST",
            "/containers/create",
            {"HostConfig": {"Binds": [f"{base}/ok/../x:/x"]}},
            policy,
        )
        refuse(
            self,
            "operator",
            "POST",
            "/containers/create",
            {"HostConfig": {"Binds": [f"{base}/ok/escape:/x"]}},
            policy,
        )
        refuse(
            self,
            "operator",
            "POST",
            "/containers/create",
            {"HostConfig": {"Binds": [f"{base}/okay:/x"]}},
            policy,
        )

    def test_bind_paths_resolved_by_the_lookup(self) -> None:
        """The rules never resolve a bind source themselves (a filesystem walk on the reactor):
        they ask the lookup, whose daemon implementation resolves on the volume driver's pool.
        A source the lookup places under no allowed root is refused, whatever the name says."""
        asked: list[tuple[str, tuple[str, ...]]] = []

        class Resolving(NoLookup):
            async def bind_root(self, path: str, roots: Any) -> tuple[str, str] | None:
                asked.append((path, tuple(roots)))
                return ("/srv/ok", "a") if path == "/srv/ok/a" else None

        policy = Policy(allowed_bind_paths=("/srv/ok",))
        for body in (
            {"HostConfig": {"Binds": ["/srv/ok/a:/x"]}},
            {"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/srv/ok/a", "Target": "/x"}]}},
        ):
            run_check(
                "operator", "POST", "/containers/create", FakeRequest(body), policy, Resolving()
            )
        with self.assertRaises(Forbidden):
            run_check(
                "operator",
                "POST",
                "/containers/create",
                FakeRequest({"HostConfig": {"Binds": ["/srv/ok/b:/x"]}}),
                policy,
                Resolving(),
            )
        with self.assertRaises(Forbidden):
            run_check(
                "operator",
                "POST",
                "/volumes/create",
                FakeRequest(
                    {
                        "Name": "v",
                        "DriverOpts": {"type": "none", "o": "bind", "device": "/srv/ok/b"},
                    }
                ),
                policy,
                Resolving(),
            )
        self.assertEqual(
            [p for p, _ in asked], ["/srv/ok/a", "/srv/ok/a", "/srv/ok/b", "/srv/ok/b"]
        )
        self.assertEqual({r for _, r in asked}, {("/srv/ok",)})

    def test_uninspectable_body_refused(self) -> None:
        """A create body that does not parse is refused with the handler's own 400 (the rules
        read the body with the handler's parser), rather than waved through."""
        for raw in (b"{not json", b'{"HostConfig": {}} trailing', b"x" * (4 * 1024 * 1024 + 1)):
            req = FakeRequest()
            req.content = io.BytesIO(raw)
            with self.assertRaises(InvalidParameter):
                run_check("operator", "POST", "/containers/create", req, Policy())

    def test_duplicate_and_differently_cased_keys(self) -> None:
        """The rules read the engine's typed spec: Go's case-insensitive keys and its merging
        of duplicate keys mean the same to both (a lowercase C{privileged} is privileged)."""
        for raw in (
            b'{"HostConfig": {"Privileged": false, "Privileged": true}}',
            b'{"HostConfig": {"Privileged": true}, "HostConfig": {}}',
            b'{"hostconfig": {"privileged": true}}',
            b'{"HOSTCONFIG": {"PidMode": "host"}}',
            b'{"HostConfig": {"binds": ["/:/h"]}}',
        ):
            req = FakeRequest()
            req.content = io.BytesIO(raw)
            with self.assertRaises(Forbidden, msg=raw):
                run_check("operator", "POST", "/containers/create", req, Policy())


class RoleResolutionTests(SynchronousTestCase):
    """Certificates and Unix peers map to roles."""

    def setUp(self) -> None:
        self.ca = certs.make_ca()

    def test_certificate_role_default_and_override(self) -> None:
        """The OU role wins over the default; tls-roles wins over both; no role -> default."""
        viewer = certs.make_client(self.ca, "bob", "viewer").cert
        plain = certs.make_client(self.ca, "docs", None).cert
        self.assertEqual(Policy().role_for_cert(viewer), ("viewer", "OU=pyd-role:viewer,CN=bob"))
        self.assertEqual(Policy().role_for_cert(plain)[0], "admin")
        self.assertEqual(Policy(default_role="viewer").role_for_cert(plain)[0], "viewer")
        self.assertEqual(
            Policy(tls_roles={"CN=bob": "operator"}).role_for_cert(viewer)[0], "operator"
        )
        self.assertEqual(Policy(tls_roles={"docs": "viewer"}).role_for_cert(plain)[0], "viewer")

    def test_unix_peers(self) -> None:
        """Root is always admin; unix-roles maps uid and gid; others are admin."""
        p = Policy(unix_roles={"uid:0": "viewer", "uid:1000": "viewer", "gid:50": "operator"})
        self.assertEqual(p.role_for_peer(0, 0), "admin")
        self.assertEqual(p.role_for_peer(1000, 1000), "viewer")
        self.assertEqual(p.role_for_peer(1001, 50), "operator")
        self.assertEqual(p.role_for_peer(1002, 1002), "admin")
