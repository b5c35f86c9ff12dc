"""The streaming side of C{/containers/{id}/...}: attach, resize, top, stats, archive, changes,
export (layer: api). The lifecycle routes live in L{pyd.api.containers}; the root sends each
request to whichever router's routes match.
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from pyd.api.base import api_version, make_app
from pyd.api.hijack import FramedSink, hijack, stream_content_type
from pyd.api.wire import qbool, qint, qstr
from pyd.core.errors import Unsupported
from pyd.engine.streams import AttachOptions, AttachService


class ContainerStreamsRouter:
    """Attach and friends."""

    app = make_app()
    prefixes = ("containers",)

    def __init__(self, attach: AttachService) -> None:
        self._attach = attach

    def resource(self) -> IResource:
        """The Klein resource."""
        return self.app.resource()  # type: ignore[no-any-return]

    @app.route("/containers/<ref>/attach", methods=["POST"])
    async def attach(self, request: Any, ref: str) -> None:
        """Hijack the connection and join it to the container's stdio."""
        opts = AttachOptions(
            stdin=qbool(request, "stdin"),
            stdout=qbool(request, "stdout"),
            stderr=qbool(request, "stderr"),
            stream=qbool(request, "stream"),
            logs=qbool(request, "logs"),
            detach_keys=qstr(request, "detachKeys"),
        )
        target, session = await self._attach.attach(ref, opts)
        stream = hijack(request, stream_content_type(target.tty, api_version(request)))
        stream.set_input(session.stdin, session.stdin_eof)
        stream.closed.addCallback(lambda _: session.client_gone())
        session.bind(FramedSink(stream, framed=not target.tty))

    @app.route("/containers/<ref>/attach/ws", methods=["GET"])
    def attach_ws(self, request: IRequest, ref: str) -> bytes:
        """Websocket attach is not offered."""
        raise Unsupported("attach over websocket is not supported by pyd")

    @app.route("/containers/<ref>/resize", methods=["POST"])
    async def resize(self, request: IRequest, ref: str) -> bytes:
        """Resize the TTY (C{h}, C{w})."""
        await self._attach.resize(ref, qint(request, "h", 0) or 0, qint(request, "w", 0) or 0)
        request.setResponseCode(200)
        return b""
