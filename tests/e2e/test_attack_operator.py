"""The attack suite of issue 12: an operator certificate tries to become root on the host.

One daemon serves mutual TLS on loopback (set up as in L{tests.e2e.test_remote_operator}, whose
L{Host} this reuses). An admin has made what an operator must not reach: a privileged root shell
with stdin open, a container in the host's network namespace, a container with a bind of a host
directory holding a canary file. The operator then sends every family of the escapes the issue
lists, with their variants, as raw HTTP (method case, path encodings, JSON key case and duplicate
keys, query booleans, port strings) or with the docker CLI. Each attempt must be refused (a 4xx
with a plain message) or harmless; after each test the host canaries are unchanged, nothing new
appeared at the host's root, no container of the operator's runs in a host namespace, and no
answer was a 5xx.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import ssl
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_remote_operator import Host, running
from tests.helpers.images import DEFAULT_TAG

pytestmark = pytest.mark.e2e

LABEL = "pyd-attack"  # on everything the operator creates, to find it afterwards


class Arena(Host):
    """L{Host} plus raw HTTPS as the operator, host canaries and the admin's targets."""

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.canary_dir = base / "canary"
        self.canary_dir.mkdir()
        (self.canary_dir / "secret").write_text("canary " + uuid.uuid4().hex + "\n")
        self.host_root = sorted(os.listdir("/"))
        self.statuses: list[tuple[str, str, int]] = []

    # -- raw HTTP ---------------------------------------------------------------------------

    def _context(self, role: str) -> ssl.SSLContext:
        certs = self.certs[role]
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        ctx.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
        return ctx

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        role: str = "operator",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """One request exactly as given (method token and path bytes untouched)."""
        raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self._context(role), timeout=60
        )
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            hdrs = {"Content-Type": "application/json"} if raw is not None else {}
            hdrs.update(headers or {})
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(raw or b"")))
            conn.endheaders(raw)
            resp = conn.getresponse()
            status = resp.status
            # A refused or failed call has a short JSON body; an allowed attach would stream.
            data = resp.read(65536) if status != 101 else b""
        finally:
            conn.close()
        self.statuses.append((method, path, status))
        assert status < 500, (method, path, status, data)
        if 400 <= status < 500 and data:
            msg = json.loads(data).get("message", "")
            assert "Traceback" not in msg and "Errno" not in msg, msg
        return status, data

    def op_fails(self, *args: str) -> str:
        """The operator's CLI call fails with a plain message; returns stderr."""
        r = self.cli("operator", *args)
        assert r.returncode != 0, (args, r.stdout)
        # a 500's number as a word of its own: a container id's hex often holds "500"
        assert "Traceback" not in r.stderr and not re.search(r"\b500\b", r.stderr), (
            args,
            r.stderr,
        )
        return r.stderr

    # -- what must not change ---------------------------------------------------------------

    def canary_digest(self) -> str:
        h = hashlib.sha256()
        for p in sorted(self.canary_dir.rglob("*")):
            st = p.lstat()
            h.update(f"{p}:{st.st_mode}:{st.st_size}:{st.st_mtime_ns}\n".encode())
            if p.is_file():
                h.update(p.read_bytes())
        return h.hexdigest()

    def operator_containers(self) -> list[dict[str, Any]]:
        out = self.ok("admin", "ps", "-aq", "--no-trunc", "--filter", f"label={LABEL}")
        ids = out.split()
        if not ids:
            return []
        return list(json.loads(self.ok("admin", "inspect", *ids)))

    def running_in_host_namespace(self) -> list[str]:
        """Operator containers whose process shares a namespace with the host (this test's
        process runs in the host's namespaces, as the daemon does)."""
        bad = []
        host_ns = {
            k: os.readlink(f"/proc/self/ns/{k}") for k in ("net", "pid", "ipc", "uts", "mnt")
        }
        for c in self.operator_containers():
            pid = c["State"]["Pid"]
            if not pid:
                continue
            for k, v in host_ns.items():
                try:
                    if os.readlink(f"/proc/{pid}/ns/{k}") == v:
                        bad.append(f"{c['Name']} shares the host's {k} namespace")
                except OSError:
                    pass
        return bad

    def remove_operator_containers(self) -> None:
        ids = [c["Id"] for c in self.operator_containers()]
        if ids:
            self.cli("admin", "rm", "-f", *ids)


@pytest.fixture(scope="module")
def arena() -> Iterator[Arena]:
    with running(Arena, "pyd-t-attack-") as a:
        a.ok("admin", "run", "-d", "-i", "--privileged", "--name", a.name("sh"), DEFAULT_TAG, "sh")
        a.ok("admin", "run", "-d", "--network", "host", "--name", a.name("hostnet"),
             DEFAULT_TAG, "sleep", "600")  # fmt: skip
        a.ok("admin", "run", "-d", "-v", f"{a.canary_dir}:/hostroot", "--name", a.name("bind"),
             DEFAULT_TAG, "sleep", "600")  # fmt: skip
        yield a


@pytest.fixture
def h(arena: Arena) -> Iterator[Arena]:
    """The arena, checked after each test: canaries, host root, namespaces, no leftovers."""
    before = arena.canary_digest()
    try:
        yield arena
        assert arena.canary_digest() == before
        assert sorted(os.listdir("/")) == arena.host_root
        assert arena.running_in_host_namespace() == []
    finally:
        arena.remove_operator_containers()


def create_body(hc: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    return {
        "Image": DEFAULT_TAG,
        "Cmd": ["sleep", "30"],
        "Labels": {LABEL: "1"},
        **({"HostConfig": hc} if hc is not None else {}),
        **more,
    }


ROOT_HC = {"Privileged": True, "PidMode": "host", "NetworkMode": "host", "Binds": ["/:/h"]}


def archive_of(members: list[tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
    return buf.getvalue()


class MethodCaseTests:
    """Escape 1: a method token other than the API's (post, Post, pOST) is no route."""

    def test_create_exec_archive_with_other_method_case(self, h: Arena) -> None:
        """Privileged create, exec into the admin's shell and PUT archive through its bind, sent
        as post/Post/pOST (and put/Put), with and without /v1.xx: refused, nothing made."""
        adm = h.name("sh")
        tar = archive_of([tarfile.TarInfo("planted")])
        for prefix in ("", "/v1.41", "/v1.50"):
            for method in ("post", "Post", "pOST", "PoSt"):
                status, _ = h.http(method, f"{prefix}/containers/create", create_body(ROOT_HC))
                assert status in (400, 403, 404), (method, prefix, status)
                status, _ = h.http(method, f"{prefix}/containers/{adm}/exec", {"Cmd": ["id"]})
                assert status in (400, 403, 404), (method, prefix, status)
            for method in ("put", "Put", "pUT"):
                status, _ = h.http(
                    method,
                    f"{prefix}/containers/{h.name('bind')}/archive?path=/hostroot",
                    tar,
                    headers={"Content-Type": "application/x-tar"},
                )
                assert status in (400, 403, 404), (method, prefix, status)
        assert h.operator_containers() == []
        assert not (h.canary_dir / "planted").exists()
        execs = h.http("GET", f"/containers/{adm}/json", role="admin")[1]
        assert json.loads(execs).get("ExecIDs") in (None, [])

    def test_the_real_method_is_still_checked(self, h: Arena) -> None:
        """POST itself: the same privileged create is the operator rule's 403."""
        status, data = h.http("POST", "/v1.41/containers/create", create_body(ROOT_HC))
        assert status == 403 and b"role operator may not" in data


class PathEncodingTests:
    """Escape 1, the path: what the rules read is what the router dispatches."""

    def test_exec_into_admin_container_by_path_variants(self, h: Arena) -> None:
        """%2F, percent-encoded letters, double and trailing slashes: never an exec."""
        adm = h.name("sh")
        for path in (
            f"/containers/{adm}/exec",
            f"/v1.41/containers/{adm}/exec",
            f"/containers//{adm}/exec",
            f"/containers/{adm}//exec",
            f"/v1.41//containers/{adm}/exec",
            f"//containers/{adm}/exec",
            f"/containers/{adm}/exec/",
            f"/containers/{adm}%2Fexec",
            f"/containers%2F{adm}/exec",
            f"/%63ontainers/{adm}/%65xec",
            f"/containers/{adm}%2F/exec",
            f"/containers/./{adm}/exec",
            f"/containers/x/../{adm}/exec",
        ):
            status, data = h.http("POST", path, {"Cmd": ["id"]})
            if status in (301, 302, 307, 308):
                pytest.fail(f"{path}: redirect is not refused outright ({status})")
            assert status in (400, 403, 404, 405), (path, status, data)
        info = json.loads(h.http("GET", f"/containers/{adm}/json", role="admin")[1])
        assert info.get("ExecIDs") in (None, [])


class JsonKeyTests:
    """The rules read the create body as the engine does: Go's case-insensitive keys, and
    duplicate keys merged as Go merges them."""

    def test_key_case_and_duplicates(self, h: Arena) -> None:
        """Each body is refused (403 or 400) and creates nothing."""
        bodies: list[bytes] = [
            json.dumps({"image": DEFAULT_TAG, "hostconfig": {"privileged": True}}).encode(),
            json.dumps({"Image": DEFAULT_TAG, "HOSTCONFIG": {"PIDMODE": "host"}}).encode(),
            json.dumps({"Image": DEFAULT_TAG, "HostConfig": {"binds": ["/:/h"]}}).encode(),
            json.dumps({"Image": DEFAULT_TAG, "HostConfig": {"networkmode": "host"}}).encode(),
            b'{"Image": "%s", "HostConfig": {"Privileged": false, "Privileged": true}}'
            % DEFAULT_TAG.encode(),
            b'{"Image": "%s", "HostConfig": {"Privileged": true}, "HostConfig": {}}'
            % DEFAULT_TAG.encode(),
            b'{"Image": "%s", "HostConfig": {"Privileged": true}, "hostConfig": {"CpuShares": 2}}'
            % DEFAULT_TAG.encode(),
            b'{"Image": "%s", "HostConfig": {"Mounts": [{"type": "bind", "source": "/",'
            b' "target": "/h"}]}}' % DEFAULT_TAG.encode(),
            "\ufeff".encode() + json.dumps({"HostConfig": {"Privileged": True}}).encode(),
        ]
        for body in bodies:
            status, data = h.http("POST", "/containers/create", body)
            assert status in (400, 403), (body, status, data)
        assert h.operator_containers() == []


class BindFormTests:
    """Escape 2: every bind/mount/volume form of a host path outside allowed-bind-paths."""

    def test_binds_by_api(self, h: Arena) -> None:
        """Backslash, relative, ./, ~, // and .. sources: refused (the volume-name rule or the
        bind rule); nothing of the host mounted or created."""
        for source in ("\\", "\\root", "\\\\etc", "./x", "~", "~/x", "..\\..", "x/../../"):
            status, data = h.http(
                "POST", "/containers/create", create_body({"Binds": [f"{source}:/host"]})
            )
            assert status in (400, 403), (source, status, data)
        for source in ("/", "//", "/./", "/tmp/..", "/etc", str(h.canary_dir)):
            status, data = h.http(
                "POST", "/containers/create", create_body({"Binds": [f"{source}:/host:rw"]})
            )
            assert status == 403, (source, status, data)
        for source in ("\\", "\\root", "/", "//", "/tmp/../", "relative"):
            mount = {"Type": "bind", "Source": source, "Target": "/host"}
            status, data = h.http("POST", "/containers/create", create_body({"Mounts": [mount]}))
            assert status in (400, 403), (source, status, data)
        assert h.operator_containers() == []

    def test_binds_by_cli(self, h: Arena) -> None:
        """The issue's reproduction: C{op run -v '\\:/host' busybox ls /host} fails."""
        for spec in ("\\:/host", "\\root:/host", "/:/host", "//:/host"):
            h.op_fails("run", "--rm", "--label", LABEL, "-v", spec, DEFAULT_TAG, "ls", "/host")
        for spec in ("type=bind,src=\\,dst=/host", "type=bind,src=/,dst=/host"):
            h.op_fails("run", "--rm", "--label", LABEL, "--mount", spec, DEFAULT_TAG, "ls", "/host")
        h.op_fails(
            "run", "--rm", "--label", LABEL, "--mount",
            f"type=volume,src=v{h.tag},dst=/x,volume-opt=type=none,volume-opt=o=bind,"
            "volume-opt=device=/",
            DEFAULT_TAG, "ls", "/x",
        )  # fmt: skip


class CopyOutTests:
    """Escape 3: cp out of (and HEAD archive of) an admin container reads its binds."""

    def test_cp_and_head_archive_refused(self, h: Arena) -> None:
        """C{op cp adm-bind:/hostroot/secret -} and HEAD/GET archive are refused; export (the
        root filesystem only) is not a way to the bind."""
        adm = h.name("bind")
        err = h.op_fails("cp", f"{adm}:/hostroot/secret", "-")
        assert "copy files out of container" in err
        for method in ("HEAD", "GET"):
            status, _ = h.http(method, f"/containers/{adm}/archive?path=/hostroot/secret")
            assert status == 403
        status, data = h.http("GET", f"/containers/{adm}/export")
        assert status == 200
        assert b"canary" not in data


class NamespaceJoinTests:
    """Escape 8: container:X by name, id, prefix and decoy."""

    def test_join_admin_container_by_name_id_prefix(self, h: Arena) -> None:
        """--network/--pid/--ipc container:<admin's host-network container> by name, full id
        and id prefix: refused."""
        adm = h.name("hostnet")
        full = h.ok("admin", "inspect", "-f", "{{.Id}}", adm).strip()
        for ref in (adm, full, full[:12], full[:5]):
            for key in ("NetworkMode", "PidMode", "IpcMode"):
                status, data = h.http(
                    "POST", "/containers/create", create_body({key: f"container:{ref}"})
                )
                assert status == 403, (key, ref, status, data)

    def test_decoy_removed_before_start(self, h: Arena) -> None:
        """The issue's reproduction: a decoy named with the first hex characters of the admin's
        host-network container's id. Joining it by that name is refused at create (the name may
        come to mean the admin's container once the decoy is gone)."""
        full = h.ok("admin", "inspect", "-f", "{{.Id}}", h.name("hostnet")).strip()
        prefix = next(full[:n] for n in range(4, 64) if not full[:n].isdigit())
        h.ok("operator", "run", "-d", "--label", LABEL, "--name", prefix, DEFAULT_TAG,
             "sleep", "300")  # fmt: skip
        for flag in ("--network", "--pid", "--ipc"):
            h.refused("create", "--label", LABEL, flag, f"container:{prefix}", DEFAULT_TAG,
                      "true", rule="join the namespaces of container")  # fmt: skip
        h.ok("operator", "rm", "-f", prefix)

    def test_joined_container_is_pinned_at_create(self, h: Arena) -> None:
        """A join allowed at create (an ordinary container by name) is stored as that
        container's full id; once it is removed and an admin's host-network container takes
        its name, the start fails instead of joining the host's network namespace."""
        decoy = h.name(f"decoy{uuid.uuid4().hex[:4]}")
        h.ok("operator", "run", "-d", "--label", LABEL, "--name", decoy, DEFAULT_TAG,
             "sleep", "300")  # fmt: skip
        decoy_id = h.ok("operator", "inspect", "-f", "{{.Id}}", decoy).strip()
        joiners = {}
        for flag, key in (("--network", "NetworkMode"), ("--pid", "PidMode")):
            cid = h.ok("operator", "create", "--label", LABEL, flag, f"container:{decoy}",
                       DEFAULT_TAG, "sleep", "300").strip()  # fmt: skip
            stored = h.ok("operator", "inspect", "-f", f"{{{{.HostConfig.{key}}}}}", cid).strip()
            assert stored == f"container:{decoy_id}"
            joiners[flag] = cid
        h.ok("operator", "rm", "-f", decoy)
        h.ok("admin", "run", "-d", "--network", "host", "--name", decoy, DEFAULT_TAG,
             "sleep", "300")  # fmt: skip
        try:
            for cid in joiners.values():
                err = h.op_fails("start", cid)
                assert "No such container" in err, err
        finally:
            h.ok("admin", "rm", "-f", decoy)

    def test_build_joins_admin_container(self, h: Arena) -> None:
        """A build's networkmode=container:<admin's host-network container>: refused."""
        ctx = h.base / f"ctx-{uuid.uuid4().hex[:6]}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {DEFAULT_TAG}\nRUN cat /proc/net/dev\n")
        full = h.ok("admin", "inspect", "-f", "{{.Id}}", h.name("hostnet")).strip()
        for ref in (h.name("hostnet"), full[:8]):
            h.refused(
                "build",
                "--network",
                f"container:{ref}",
                str(ctx),
                rule="join the namespaces",
                build=True,
            )


class DockerfileRunOptionTests:
    """Issue 20: what an operator's Dockerfile asks for in a RUN step, which the query-level
    rules cannot see, is refused by the same rules when the step runs."""

    def test_run_network_host_and_insecure(self, h: Arena) -> None:
        """RUN --network=host and --security=insecure in an operator's build: refused before
        the step's container exists (nothing joins the host's network namespace); an admin's
        RUN --network=host builds."""
        ctx = h.base / f"ctx-{uuid.uuid4().hex[:6]}"
        ctx.mkdir()
        for flag, rule in (
            ("--network=host", "may not build with RUN --network=host"),
            ("--security=insecure", "security"),
        ):
            (ctx / "Dockerfile").write_text(
                f"# syntax=docker/dockerfile:1\nFROM {DEFAULT_TAG}\n"
                f"RUN {flag} cat /proc/net/dev > /dev/null\n"
            )
            r = h.cli("operator", "build", "--label", LABEL, str(ctx), build=True)
            assert r.returncode != 0, r.stdout
            assert rule in r.stderr, r.stderr
            assert "Traceback" not in r.stderr
        (ctx / "Dockerfile").write_text(
            f"FROM {DEFAULT_TAG}\nRUN --network=host cat /proc/net/dev > /dev/null\n"
        )
        h.ok("admin", "build", str(ctx), build=True)


class QueryBooleanTests:
    """Escape 7: attach stdin to the admin's privileged shell, with every spelling of true."""

    def test_attach_stdin_spellings(self, h: Arena) -> None:
        """stdin=on/True/1/yes/y/TRUE/2: 403 before any hijack (the shell never reads)."""
        adm = h.name("sh")
        for value in ("on", "True", "1", "yes", "y", "TRUE", "2", "%20on"):
            for path in (
                f"/containers/{adm}/attach?stream=1&stdin={value}&stdout=1",
                f"/v1.41/containers/{adm}/attach?stdin={value}&stream=1",
                f"/containers/{adm}/attach?stdin=0&stdin={value}&stream=1",
            ):
                status, data = h.http("POST", path, headers={"Upgrade": "tcp"})
                if "stdin=0&" in path:
                    # The first value is the one the endpoint reads: an output-only attach.
                    continue
                assert status == 403, (path, status, data)
        # The refused attaches never reached the shell: it is still waiting for input.
        top = h.ok("admin", "top", adm)
        assert "sh" in top


class PortStringTests:
    """Also: host ports below 1024 in forms Python's int() reads as numbers."""

    def test_port_strings(self, h: Arena) -> None:
        """ "22", "+22", " 22", "22 ", "8_1", "0x16", "02-03": refused (403 or 400)."""
        for text in ("22", "+22", " 22", "22 ", "8_1", "0x16", "02-03", "1-65535"):
            hc = {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": text}]}}
            status, data = h.http("POST", "/containers/create", create_body(hc))
            assert status in (400, 403), (text, status, data)
        assert h.operator_containers() == []


class SysctlTests:
    """Also: a sysctl name that walks out of its subtree."""

    def test_sysctl_traversal(self, h: Arena) -> None:
        """net/../kernel/core_pattern and friends: refused; the host's core_pattern unchanged."""
        with open("/proc/sys/kernel/core_pattern") as f:
            before = f.read()
        for key in ("net/../kernel/core_pattern", "net.ipv4/../../kernel/core_pattern",
                    "kernel.core_pattern", "kernel/core_pattern"):  # fmt: skip
            hc = {"Sysctls": {key: "|/bin/touch /tmp/pyd-attack-core"}}
            status, data = h.http("POST", "/containers/create", create_body(hc))
            assert status in (400, 403), (key, status, data)
        with open("/proc/sys/kernel/core_pattern") as f:
            assert f.read() == before
        assert not os.path.exists("/tmp/pyd-attack-core")


class PlainErrorTests:
    """Also: calls that answered 500 with Python's text answer a plain 4xx."""

    def test_plain_4xx(self, h: Arena) -> None:
        """PUT archive with a hard link to a missing name, a bridge name the kernel refuses,
        import from a non-HTTP source: 4xx, plain message."""
        own = h.ok("operator", "run", "-d", "--label", LABEL, DEFAULT_TAG, "sleep", "60").strip()
        link = tarfile.TarInfo("hl")
        link.type = tarfile.LNKTYPE
        link.linkname = "missing"
        status, _ = h.http(
            "PUT",
            f"/containers/{own}/archive?path=/tmp",
            archive_of([link]),
            headers={"Content-Type": "application/x-tar"},
        )
        assert status == 400
        for name in ("a" * 16, "bad name", "x/y", "lo"):
            body = {"Name": f"pyd-t-n{uuid.uuid4().hex[:6]}",
                    "Options": {"com.docker.network.bridge.name": name}}  # fmt: skip
            status, _ = h.http("POST", "/networks/create", body)
            assert 400 <= status < 500, (name, status)
        for src in ("file:///etc/passwd", "/etc/passwd", "ftp://127.0.0.1/x", "http://[::1"):
            status, _ = h.http("POST", f"/images/create?fromSrc={src}&repo=pyd-t-imp")
            assert status == 400, (src, status)


class RedactionTests:
    """Also: an admin container's environment, exec command lines and exec ids are not shown
    to viewers and operators (inspect, exec inspect, events); the operator's own are."""

    def test_admin_exec_and_env_hidden(self, h: Arena) -> None:
        """The admin execs a command carrying a secret into its privileged shell container."""
        adm = h.name("sh")
        since = str(int(time.time()) - 1)
        secret = "s3cr3t-" + uuid.uuid4().hex[:8]
        h.ok("admin", "exec", "-e", f"TOKEN={secret}", adm, "sh", "-c", f": {secret}")
        admin_view = json.loads(h.http("GET", f"/containers/{adm}/json", role="admin")[1])
        exec_id = admin_view["ExecIDs"][0]
        status, data = h.http("GET", f"/containers/{adm}/json")
        assert status == 200
        info = json.loads(data)
        assert info["ExecIDs"] is None
        assert all(e.endswith("=[redacted]") for e in info["Config"]["Env"]), info["Config"]
        status, data = h.http("GET", f"/exec/{exec_id}/json")
        assert status == 404 and secret.encode() not in data
        own = h.ok("operator", "run", "-d", "--label", LABEL, DEFAULT_TAG, "sleep", "60").strip()
        h.ok("operator", "exec", own, "echo", "mine")
        until = str(int(time.time()) + 1)  # the daemon ends the stream at until=
        status, data = h.http("GET", f"/events?since={since}&until={until}")
        assert status == 200
        events = [json.loads(line) for line in data.splitlines() if line.strip()]
        adm_execs = [e for e in events if e["Actor"]["ID"] == info["Id"] and "exec" in e["Action"]]
        assert adm_execs, events
        for e in adm_execs:
            assert ":" not in e["Action"] and "execID" not in e["Actor"]["Attributes"], e
        assert secret.encode() not in data
        mine = [e["Action"] for e in events if e["Actor"]["ID"] == own]
        assert "exec_create: echo mine" in mine, mine
        status, data = h.http("GET", f"/events?since={since}&until={until}", role="admin")
        assert secret.encode() in data
