"""The streaming side of C{/containers/{id}/...}: attach, resize, top, stats, archive, changes,
export (layer: api). The lifecycle routes live in L{pyd.api.containers}; the root sends each
request to whichever router's routes match.
"""

from __future__ import annotations

import base64
import json
from typing import IO, Any

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from pyd.api.base import api_version, make_app, role
from pyd.api.errors import status_for
from pyd.api.hijack import FramedSink, hijack, stream_content_type
from pyd.api.websocket import (
    OP_BINARY,
    OP_TEXT,
    HandshakeRefused,
    WebSocketStream,
    accept_head,
    ws_streams,
)
from pyd.api.wire import json_body, qbool, qstr, resize_size
from pyd.core.errors import InvalidParameter, PydError
from pyd.drivers.streams.archive import PathStat
from pyd.engine.archive import ArchiveService
from pyd.engine.streams import AttachOptions, AttachService

PATH_STAT_HEADER = b"X-Docker-Container-Path-Stat"


def path_stat_header(s: PathStat) -> bytes:
    """std base64 of the JSON C{container.PathStat}, as dockerd sends it."""
    doc = {
        "name": s.name,
        "size": s.size,
        "mode": s.mode,
        "mtime": s.mtime,
        "linkTarget": s.link_target,
    }
    return base64.b64encode(json.dumps(doc, separators=(",", ":")).encode())


async def send_file(request: Any, f: IO[bytes], content_type: bytes) -> None:
    """Stream an open file as the response body (with back-pressure), then close it."""
    from twisted.web.static import NoRangeStaticProducer

    request.setResponseCode(200)
    request.setHeader(b"Content-Type", content_type)
    producer = NoRangeStaticProducer(request, f)
    done = request.notifyFinish()
    producer.start()
    try:
        await done
    finally:
        f.close()


class ContainerStreamsRouter:
    """Attach and friends."""

    app = make_app()
    prefixes = ("containers",)

    def __init__(self, attach: AttachService, archive: ArchiveService) -> None:
        self._attach = attach
        self._archive = archive

    def resource(self) -> IResource:
        """The Klein resource."""
        return self.app.resource()  # type: ignore[no-any-return]  # Klein's resource() is untyped

    @app.route("/containers/<ref>/attach", methods=["POST"])
    @role("operator")
    async def attach(self, request: Any, ref: str) -> bytes | None:
        """Hijack the connection and join it to the container's stdio."""
        opts = AttachOptions(
            stdin=qbool(request, "stdin"),
            stdout=qbool(request, "stdout"),
            stderr=qbool(request, "stderr"),
            stream=qbool(request, "stream"),
            logs=qbool(request, "logs"),
            detach_keys=qstr(request, "detachKeys"),
        )
        try:
            target, session = await self._attach.attach(ref, opts)
        except PydError as e:
            # dockerd writes an attach error raw on the hijacked connection (moby
            # container_routes.go postContainersAttach): its text and CRLF, not a JSON body.
            request.setResponseCode(status_for(e))
            request.setHeader(b"Content-Type", b"application/vnd.docker.raw-stream")
            return e.message.encode() + b"\r\n"
        stream = hijack(request, stream_content_type(target.tty, api_version(request)))
        stream.set_input(session.stdin, session.stdin_eof)
        stream.closed.addCallback(lambda _: session.client_gone())
        session.bind(FramedSink(stream, framed=not target.tty))
        return None

    @app.route("/containers/<ref>/attach/ws", methods=["GET"])
    @role("operator")
    async def attach_ws(self, request: Any, ref: str) -> bytes | None:
        """Join a websocket to the container's stdio (L{pyd.api.websocket})."""
        stdin, stdout, stderr = ws_streams(request)
        opts = AttachOptions(
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            stream=qbool(request, "stream"),
            logs=qbool(request, "logs"),
            detach_keys=qstr(request, "detachKeys"),
        )
        _target, session = await self._attach.attach(ref, opts)
        try:
            head = accept_head(request)
        except HandshakeRefused as e:
            session.client_gone()
            refused = hijack(request, b"", head=e.head)
            refused.write(e.text.encode())
            refused.close()
            return None
        opcode = OP_BINARY if api_version(request) >= (1, 28) else OP_TEXT
        stream = hijack(request, b"", WebSocketStream(opcode), head=head)
        stream.set_input(session.stdin, session.stdin_eof)
        stream.closed.addCallback(lambda _: session.client_gone())
        session.bind(FramedSink(stream, framed=False))
        return None

    @app.route("/containers/<ref>/resize", methods=["POST"])
    @role("operator")
    async def resize(self, request: IRequest, ref: str) -> bytes:
        """Resize the TTY (C{h}, C{w})."""
        await self._attach.resize(ref, *resize_size(request))
        request.setResponseCode(200)
        return b""

    def _path(self, request: IRequest) -> str:
        path = qstr(request, "path")
        if not path:
            # moby api/server/httputils/form.go badParameterError, its missing space included
            raise InvalidParameter("bad parameter: pathcannot be empty")
        return path

    @app.route("/containers/<ref>/archive", methods=["HEAD"])
    @role("operator")
    async def archive_head(self, request: IRequest, ref: str) -> bytes:
        """The path's stat in C{X-Docker-Container-Path-Stat} (404: the CLI renames on copy)."""
        stat = await self._archive.stat(ref, self._path(request))
        request.setHeader(PATH_STAT_HEADER, path_stat_header(stat))
        request.setResponseCode(200)
        return b""

    @app.route("/containers/<ref>/archive", methods=["GET"])
    @role("operator")
    async def archive_get(self, request: IRequest, ref: str) -> None:
        """A tar of the path (rooted at its base name) plus the stat header."""
        stat, f = await self._archive.get(ref, self._path(request))
        request.setHeader(PATH_STAT_HEADER, path_stat_header(stat))
        await send_file(request, f, b"application/x-tar")

    @app.route("/containers/<ref>/archive", methods=["PUT"])
    @role("operator")
    async def archive_put(self, request: IRequest, ref: str) -> bytes:
        """Extract the uploaded tar into the directory C{path}."""
        content = request.content
        if content is None:
            raise InvalidParameter("no archive in the request body")
        await self._archive.put(
            ref,
            self._path(request),
            content,
            no_overwrite_dir_non_dir=qbool(request, "noOverwriteDirNonDir"),
            copy_uid_gid=qbool(request, "copyUIDGID"),
        )
        request.setResponseCode(200)
        return b""

    @app.route("/containers/<ref>/export", methods=["GET"])
    @role("operator")
    async def export(self, request: IRequest, ref: str) -> None:
        """The root filesystem as a tar."""
        f = await self._archive.export(ref)
        await send_file(request, f, b"application/x-tar")

    @app.route("/containers/<ref>/changes", methods=["GET"])
    @role("viewer")
    async def changes(self, request: IRequest, ref: str) -> bytes:
        """C{docker diff}: C{[{Path, Kind}]}."""
        changes = await self._archive.changes(ref)
        return json_body(request, [{"Path": c.path, "Kind": c.kind} for c in changes])
