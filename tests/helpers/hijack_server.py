"""A tiny pyd-style API with one hijacking route, served on a Unix socket by a real reactor.

Run as C{python -m tests.helpers.hijack_server SOCKET}; used by tests/component/test_hijack.py so
that the test process itself stays reactor-free and talks over a real socket.

C{POST /vX.Y/echo/start?tty=0}: reads a JSON body, hijacks, echoes each input chunk upper-cased
(as one stdcopy stdout frame unless tty=1), and on half-close writes C{EOF}, then C{after-eof}
0.2 s later, then closes.
"""

from __future__ import annotations

import sys

from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from pyd.api.base import api_version, make_app
from pyd.api.hijack import hijack, stream_content_type
from pyd.api.root import ApiRoot, ApiSite
from pyd.api.streams import frame
from pyd.api.wire import qbool, read_json_object


class EchoRouter:
    """One route that takes the connection over."""

    app = make_app()
    prefixes = ("echo",)

    def __init__(self, reactor: IReactorTime) -> None:
        self._reactor = reactor

    def resource(self) -> IResource:
        return self.app.resource()  # type: ignore[no-any-return]  # Klein's resource() is untyped

    @app.route("/echo/start", methods=["POST"])
    async def start(self, request: IRequest) -> None:
        body = read_json_object(request, required=False)
        tty = qbool(request, "tty")
        stream = hijack(request, stream_content_type(tty, api_version(request)))

        def out(data: bytes) -> bytes:
            return data if tty else frame(1, data)

        stream.write(out(b"hello " + str(sorted(body)).encode()))

        def on_eof() -> None:
            stream.write(out(b"EOF"))
            self._reactor.callLater(0.2, lambda: (stream.write(out(b"after-eof")), stream.close()))

        stream.set_input(lambda data: stream.write(out(data.upper())), on_eof)
        await stream.closed


def main(sock: str) -> None:
    from twisted.internet import reactor

    site = ApiSite(ApiRoot([EchoRouter(reactor)]))
    UNIXServerEndpoint(reactor, sock).listen(site)
    print("ready", flush=True)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1])
