"""Remote management end to end (issue 8): pyd hosts in network namespaces, driven from outside.

Three daemons, each in its own network namespace with its own address and data root, serve
mutual TLS on ADDR:2376. Hosts 1 and 2 use certificates made by `pyd tls`; host 3 uses
certificates made with openssl exactly as Docker's documentation shows. The root namespace
drives them with the real docker CLI (DOCKER_TLS_VERIFY and contexts), docker-py and `pyd fleet`.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator

import docker
import pytest

from pyd.core import certs
from tests.helpers.daemon import PydDaemon, pyd_cli
from tests.helpers.fleet import Fleet, docker_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        f.start()
        yield f
    finally:
        f.cleanup()


def refused(r: subprocess.CompletedProcess[str]) -> bool:
    return r.returncode != 0 and "Server Version" not in r.stdout


class RemoteTLSTests:
    """Mutual TLS with the real CLI, docker-py and raw sockets."""

    def test_cli_with_env_and_context(self, fleet: Fleet) -> None:
        """DOCKER_TLS_VERIFY works on every host; `pyd tls client --context` makes a usable context."""
        admin = fleet.client("alice", "admin")
        for i in range(2):
            r = docker_cli("info", "--format", "{{.ServerVersion}}", env=fleet.tls_env(i, admin))
            assert r.returncode == 0, r.stderr
        pyd_cli(
            "tls",
            "client",
            "carol",
            "--role",
            "viewer",
            "--context",
            "h1-viewer",
            "--docker-host",
            f"tcp://{fleet.nets[0].addr}:2376",
            env=fleet.env,
        )
        r = docker_cli(
            "--context", "h1-viewer", "version", "--format", "{{.Server.APIVersion}}", env=fleet.env
        )
        assert r.returncode == 0 and r.stdout.strip() == "1.50", r.stderr
        assert (
            "remote call by OU=pyd-role:viewer,CN=carol (viewer): GET /version"
            in fleet.daemons[0].log()
        )

    def test_openssl_docs_certificates_work_as_admin(self, fleet: Fleet) -> None:
        """Certificates made with openssl as Docker's docs show work, with the default role admin."""
        tls = fleet.base / "host3" / "tls"
        r = docker_cli("info", "--format", "{{.Name}}", env=fleet.tls_env(2, tls))
        assert r.returncode == 0, r.stderr
        assert "remote call by CN=client (admin): GET /info" in fleet.daemons[2].log()

    def test_docker_py_tlsconfig(self, fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
        """docker-py's TLSConfig with a client certificate talks to a pyd host."""
        # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override TLSConfig's CA.
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        admin = fleet.client("dora", "admin")
        tls = docker.tls.TLSConfig(
            client_cert=(str(admin / "cert.pem"), str(admin / "key.pem")),
            ca_cert=str(admin / "ca.pem"),
            verify=True,
        )
        client = docker.DockerClient(base_url=f"https://{fleet.nets[1].addr}:2376", tls=tls)
        try:
            assert client.version()["ApiVersion"] == "1.50"
        finally:
            client.close()

    def test_wrong_ca_expired_and_missing_certificates_refused(self, fleet: Fleet) -> None:
        """Another CA's certificate, an expired one, and none at all fail the handshake."""
        host3_client = fleet.base / "host3" / "tls"  # signed by the docs CA, not host 1's
        wrong = fleet.base / "clients" / "wrong-ca"
        wrong.mkdir(parents=True)
        for f in ("cert.pem", "key.pem"):
            (wrong / f).write_bytes((host3_client / f).read_bytes())
        (wrong / "ca.pem").write_bytes((fleet.ca / "ca.pem").read_bytes())
        assert refused(docker_cli("info", env=fleet.tls_env(0, wrong)))

        ca = certs.Issued(
            certs.load_cert((fleet.ca / "ca.pem").read_bytes()),
            certs.load_key((fleet.ca / "ca-key.pem").read_bytes()),
        )
        old = certs.make_client(
            ca,
            "old",
            "admin",
            days=1,
            now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3),
        )
        exp = fleet.base / "clients" / "expired"
        exp.mkdir(parents=True)
        (exp / "cert.pem").write_bytes(old.cert_pem)
        (exp / "key.pem").write_bytes(old.key_pem)
        (exp / "ca.pem").write_bytes(ca.cert_pem)
        assert refused(docker_cli("info", env=fleet.tls_env(0, exp)))

        # No client certificate: server verification only (DOCKER_TLS, no DOCKER_TLS_VERIFY).
        nocert = fleet.base / "clients" / "nocert"
        nocert.mkdir(parents=True)
        (nocert / "ca.pem").write_bytes(ca.cert_pem)
        ctx = ssl.create_default_context(cafile=str(nocert / "ca.pem"))
        with (
            socket.create_connection((fleet.nets[0].addr, 2376), timeout=10) as raw,
            pytest.raises((ssl.SSLError, ConnectionResetError, OSError)),
            ctx.wrap_socket(raw, server_hostname=fleet.nets[0].addr) as s,
        ):
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if not s.recv(100):
                raise ConnectionResetError("closed without an answer")

    def test_plain_http_and_tls11_refused(self, fleet: Fleet) -> None:
        """Plain HTTP to the TLS port gets no HTTP answer; TLS 1.1 fails while TLS 1.2 works."""
        with socket.create_connection((fleet.nets[0].addr, 2376), timeout=10) as s:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except ConnectionResetError:
                pass
            assert b"HTTP/1." not in data and b"OK" not in data
        admin = fleet.client("erin", "admin")

        def s_client(*flags: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    "openssl",
                    "s_client",
                    "-connect",
                    f"{fleet.nets[0].addr}:2376",
                    "-cert",
                    str(admin / "cert.pem"),
                    "-key",
                    str(admin / "key.pem"),
                    "-CAfile",
                    str(admin / "ca.pem"),
                    *flags,
                ],
                input="",
                capture_output=True,
                text=True,
                timeout=20,
            )

        ok = s_client("-tls1_2")
        assert "Protocol  : TLSv1.2" in ok.stdout or "TLSv1.2" in ok.stdout, ok.stdout + ok.stderr
        old = s_client("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        assert old.returncode != 0 and "TLSv1.1, Cipher is" not in old.stdout

    def test_revoked_certificate_refused_after_sighup(self, fleet: Fleet) -> None:
        """`pyd tls revoke` + SIGHUP: the revoked certificate is refused on its next connection."""
        mallory = fleet.client("mallory", "admin")
        env = fleet.tls_env(0, mallory)
        assert docker_cli("info", env=env).returncode == 0
        pyd_cli("tls", "revoke", "mallory", env=fleet.env)
        d = fleet.daemons[0]
        assert d.proc is not None
        d.proc.send_signal(1)
        deadline = time.monotonic() + 20
        while "TLS material reloaded" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "TLS material reloaded" in d.log()
        assert refused(docker_cli("info", env=env))
        assert (
            docker_cli("info", env=fleet.tls_env(0, fleet.client("frank", "admin"))).returncode == 0
        )

    def test_hostname_mismatch_caught_and_cert_reloaded(self, fleet: Fleet) -> None:
        """A server certificate for another name fails the client's check; SIGHUP swaps certs
        while the Unix socket keeps serving."""
        d = fleet.daemons[1]
        tls = fleet.base / "host2" / "tls"
        good_cert, good_key = (
            (tls / "server-cert.pem").read_bytes(),
            (tls / "server-key.pem").read_bytes(),
        )
        admin = fleet.client("gina", "admin")
        env = fleet.tls_env(1, admin)
        try:
            pyd_cli(
                "tls", "server", "--host", "elsewhere.example", "--out", str(tls), env=fleet.env
            )
            assert d.proc is not None
            d.proc.send_signal(1)
            deadline = time.monotonic() + 20
            while d.log().count("TLS material reloaded") < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            r = docker_cli("info", env=env)
            assert r.returncode != 0
            assert "elsewhere.example" in r.stderr or "certificate" in r.stderr, r.stderr
            assert d.request("GET", "/_ping")[0] == 200  # the Unix socket never went away
        finally:
            (tls / "server-cert.pem").write_bytes(good_cert)
            (tls / "server-key.pem").write_bytes(good_key)
            d.proc.send_signal(1)
        deadline = time.monotonic() + 20
        while d.log().count("TLS material reloaded") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert docker_cli("info", env=env).returncode == 0


class RemoteRolesTests:
    """Roles travel in the certificate and are enforced with 403s naming role and rule."""

    def test_viewer_can_read_but_not_create(self, fleet: Fleet) -> None:
        """A viewer lists and inspects; creating a container is refused."""
        viewer = fleet.client("victor", "viewer")
        env = fleet.tls_env(0, viewer)
        assert docker_cli("info", env=env).returncode == 0
        assert docker_cli("system", "df", env=env).returncode == 0
        r = docker_cli("create", "busybox", "true", env=env)
        assert r.returncode != 0
        assert "role viewer may not POST /containers/create" in r.stderr, r.stderr

    def test_operator_cannot_get_root(self, fleet: Fleet) -> None:
        """An operator cannot run privileged containers, bind host paths or join host namespaces."""
        op = fleet.client("oscar", "operator")
        env = fleet.tls_env(0, op)
        for args, rule in (
            (["--privileged"], "create privileged containers"),
            (["-v", "/etc:/host-etc"], "bind-mount host path /etc"),
            (["--pid", "host"], "PidMode=host"),
            (["--cap-add", "SYS_ADMIN"], "add capability SYS_ADMIN"),
            (["--security-opt", "seccomp=unconfined"], "unconfined security options"),
        ):
            r = docker_cli("run", "--rm", *args, "busybox", "true", env=env)
            assert r.returncode != 0
            assert "role operator may not" in r.stderr and rule in r.stderr, (args, r.stderr)

    def test_unix_socket_peer_roles(self, fleet: Fleet) -> None:
        """unix-roles maps a uid to viewer via SO_PEERCRED; root stays admin."""
        # Outside pytest's 0700 temp tree, so uid 65534 can reach the socket.
        d = PydDaemon(tempfile.mkdtemp(prefix="pyd-t-roles-"))
        os.chmod(d.base, 0o755)
        (d.base / "daemon.json").write_text(json.dumps({"unix-roles": {"uid:65534": "viewer"}}))
        try:
            d.start()
            os.chmod(d.sock, 0o666)
            code = (
                "import os, socket\n"
                "os.setgid(65534); os.setuid(65534)\n"
                "def r(method, path, body=b''):\n"
                "    s = socket.socket(socket.AF_UNIX); s.connect(SOCK)\n"
                "    s.sendall(f'{method} {path} HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n"
                "Content-Type: application/json\\r\\nContent-Length: {len(body)}\\r\\n\\r\\n'.encode() + body)\n"
                "    data = b''\n"
                "    while chunk := s.recv(65536): data += chunk\n"
                "    return data.decode()\n"
                "print(r('GET', '/info').split()[1], r('POST', '/containers/create', b'{}').split()[1],"
                " r('POST', '/containers/create', b'{}'))\n"
            ).replace("SOCK", repr(d.sock))
            out = subprocess.run(
                ["/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=30
            )
            assert out.returncode == 0, out.stderr
            assert out.stdout.startswith("200 403"), out.stdout
            assert "role viewer may not" in out.stdout
            assert d.request("POST", "/containers/create", {})[0] != 403  # root is admin
        finally:
            d.cleanup()


class FleetCommandTests:
    """`pyd hosts` and `pyd fleet` across the three hosts."""

    def test_hosts_and_fleet_info_with_a_host_down(self, fleet: Fleet) -> None:
        """Contexts made by `pyd hosts add` are docker's; fleet info merges all hosts and reports
        a down host in its own row without holding up the others."""
        admin = fleet.client("hank", "admin")
        for i in range(2):
            pyd_cli(
                "hosts",
                "add",
                f"fleet{i + 1}",
                "--host",
                f"tcp://{fleet.nets[i].addr}:2376",
                "--tls-dir",
                str(admin),
                env=fleet.env,
            )
        pyd_cli(
            "hosts",
            "add",
            "fleet3",
            "--host",
            f"tcp://{fleet.nets[2].addr}:2376",
            "--tls-dir",
            str(fleet.base / "host3" / "tls"),
            env=fleet.env,
        )
        # An address in the test's range where nothing listens: connection refused or timeout.
        pyd_cli(
            "hosts",
            "add",
            "fleet4",
            "--host",
            f"tcp://{fleet.nets[2].gateway}:2399",
            "--tls-dir",
            str(admin),
            env=fleet.env,
        )
        ls = pyd_cli("hosts", "ls", env=fleet.env).stdout
        assert "fleet1" in ls and "fleet4" in ls
        r = docker_cli("context", "ls", "--format", "{{.Name}}", env=fleet.env)
        assert {"fleet1", "fleet2", "fleet3", "fleet4"} <= set(r.stdout.split())
        assert docker_cli("--context", "fleet3", "info", env=fleet.env).returncode == 0
        hosts = [a for n in ("fleet1", "fleet2", "fleet3", "fleet4") for a in ("--host", n)]
        # That a dead host does not hold up the others is tested with a fake clock
        # (tests/unit/test_cli_fleet.py); here: it is reported and the others answer.
        r = pyd_cli("fleet", *hosts, "--timeout", "5", "info", env=fleet.env, check=False)
        assert r.returncode == 1  # one host failed
        lines = r.stdout.splitlines()
        assert lines[0].split()[:3] == ["HOST", "NAME", "VERSION"]
        rows = {line.split()[0]: line for line in lines[1:]}
        for n in ("fleet1", "fleet2", "fleet3"):
            assert "28.2.2" in rows[n], r.stdout
        assert "error" in rows["fleet4"], r.stdout
        r = pyd_cli(
            "fleet",
            *hosts[:6],
            "events",
            "--since",
            "1h",
            "--until",
            "0s",
            env=fleet.env,
            check=False,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        pyd_cli("hosts", "rm", "fleet4", env=fleet.env)
        assert "fleet4" not in pyd_cli("hosts", "ls", env=fleet.env).stdout

    def test_fleet_refused_host_reported(self, fleet: Fleet) -> None:
        """A host that refuses the certificate (wrong CA) shows as an error row."""
        admin = fleet.client("ivan", "admin")
        pyd_cli(
            "hosts",
            "add",
            "wrongca",
            "--host",
            f"tcp://{fleet.nets[2].addr}:2376",
            "--tls-dir",
            str(admin),
            env=fleet.env,
        )
        pyd_cli(
            "hosts",
            "add",
            "good",
            "--host",
            f"tcp://{fleet.nets[0].addr}:2376",
            "--tls-dir",
            str(admin),
            env=fleet.env,
        )
        r = pyd_cli(
            "fleet", "--host", "wrongca", "--host", "good", "info", env=fleet.env, check=False
        )
        rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
        assert "28.2.2" in rows["good"]
        assert "error" in rows["wrongca"], r.stdout


class FleetContainerTests:
    """Containers across hosts: `pyd fleet run/ps/images/stop` and roles on real objects."""

    def test_fleet_run_ps_images_stop(self, fleet: Fleet) -> None:
        """Run one container per host, see them in one table with HOST, stop them everywhere."""
        from tests.helpers.images import DEFAULT_TAG, load_busybox

        admin = fleet.client("jack", "admin")
        hosts = []
        for i in range(2):
            load_busybox(fleet.daemons[i])
            name = f"fc{i}"
            pyd_cli(
                "hosts",
                "add",
                name,
                "--host",
                f"tcp://{fleet.nets[i].addr}:2376",
                "--tls-dir",
                str(admin),
                env=fleet.env,
            )
            hosts += ["--host", name]
        cname = f"pyd-t-{os.getpid()}"
        r = pyd_cli(
            "fleet",
            *hosts,
            "--timeout",
            "60",  # generous: CI boxes are loaded (the default is 10 s per request)
            "run",
            "--name",
            cname,
            DEFAULT_TAG,
            "sleep",
            "300",
            env=fleet.env,
        )
        rows = [line.split() for line in r.stdout.splitlines()[1:]]
        assert sorted((row[0], row[-1]) for row in rows) == [("fc0", "started"), ("fc1", "started")]
        ps = pyd_cli("fleet", *hosts, "--timeout", "60", "ps", env=fleet.env).stdout
        assert ps.splitlines()[0].split()[:3] == ["HOST", "CONTAINER", "ID"]
        for h in ("fc0", "fc1"):
            assert any(line.startswith(h) and cname in line for line in ps.splitlines()), ps
        r = docker_cli("--context", "fc0", "ps", "--format", "{{.Names}}", env=fleet.env)
        assert cname in r.stdout.split(), r.stderr
        images = pyd_cli("fleet", *hosts, "--timeout", "60", "images", env=fleet.env).stdout
        assert sum("pyd-test/busybox" in line for line in images.splitlines()) == 2, images
        r = pyd_cli("fleet", *hosts, "--timeout", "60", "stop", "-t", "1", cname, env=fleet.env)
        assert r.stdout.count("stopped") == 2, r.stdout
        ps = pyd_cli("fleet", *hosts, "--timeout", "60", "ps", env=fleet.env).stdout
        assert cname not in ps

    def test_roles_on_real_containers(self, fleet: Fleet) -> None:
        """A viewer lists containers; an operator creates ordinary ones but not privileged ones."""
        from tests.helpers.images import DEFAULT_TAG, load_busybox

        load_busybox(fleet.daemons[0])
        viewer = fleet.client("kate", "viewer")
        r = docker_cli("ps", "-a", env=fleet.tls_env(0, viewer))
        assert r.returncode == 0 and "CONTAINER ID" in r.stdout, r.stderr
        op = fleet.client("liam", "operator")
        env = fleet.tls_env(0, op)
        r = docker_cli("create", "--name", "pyd-t-op-ok", DEFAULT_TAG, "true", env=env)
        assert r.returncode == 0, r.stderr
        assert docker_cli("rm", "pyd-t-op-ok", env=env).returncode == 0
        r = docker_cli("run", "--rm", "--privileged", DEFAULT_TAG, "true", env=env)
        assert (
            r.returncode != 0 and "role operator may not create privileged containers" in r.stderr
        )
        r = docker_cli("create", DEFAULT_TAG, "true", env=fleet.tls_env(0, viewer))
        assert r.returncode != 0 and "role viewer may not" in r.stderr
