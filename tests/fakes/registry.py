"""An in-memory Distribution registry (the other end of the registry transport seam).

A small honest implementation of what L{pyd.drivers.registry.RegistryClient} asks of a registry:
the C{/v2/} ping, blob HEAD/GET, monolithic and chunked uploads with digest checks,
cross-repository mounts, manifests by tag and digest, tag lists, with docker-registry's
statuses, headers and error codes. tests/contract/test_registry_transport.py runs one suite
against it and against Debian's docker-registry, so what the fake answers is what a registry
answers. Served by a L{twisted.web.server.Site} (on loopback in tests).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twisted.web.resource import Resource
from twisted.web.server import Request

_NAME = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_ROUTES = [
    (re.compile(rf"^/v2/({_NAME})/blobs/uploads/([0-9a-f-]+)$"), "upload"),
    (re.compile(rf"^/v2/({_NAME})/blobs/uploads/$"), "start"),
    (re.compile(rf"^/v2/({_NAME})/blobs/(sha256:[0-9a-f]{{64}})$"), "blob"),
    (re.compile(rf"^/v2/({_NAME})/manifests/([A-Za-z0-9_.:-]+)$"), "manifest"),
    (re.compile(rf"^/v2/({_NAME})/tags/list$"), "tags"),
]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry(Resource):
    """Blobs by repository, manifests by repository and reference, uploads in progress."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.blobs: dict[str, bytes] = {}  # digest -> bytes (content-addressed, shared)
        self.links: dict[str, set[str]] = {}  # repository -> digests it holds
        self.manifests: dict[str, dict[str, tuple[str, bytes]]] = {}  # repo -> ref -> (type, data)
        self.uploads: dict[str, tuple[str, bytearray]] = {}  # uuid -> (repository, data)

    def render(self, request: Request) -> bytes:
        path = urlsplit(request.uri.decode()).path
        method = request.method.decode()
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.uri.decode()).query).items()}
        request.setHeader(b"Docker-Distribution-API-Version", b"registry/2.0")
        if path == "/v2/":
            return self._json(request, 200, {})
        for pattern, kind in _ROUTES:
            m = pattern.match(path)
            if m:
                handler = getattr(self, f"_{kind}")
                out: bytes = handler(request, method, query, *m.groups())
                return b"" if method == "HEAD" else out
        return self._error(request, 404, "NAME_UNKNOWN", "repository name not known to registry")

    # -- answers --

    def _json(self, request: Request, code: int, doc: Any) -> bytes:
        body = json.dumps(doc).encode()
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        request.setHeader(b"Content-Length", str(len(body)).encode())
        return body

    def _error(self, request: Request, code: int, err: str, message: str) -> bytes:
        return self._json(request, code, {"errors": [{"code": err, "message": message}]})

    def _empty(self, request: Request, code: int, headers: dict[str, str]) -> bytes:
        request.setResponseCode(code)
        for k, v in headers.items():
            request.setHeader(k.encode(), v.encode())
        request.setHeader(b"Content-Length", b"0")
        return b""

    # -- blobs --

    def _blob(self, request: Request, method: str, query: dict[str, str], name: str,
              digest: str) -> bytes:  # fmt: skip
        if method not in ("GET", "HEAD"):
            return self._error(request, 405, "UNSUPPORTED", "The operation is unsupported.")
        if digest not in self.links.get(name, set()):
            return self._error(request, 404, "BLOB_UNKNOWN", "blob unknown to registry")
        data = self.blobs[digest]
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"application/octet-stream")
        request.setHeader(b"Content-Length", str(len(data)).encode())
        request.setHeader(b"Docker-Content-Digest", digest.encode())
        return data

    def _start(self, request: Request, method: str, query: dict[str, str], name: str) -> bytes:
        if method != "POST":
            return self._error(request, 405, "UNSUPPORTED", "The operation is unsupported.")
        mount, source = query.get("mount"), query.get("from")
        if mount and source and mount in self.links.get(source, set()):
            self.links.setdefault(name, set()).add(mount)
            return self._empty(
                request,
                201,
                {"Location": f"/v2/{name}/blobs/{mount}", "Docker-Content-Digest": mount},
            )
        upload = str(uuid.uuid4())
        self.uploads[upload] = (name, bytearray())
        return self._empty(
            request,
            202,
            {
                "Location": f"/v2/{name}/blobs/uploads/{upload}",
                "Docker-Upload-UUID": upload,
                "Range": "0-0",
            },
        )

    def _upload(self, request: Request, method: str, query: dict[str, str], name: str,
                upload: str) -> bytes:  # fmt: skip
        found = self.uploads.get(upload)
        if found is None or found[0] != name:
            return self._error(
                request, 404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"
            )
        data = found[1]
        assert request.content is not None
        data += request.content.read()
        if method == "DELETE":
            del self.uploads[upload]
            return self._empty(request, 204, {})
        if method == "PATCH":
            return self._empty(
                request,
                202,
                {
                    "Location": f"/v2/{name}/blobs/uploads/{upload}",
                    "Docker-Upload-UUID": upload,
                    "Range": f"0-{max(len(data) - 1, 0)}",
                },
            )
        if method != "PUT":
            return self._error(request, 405, "UNSUPPORTED", "The operation is unsupported.")
        digest = query.get("digest", "")
        del self.uploads[upload]
        if _digest(bytes(data)) != digest:
            return self._error(
                request, 400, "DIGEST_INVALID", "provided digest did not match uploaded content"
            )
        self.blobs[digest] = bytes(data)
        self.links.setdefault(name, set()).add(digest)
        return self._empty(
            request,
            201,
            {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest},
        )

    # -- manifests and tags --

    def _manifest(self, request: Request, method: str, query: dict[str, str], name: str,
                  ref: str) -> bytes:  # fmt: skip
        repo = self.manifests.setdefault(name, {}) if method == "PUT" else self.manifests.get(name)
        if method == "PUT":
            assert request.content is not None and repo is not None
            data = request.content.read()
            ctype = (request.getHeader(b"content-type") or b"").decode()
            digest = _digest(data)
            doc = json.loads(data)
            for blob in [doc.get("config") or {}, *(doc.get("layers") or [])]:
                if blob and blob.get("digest") not in self.links.get(name, set()):
                    return self._error(
                        request, 400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry"
                    )
            repo[digest] = (ctype, data)
            if not ref.startswith("sha256:"):
                repo[ref] = (ctype, data)
            return self._empty(
                request,
                201,
                {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest},
            )
        if method not in ("GET", "HEAD"):
            return self._error(request, 405, "UNSUPPORTED", "The operation is unsupported.")
        if repo is None or ref not in repo:
            return self._error(request, 404, "MANIFEST_UNKNOWN", "manifest unknown")
        ctype, data = repo[ref]
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", ctype.encode())
        request.setHeader(b"Content-Length", str(len(data)).encode())
        request.setHeader(b"Docker-Content-Digest", _digest(data).encode())
        return data

    def _tags(self, request: Request, method: str, query: dict[str, str], name: str) -> bytes:
        repo = self.manifests.get(name)
        if repo is None:
            return self._error(
                request, 404, "NAME_UNKNOWN", "repository name not known to registry"
            )
        tags = sorted(r for r in repo if not r.startswith("sha256:"))
        return self._json(request, 200, {"name": name, "tags": tags})
