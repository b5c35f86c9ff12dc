"""C{/containers/{id}/exec} and C{/exec/...}: exec sessions (layer: api)."""

from __future__ import annotations

import base64
from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from pyd.api.base import api_version, lean, make_app, role
from pyd.api.hijack import FramedSink, hijack, stream_content_type
from pyd.api.visibility import visibility
from pyd.api.wire import json_body, read_json_object, resize_size
from pyd.core.errors import InvalidParameter, NotFound
from pyd.engine.exec import ExecConfig, ExecError, ExecService, ExecSession
from pyd.engine.spec import schema
from pyd.engine.spec.gojson import decode
from pyd.engine.streams import STDOUT, key_bytes


def _strs(body: dict[str, Any], key: str) -> tuple[str, ...]:
    value = body.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"invalid {key}: expected a list of strings")
    return tuple(value)


def _console_size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and v >= 0 for v in value)
    ):
        raise InvalidParameter("the ConsoleSize must be an array of two non-negative integers")
    if value == [0, 0]:
        return None
    return value[0], value[1]


def exec_config(body: dict[str, Any]) -> ExecConfig:
    """The exec create body, validated."""
    keys = body.get("DetachKeys")
    return ExecConfig(
        cmd=_strs(body, "Cmd"),
        env=_strs(body, "Env"),
        user=str(body.get("User") or ""),
        working_dir=str(body.get("WorkingDir") or ""),
        tty=bool(body.get("Tty")),
        attach_stdin=bool(body.get("AttachStdin")),
        attach_stdout=bool(body.get("AttachStdout")),
        attach_stderr=bool(body.get("AttachStderr")),
        privileged=bool(body.get("Privileged")),
        detach_keys=str(keys) if keys else None,
        console_size=_console_size(body.get("ConsoleSize")),
    )


def exec_json(s: ExecSession) -> dict[str, Any]:
    """C{GET /exec/{id}/json} in dockerd's shape."""
    cmd = list(s.config.cmd)
    return {
        "ID": s.id,
        "Running": s.running,
        "ExitCode": s.exit_code,
        "ProcessConfig": {
            "tty": s.config.tty,
            "entrypoint": cmd[0] if cmd else "",
            "arguments": cmd[1:],
            "privileged": s.config.privileged,
            "user": s.config.user,
        },
        "OpenStdin": s.config.attach_stdin,
        "OpenStderr": s.config.attach_stderr,
        "OpenStdout": s.config.attach_stdout,
        "CanRemove": False,
        "ContainerID": s.container_id,
        # Go's []byte: the parsed sequence, base64 in JSON ("" when none was given).
        "DetachKeys": base64.b64encode(
            key_bytes(s.config.detach_keys) or b"" if s.config.detach_keys else b""
        ).decode(),
        "Pid": s.pid,
    }


class ExecRouter:
    """Exec create (under C{/containers}) and the C{/exec} endpoints."""

    app = make_app()
    prefixes = ("exec", "containers")

    def __init__(self, execs: ExecService) -> None:
        self._execs = execs

    @property
    def execs(self) -> ExecService:
        """The exec service (the authorization rules look sessions up)."""
        return self._execs

    def resource(self) -> IResource:
        """The Klein resource."""
        return self.app.resource()  # type: ignore[no-any-return]  # Klein's resource() is untyped

    @app.route("/containers/<ref>/exec", methods=["POST"])
    @role("operator")
    async def create(self, request: IRequest, ref: str) -> bytes:
        """Register an exec; 201 C{{"Id": ...}}."""
        # Go's typed decoding (container.ExecOptions): a mistyped field is dockerd's 400
        body = decode(read_json_object(request), schema.EXEC_OPTIONS)
        session = await self._execs.create(ref, exec_config(body))
        return json_body(request, {"Id": session.id}, 201)

    @app.route("/exec/<exec_id>/json", methods=["GET"])
    @role("viewer")
    @lean
    async def inspect(self, request: IRequest, exec_id: str) -> bytes:
        """The session's state; C{ExitCode} is what C{docker exec} exits with. An exec into a
        container the caller may not see into is no such exec for them (L{visibility})."""
        session = self._execs.get(exec_id)
        v = visibility(request)
        if v is not None and await v.hides_id(session.container_id):
            raise NotFound(f"No such exec instance: {exec_id}")
        return json_body(request, exec_json(session))

    @app.route("/exec/<exec_id>/resize", methods=["POST"])
    @role("operator")
    async def resize(self, request: IRequest, exec_id: str) -> bytes:
        """Resize the exec's TTY."""
        h, w = resize_size(request)
        await self._execs.resize(exec_id, h, w)
        request.setResponseCode(200)
        return b""

    @app.route("/exec/<exec_id>/start", methods=["POST"])
    @role("operator")
    async def start(self, request: Any, exec_id: str) -> bytes | None:
        """Start it: detached (200, no body) or on the hijacked connection."""
        body = decode(read_json_object(request, required=False), schema.EXEC_START_OPTIONS)
        detach = bool(body.get("Detach"))
        tty_opt = body.get("Tty")
        console = _console_size(body.get("ConsoleSize"))
        session = self._execs.check_startable(exec_id)
        # As dockerd: the process runs on a terminal when the exec was *created* with Tty; the
        # start's Tty only chooses the stream's framing (docker-py sends Tty=false on start for
        # an exec created with tty=True, and expects the terminal's "\r\n" in stdout frames).
        raw = session.config.tty if tty_opt is None else bool(tty_opt)
        if detach:
            await self._execs.start(exec_id, None, None, console)
            request.setResponseCode(200)
            return b""
        io = self._execs.new_io(session)
        stream = hijack(request, stream_content_type(raw, api_version(request)))
        sink = FramedSink(stream, framed=not raw)
        stream.set_input(io.stdin, io.stdin_eof)
        stream.closed.addCallback(lambda _: io.client_gone())
        io.bind(sink)
        try:
            await self._execs.start(exec_id, io, None, console)
        except ExecError as e:
            # After the 101 the only way to report is in the stream, as dockerd does.
            sink.output(STDOUT, (str(e) + "\r\n").encode())
            sink.end()
        return None
