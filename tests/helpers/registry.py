"""A real Distribution registry (Debian's C{docker-registry}) on loopback, for tests.

Three flavours, chosen by C{auth}:
  - C{None}: no authentication;
  - C{"basic"}: htpasswd (bcrypt hashes made here) with HTTP Basic auth;
  - C{"token"}: the WWW-Authenticate Bearer flow against L{TokenServer}, a small token server
    running in a thread of the test process, signing RS256 JWTs with a key and self-signed
    certificate made here (the registry trusts that certificate through C{rootcertbundle}).

Each registry listens on 127.0.0.1 on a free port with its own storage directory; L{Registry.stop}
kills the process and deletes its data. Plain synchronous code, usable from trial and pytest.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

REGISTRY_BIN = "/usr/bin/docker-registry"
USER = "pyduser"
PASSWORD = "pyd-secret-pw"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues registry bearer tokens; checks HTTP Basic credentials when a request carries them.

    Anonymous requests get a token with pull access only when C{anonymous_pull} is set (an
    empty access list otherwise, which the registry answers with 401). Records the requests.
    """

    def __init__(self, service: str, issuer: str, anonymous_pull: bool = False) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.service = service
        self.issuer = issuer
        self.anonymous_pull = anonymous_pull
        self.requests: list[dict[str, Any]] = []
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyd-test-token-signer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self._cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.port = free_port()
        self.realm = f"http://127.0.0.1:{self.port}/token"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def sign(self, access: list[dict[str, Any]], subject: str) -> str:
        """A JWT the registry accepts (x5c chain = our self-signed certificate)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self._cert_der).decode()]}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        sig = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(sig)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        q = parse_qs(url.query)
        user = ""
        authz = h.headers.get("Authorization", "")
        if authz.lower().startswith("basic "):
            user, _, pw = base64.b64decode(authz[6:]).decode().partition(":")
            if (user, pw) != (USER, PASSWORD):
                self.requests.append({"query": q, "user": user, "ok": False})
                h.send_response(401)
                h.send_header("Content-Type", "application/json")
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}'
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)
                return
        self.requests.append({"query": q, "user": user, "ok": True})
        access = []
        for scope in q.get("scope", []):
            for one in scope.split(" "):
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                wanted = actions.split(",")
                if user:
                    granted = wanted
                elif self.anonymous_pull:
                    granted = [a for a in wanted if a == "pull"]
                else:
                    granted = []
                access.append({"type": kind, "name": name, "actions": granted})
        token = self.sign(access, user)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def stop(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()


class Registry:
    """One C{docker-registry} process; use L{start}, then L{stop} (also when a test fails)."""

    def __init__(
        self, auth: str | None = None, anonymous_pull: bool = False, addr: str = "127.0.0.1"
    ) -> None:
        self.auth = auth
        self.dir = tempfile.mkdtemp(prefix="pyd-registry-")
        self.storage = os.path.join(self.dir, "storage")
        self.port = free_port()
        # addr: another local address the test made (a netns host's veth gateway), so daemons
        # in network namespaces can reach the registry.
        self.addr = addr
        self.host = f"{addr}:{self.port}"
        self.url = f"http://{self.host}"
        self.token_server: TokenServer | None = None
        self._anonymous_pull = anonymous_pull
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(self.dir, "registry.log")

    def _config(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "  redirect:",
            "    disable: true",
            "http:",
            f"  addr: {self.addr}:{self.port}",
            f"  secret: {uuid.uuid4().hex}",
        ]
        if self.auth == "basic":
            import bcrypt

            htpasswd = os.path.join(self.dir, "htpasswd")
            hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
            with open(htpasswd, "w") as f:
                f.write(f"{USER}:{hashed}\n")
            lines += ["auth:", "  htpasswd:", "    realm: pyd-test", f"    path: {htpasswd}"]
        elif self.auth == "token":
            self.token_server = TokenServer(
                "pyd-test-registry", "pyd-test-issuer", anonymous_pull=self._anonymous_pull
            )
            bundle = os.path.join(self.dir, "token.pem")
            with open(bundle, "wb") as f:
                f.write(self.token_server.cert_pem)
            lines += [
                "auth:",
                "  token:",
                f"    realm: {self.token_server.realm}",
                "    service: pyd-test-registry",
                "    issuer: pyd-test-issuer",
                f"    rootcertbundle: {bundle}",
            ]
        elif self.auth is not None:
            raise ValueError(self.auth)
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 20) -> Registry:
        """Write the config, start the registry, wait until C{/v2/} answers."""
        cfg = os.path.join(self.dir, "config.yml")
        with open(cfg, "w") as f:
            f.write(self._config())
        log = open(self.log_path, "wb")  # noqa: SIM115 - handed to the child
        self._proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", cfg], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=2).close()
                break
            except urllib.error.HTTPError:
                break  # 401 from an auth'd registry: it is up
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    with open(self.log_path, "rb") as f:
                        out = f.read().decode(errors="replace")
                    self.stop()
                    raise RuntimeError(f"docker-registry did not start: {out}") from None
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Kill the registry (and the token server) and delete all data."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- direct access for tests: seed content and tamper with storage ------------------------

    def _auth_header(self, scope: str) -> dict[str, str]:
        if self.auth == "basic":
            cred = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            return {"Authorization": f"Basic {cred}"}
        if self.auth == "token":
            assert self.token_server is not None
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            tok = self.token_server.sign(
                [{"type": kind, "name": name, "actions": actions.split(",")}], USER
            )
            return {"Authorization": f"Bearer {tok}"}
        return {}

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        scope: str = "",
    ) -> tuple[int, dict[str, str], bytes]:
        """One request straight to the registry, authorised as the test user."""
        hdrs = dict(headers or {})
        if scope:
            hdrs.update(self._auth_header(scope))
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def put_blob(self, repo: str, data: bytes) -> str:
        """Upload one blob monolithically; return its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        scope = f"repository:{repo}:pull,push"
        code, hdrs, body = self.request("POST", f"/v2/{repo}/blobs/uploads/", b"", scope=scope)
        assert code == 202, (code, body)
        loc = hdrs["location"]
        if loc.startswith("/"):
            loc = self.url + loc
        sep = "&" if "?" in loc else "?"
        path = loc[len(self.url) :] + f"{sep}digest={digest}"
        code, _, body = self.request(
            "PUT", path, data, {"Content-Type": "application/octet-stream"}, scope=scope
        )
        assert code == 201, (code, body)
        return digest

    def put_manifest(self, repo: str, ref: str, manifest: bytes, media_type: str) -> str:
        """Store a manifest under a tag or digest; return its digest."""
        code, _, body = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            manifest,
            {"Content-Type": media_type},
            scope=f"repository:{repo}:pull,push",
        )
        assert code == 201, (code, body)
        return "sha256:" + hashlib.sha256(manifest).hexdigest()

    def blob_data_path(self, digest: str) -> str:
        """Where the filesystem driver keeps a blob's bytes (to tamper with it)."""
        hexd = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _layer_tar(seed: str, size: int = 100_000) -> bytes:
    """A small layer tar with one file whose content depends on C{seed}."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        data = hashlib.sha256(seed.encode()).digest() * (size // 32)
        ti = tarfile.TarInfo(f"{seed}.bin")
        ti.size = len(data)
        ti.mtime = 0
        t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def seed_multiplatform(registry: Registry, repo: str, tag: str, oci: bool) -> dict[str, str]:
    """Two single-platform images (amd64, arm64/v8) under one manifest list / OCI index."""
    mt_m = (
        "application/vnd.oci.image.manifest.v1+json"
        if oci
        else ("application/vnd.docker.distribution.manifest.v2+json")
    )
    mt_i = (
        "application/vnd.oci.image.index.v1+json"
        if oci
        else ("application/vnd.docker.distribution.manifest.list.v2+json")
    )
    entries = []
    ids = {}
    for arch, variant in (("amd64", ""), ("arm64", "v8")):
        tar = _layer_tar("plat-" + arch)
        blob = gzip.compress(tar, mtime=0)
        ld = registry.put_blob(repo, blob)
        cfg = {
            "architecture": arch,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        }
        if variant:
            cfg["variant"] = variant
        cb = json.dumps(cfg).encode()
        cd = registry.put_blob(repo, cb)
        m = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt_m,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json"
                    if oci
                    else "application/vnd.docker.container.image.v1+json",
                    "size": len(cb),
                    "digest": cd,
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"
                        if oci
                        else "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": len(blob),
                        "digest": ld,
                    }
                ],
            }
        ).encode()
        md = registry.put_manifest(repo, "sha256:" + hashlib.sha256(m).hexdigest(), m, mt_m)
        plat = {"architecture": arch, "os": "linux"}
        if variant:
            plat["variant"] = variant
        entries.append({"mediaType": mt_m, "size": len(m), "digest": md, "platform": plat})
        ids[arch] = cd
    entries.append(
        {
            "mediaType": mt_m,
            "size": entries[0]["size"],
            "digest": entries[0]["digest"],
            "platform": {"architecture": "unknown", "os": "unknown"},
        }
    )
    index = json.dumps({"schemaVersion": 2, "mediaType": mt_i, "manifests": entries}).encode()
    ids["index"] = registry.put_manifest(repo, tag, index, mt_i)
    return ids


class CuttingProxy:
    """A TCP proxy to a registry that breaks the first C{times} responses to requests containing
    C{needle}: it forwards C{keep} bytes of such a response, then closes the connection.

    HTTP/1.1 without pipelining: a response starts after its request, so the cut point is
    "bytes sent to the client when the request passed" + C{keep}.
    """

    def __init__(self, upstream_port: int, needle: bytes, keep: int = 20000, times: int = 1):
        self.needle = needle
        self.keep = keep
        self.times = times
        self.cuts = 0
        self._upstream = upstream_port
        self._lock = threading.Lock()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(16)
        self.port: int = self._srv.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                c, _ = self._srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        u = socket.create_connection(("127.0.0.1", self._upstream))
        state = {"to_client": 0, "cut_at": -1}

        def up() -> None:
            try:
                while True:
                    data = c.recv(65536)
                    if not data:
                        break
                    if self.needle in data:
                        with self._lock:
                            if self.cuts < self.times:
                                self.cuts += 1
                                state["cut_at"] = state["to_client"] + self.keep
                    u.sendall(data)
            except OSError:
                pass
            finally:
                _close(u)

        threading.Thread(target=up, daemon=True).start()
        try:
            while True:
                data = u.recv(65536)
                if not data:
                    break
                cut = state["cut_at"]
                if cut >= 0 and state["to_client"] + len(data) >= cut:
                    c.sendall(data[: cut - state["to_client"]])
                    break
                c.sendall(data)
                state["to_client"] += len(data)
        except OSError:
            pass
        finally:
            _close(c)
            _close(u)

    def stop(self) -> None:
        """Stop accepting (open connections end with their peers)."""
        self._stop = True
        _close(self._srv)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
