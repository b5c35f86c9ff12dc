"""The lean door (pyd/api/lean.py) answers byte for byte as the full twisted.web path: the same
requests sent to a site with the lean door and to one without it (the real volume router and
engine on SQLite in memory, the real authorization guard) get the same raw response, the same
connection state and the same observer calls; what the lean door must not take (pipelined or
split reads, chunked bodies, HTTP/1.0, routes not marked lean) takes the full path."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from twisted.internet import task
from twisted.internet.address import UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from pyd.api import lean as lean_module
from pyd.api.authz import Authorizer
from pyd.api.base import lean, make_app, role
from pyd.api.identity import Policy
from pyd.api.root import ApiRequest, ApiRoot, ApiSite
from pyd.api.system import SystemRouter
from pyd.api.volumes import VolumesDiskUsage, VolumesRouter
from pyd.api.wire import json_body
from pyd.config import DaemonConfig
from pyd.engine.events import EventService
from pyd.engine.spec import mount_request
from pyd.engine.system import HostFacts, SystemService
from pyd.engine.volumes import VolumeService
from pyd.state.events import EventRepository
from pyd.state.volumes import VolumeRepository
from tests.helpers.memdb import memory_db
from tests.helpers.sync import run_sync
from tests.unit.test_volumes_engine import FakeMountDriver, add_container

_DATE = re.compile(rb"Date: [^\r]*\r\n")
_CREATED = re.compile(rb'"CreatedAt":"[^"]*"')


def _normal(raw: bytes) -> bytes:
    return _CREATED.sub(b'"CreatedAt":"X"', _DATE.sub(b"Date: X\r\n", raw))


class _Transport(StringTransport):
    """A connection's transport; C{tls}: a TLS one without a client certificate (the policy's
    default role applies, as for C{--tls} without C{--tlsverify})."""

    aborted = False
    declined_read = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.disconnecting = True


class _AcceptingTransport(_Transport):
    """A connection its port reads in the accepting turn (pyd.daemon.eager): the channel's
    timers wait for the end of that read (L{turn_over})."""

    start: Any = None

    def defer_timers(self, start: Any) -> bool:
        self.start = start
        return True

    def turn_over(self) -> None:
        start, self.start = self.start, None
        if start is not None:
            start()


class _Conn:
    """A connection with no transport yet (pyd.daemon.direct.RawConnection), as the site sees
    it: no socket to ask (the caller is admin, as on the full path's test transport)."""

    socket = None
    pyd_peercred = None
    answer = b""
    kept: bool | None = None

    def getPeer(self) -> Any:
        return UNIXAddress(None)

    def getHost(self) -> Any:
        return UNIXAddress(b"/run/pyd.sock")

    def done(self, answer: bytes, keep: bool) -> None:
        self.answer, self.kept = answer, keep


class _TLSTransport(_Transport):
    def getPeerCertificate(self) -> None:
        return None


def req(method: str, path: str, body: bytes | None = None, close: bool = True, **hdr: str) -> bytes:
    """One request as the docker CLI sends it."""
    lines = [f"{method} {path} HTTP/1.1", "Host: api.moby.localhost", "User-Agent: Docker-Client"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    if close:
        lines.append("Connection: close")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in hdr.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def _create(name: str, **extra: Any) -> bytes:
    return req("POST", "/v1.41/volumes/create", json.dumps({"Name": name, **extra}).encode())


class _Slow:
    """A lean route that answers later (or is cancelled when its client goes away)."""

    prefixes = ("slow",)
    app = make_app()

    def __init__(self) -> None:
        self.pending: list[Deferred[None]] = []
        self.cancelled = 0

    def resource(self) -> Any:
        return self.app.resource()

    @app.route("/slow/<string:ref>", methods=["GET"])
    @role("viewer")
    @lean
    async def get(self, request: Any, ref: str) -> bytes:
        d: Deferred[None] = Deferred(lambda _: self._cancel())
        self.pending.append(d)
        await d
        return json_body(request, {"Ref": ref})

    @app.route("/slow/<string:ref>/plain", methods=["GET"])
    @role("viewer")
    async def plain(self, request: Any, ref: str) -> bytes:
        """Not marked lean: the full path serves it."""
        return json_body(request, {"Plain": ref})

    def _cancel(self) -> None:
        self.cancelled += 1


class LeanDoorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-lean-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.clock = task.Clock()
        self.db = memory_db(alembic=True)
        events = EventService(EventRepository(self.db), self.clock)
        self.svc = VolumeService(VolumeRepository(self.db), FakeMountDriver(self.tmp), events)
        host = HostFacts("6.1", "Debian", "x86_64", 2, 1 << 30, "1", "h")
        system = SystemService("ID1", host, DaemonConfig(data_root=self.tmp))
        system.add_contributor(VolumesDiskUsage(self.svc))
        self.slow = _Slow()
        self.routers = [
            SystemRouter(system, events, self.clock),
            VolumesRouter(self.svc),
            self.slow,
        ]
        self.seen: list[tuple[str, str, int]] = []
        self.served: list[bool] = []
        run_sync(self.svc.create("vol1", "local", None, {"a": "b"}, None))
        run_sync(self.svc.create("vol.2", "local", None, None, None))

    def _site(self, lean_on: bool, policy: Policy | None = None) -> ApiSite:
        site = ApiSite(
            ApiRoot(self.routers, guard=Authorizer(policy or Policy())),
            observers=[lambda p, m, c, _d: self.seen.append((p, m, c))],
            header_timeout=10.0,
            reactor=self.clock,
            timeout=300,
        )
        site.lean = lean_on
        serve = site.lean_request

        def spy(channel: Any, data: bytes) -> bool:
            took = serve(channel, data)
            if lean_on:
                self.served.append(took)
            return took

        site.lean_request = spy  # type: ignore[method-assign]  # counts what the lean door took
        return site

    def _exchange(
        self,
        site: ApiSite,
        chunks: list[bytes],
        tls: bool = False,
        accepting: bool = False,
        declined: bool = False,
    ) -> tuple[bytes, _Transport, Any]:
        ch: Any = site.buildProtocol(None)
        t = _TLSTransport() if tls else _AcceptingTransport() if accepting else _Transport()
        ch.makeConnection(t)
        for i, c in enumerate(chunks):
            t.declined_read = declined and i == 0
            ch.dataReceived(c)
            t.declined_read = False
            if i == 0 and isinstance(t, _AcceptingTransport) and t.disconnecting:
                ch.connectionLost(Exception("closed"))  # as the transport reports it
                t.turn_over()
        if isinstance(t, _AcceptingTransport):
            t.turn_over()  # the accepting turn's read (the first chunk, if any) is handled
        return _normal(t.value()), t, ch

    def _direct(self, site: ApiSite, chunks: list[bytes]) -> tuple[bytes, bool]:
        """The chunks sent on a connection the Unix port's direct door offers its first read
        (pyd.daemon.direct): answered on the bare connection, then (kept alive) handed to a
        channel for the rest; or declined, and the channel has it all (not offering that read
        to its own lean door again, as the port's transport tells it). Returns the answer and
        whether the connection was closed."""
        conn = _Conn()
        if not site.direct(conn, chunks[0]):
            out, t, _ = self._exchange(site, chunks, declined=True)
            return out, t.disconnecting
        self.assertIsNotNone(conn.kept, "answered later")
        if not conn.kept:
            return _normal(conn.answer), True
        rest, t, _ = self._exchange(site, chunks[1:]) if chunks[1:] else (b"", _Transport(), None)
        return _normal(conn.answer) + rest, t.disconnecting

    def _compare(
        self,
        chunks: list[bytes],
        prepare: Callable[[], None] = lambda: None,
        policy: Policy | None = None,
        tls: bool = False,
        lean_expected: bool | None = True,
    ) -> bytes:
        """Send C{chunks} over a fresh connection to the lean site and to the full one; the
        same bytes, connection state and observer calls. Returns the (normalised) answer."""
        prepare()
        self.seen.clear()
        self.served.clear()
        lean_out, lean_t, _ = self._exchange(self._site(True, policy), chunks, tls)
        lean_seen, served = list(self.seen), list(self.served)
        prepare()
        self.seen.clear()
        full_out, full_t, _ = self._exchange(self._site(False, policy), chunks, tls)
        self.assertEqual(lean_out, full_out, chunks)
        self.assertTrue(not lean_out or lean_out.startswith(b"HTTP/1."), (chunks, lean_out))
        self.assertEqual(lean_t.disconnecting, full_t.disconnecting, chunks)
        self.assertEqual(lean_seen, self.seen, chunks)
        if lean_expected is not None:
            self.assertEqual(any(served), lean_expected, (chunks, served))
        if not tls:  # the port's direct door is the Unix socket's
            prepare()
            full_seen, self.seen[:] = list(self.seen), []
            direct_out, closed = self._direct(self._site(True, policy), chunks)
            self.assertEqual(direct_out, full_out, chunks)
            self.assertEqual(closed, full_t.disconnecting, chunks)
            self.assertEqual(self.seen, full_seen, chunks)
        return lean_out

    def test_volume_routes_answer_as_the_full_path(self) -> None:
        """Each volume route, OK and refused, versioned or not, HEAD, queries, encoded names,
        close and keep-alive: the lean door takes it and answers the same bytes."""
        corpus = [
            req("GET", "/v1.41/volumes/vol1"),
            req("GET", "/volumes/vol1"),
            req("GET", "/v1.24/volumes/vol1"),
            req("GET", "/v1.50/volumes/vol1", close=False),
            req("HEAD", "/v1.41/volumes/vol1"),
            req("HEAD", "/v1.41/volumes/nope"),
            req("GET", "/v1.41/volumes/nope"),
            req("GET", "/v1.41/volumes/vol%2E2"),
            req("GET", "/v1.41/volumes/vol%2e2?x=1&x=2"),
            req("GET", "/v1.41/volumes"),
            req("GET", "/v1.41/volumes", close=False),
            req("GET", "/v1.41/volumes?filters=" + '{"label":{"a=b":true}}'.replace('"', "%22")),
            req("GET", "/v1.41/volumes?filters=" + '{"name":["vol"]}'.replace('"', "%22")),
            req("GET", "/v1.41/volumes?filters=notjson"),
            req("GET", "/v1.41/volumes?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D"),
            req("GET", "/v1.99/volumes/vol1"),
            req("GET", "/v1.12/volumes/vol1"),
            req("GET", "/v1.41/_ping"),
            req("HEAD", "/_ping"),
            req("POST", "/_ping", b""),
            req("GET", "/"),
            req("GET", "/v1.41/"),
            req("DELETE", "/v1.41/volumes/nope"),
            req("DELETE", "/v1.41/volumes/nope?force=1", close=False),
            req("PUT", "/v1.41/volumes/vol1", b"{}"),
            req("POST", "/v1.41/volumes/create", b"{not json"),
            req("POST", "/v1.41/volumes/create", b""),
            req("POST", "/v1.41/volumes/create", b"[]"),
            req("POST", "/v1.41/volumes/create", b'{"Name": 3}'),
            req("POST", "/v1.41/volumes/create", b'{"Labels": {"a": 1}}'),
            req("POST", "/v1.41/volumes/create", b'{"Name": "bad/name"}'),
            req("POST", "/v1.41/volumes/create", b'{"Name":"x"}', Content_Type="text/plain"),
            _create("vol1"),
            req("GET", "/v1.41/volumes/vol1", X_Extra="a", X_Other="b"),
            req("GET", "/v1.41/volumes/vol1", Connection="keep-alive"),
            req("GET", "/v1.41/volumes/vol1", close=False, Connection="Keep-Alive close"),
            req("GET", "/v1.41/version"),
            req("GET", "/version"),
            req("HEAD", "/v1.43/info"),
            req("GET", "/v1.43/system/df?type=volume"),
            req("GET", "/v1.43/system/df?type=bogus"),
        ]
        for r in corpus:
            self._compare([r])

    def test_mutations_answer_as_the_full_path(self) -> None:
        """create (new), remove (present, in use) through both paths from the same state."""

        def absent() -> None:
            vols = run_sync(self.svc.list_volumes({}))
            if any(v.name == "fresh" for v in vols):
                run_sync(self.svc.remove("fresh", force=False))

        def present() -> None:
            absent()
            run_sync(self.svc.create("fresh", "local", None, None, None))

        out = self._compare([_create("fresh", Labels={"k": "v"})], absent)
        self.assertIn(b"HTTP/1.1 201 Created", out)
        out = self._compare([req("DELETE", "/v1.41/volumes/fresh")], present)
        self.assertIn(b"HTTP/1.1 204 No Content", out)

        def all_present() -> None:
            present()
            for name in ("vol1", "vol.2"):
                run_sync(self.svc.create(name, "local", None, None, None))

        self._compare([req("POST", "/v1.41/volumes/prune", b"")], all_present)
        cid = "c" * 64
        add_container(self.db, cid)
        run_sync(self.svc.resolve_mounts(cid, mount_request({"Binds": ["busy:/b"]}), []))
        out = self._compare([req("DELETE", "/v1.41/volumes/busy?force=true")])
        self.assertIn(b"HTTP/1.1 409 Conflict", out)

    def test_roles_over_tls(self) -> None:
        """A viewer's write is refused and an operator's read allowed, by the same guard."""
        viewer = Policy(default_role="viewer")
        out = self._compare([_create("nope")], policy=viewer, tls=True)
        self.assertIn(b"HTTP/1.1 403 Forbidden", out)
        out = self._compare([req("DELETE", "/volumes/vol1")], policy=viewer, tls=True)
        self.assertIn(b"HTTP/1.1 403 Forbidden", out)
        operator = Policy(default_role="operator")
        out = self._compare([req("GET", "/v1.41/volumes/vol1")], policy=operator, tls=True)
        self.assertIn(b"HTTP/1.1 200 OK", out)
        out = self._compare(
            [_create("tmpfs", DriverOpts={"type": "tmpfs", "device": "tmpfs"})],
            policy=operator,
            tls=True,
            prepare=lambda: None,
        )

    def test_what_the_lean_door_leaves_to_the_full_path(self) -> None:
        """Pipelined, split, chunked, HTTP/1.0, Expect, Upgrade, form bodies, folded or bad
        headers, unmarked routes: the full path has them, with the same answers."""
        two = req("GET", "/v1.41/volumes/vol1", close=False) + req("GET", "/v1.41/volumes")
        body = _create("split")
        cut = body.index(b"\r\n\r\n") + 6
        chunked = (
            b"POST /v1.41/volumes/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b'Connection: close\r\n\r\nb\r\n{"Name": 3}\r\n0\r\n\r\n'
        )
        cases: list[list[bytes]] = [
            [two],
            [body[:cut], body[cut:]],
            [chunked],
            [b"GET /v1.41/volumes/vol1 HTTP/1.0\r\nHost: x\r\n\r\n"],
            [req("POST", "/v1.41/volumes/create", b'{"Name": 3}', Expect="100-continue")],
            [req("GET", "/v1.41/volumes/vol1", Upgrade="h2c")],
            [
                b"POST /v1.41/volumes/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
                b"x-www-form-urlencoded\r\nContent-Length: 6\r\nConnection: close\r\n\r\nName=f"
            ],
            [b"GET /v1.41/volumes/vol1 HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"],
            [b"GET /v1.41/volumes/vol1 HTTP/1.1\r\nBad Name: x\r\n\r\n"],
            [
                b"GET /v1.41/volumes/vol1 HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"
            ],
            [b"GET /v1.41/volumes/vol1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc"],
            [b"GET /v1.41/volumes/vol1 HTTP/1.1\r\nContent-Length: x\r\n\r\n"],
            [b"get /v1.41/volumes/vol1 HTTP/1.1\r\n\r\n"],
            [b"\r\nGET /v1.41/volumes/vol1 HTTP/1.1\r\n\r\n"],
            [req("GET", "/v1.41/slow/x/plain")],
            [req("GET", "/v1.41/events")],
            [req("GET", "/v1.41/volumesx")],
            [req("POST", "/v1.41/volumes/vol1")],
            [req("GET", "/v1.41/volumes/vol1/extra")],
            [req("GET", "/v1.41/volumes//vol1")],
        ]
        for chunks in cases:
            self._compare(chunks, lean_expected=False)

    def test_keep_alive_then_more(self) -> None:
        """Lean requests one after another on a kept-alive connection, a full-path one between
        them: each answered, and the connection still open."""
        chunks = [
            req("GET", "/v1.41/volumes/vol1", close=False),
            req("GET", "/v1.41/slow/x/plain", close=False),
            req("GET", "/v1.41/volumes", close=False),
            req("DELETE", "/v1.41/volumes/nope"),
        ]
        out = self._compare(chunks, lean_expected=True)
        self.assertEqual(out.count(b"HTTP/1.1 "), 4)

    def test_answer_completed_later_and_cancelled(self) -> None:
        """A lean handler that waits answers when it is done (and the connection is sent to
        and closed then); one whose client goes away is cancelled."""
        site = self._site(True)
        out, t, ch = self._exchange(site, [req("GET", "/slow/a")])
        self.assertEqual(out, b"")
        self.assertEqual(self.served, [True])
        self.slow.pending.pop().callback(None)
        self.assertIn(b'{"Ref":"a"}', t.value())
        self.assertTrue(t.disconnecting)
        self.assertEqual(self.seen[-1], ("/slow/a", "GET", 200))

        out, t, ch = self._exchange(site, [req("GET", "/slow/b")])
        ch.connectionLost(Exception("gone"))
        self.assertEqual(self.slow.cancelled, 1)
        self.assertEqual(t.value(), b"")

    def test_no_timer_left_for_an_answered_close(self) -> None:
        """A connection whose first read is a whole lean request answered with
        C{Connection: close} leaves no header deadline or idle timer behind; a kept-alive
        one keeps its idle timer, and a partial request its header deadline."""
        site = self._site(True)
        _, t, _ = self._exchange(site, [req("GET", "/v1.41/volumes/vol1")], accepting=True)
        self.assertTrue(t.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [], "timers made")
        _, t, _ = self._exchange(site, [req("GET", "/_ping")], accepting=True)
        self.assertEqual(self.clock.getDelayedCalls(), [], "timers made")
        _, t, _ = self._exchange(
            site, [req("GET", "/v1.41/volumes/vol1", close=False)], accepting=True
        )
        self.assertFalse(t.disconnecting)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # idle only
        self.clock.advance(301)
        self.assertTrue(t.disconnecting)  # twisted.web's idle timeout
        _, t, _ = self._exchange(site, [b"GET /v1.41/volumes/vol1 HTTP/1.1\r\n"], accepting=True)
        self.clock.advance(11)
        self.assertTrue(t.aborted)  # the header deadline
        _, t, _ = self._exchange(site, [], accepting=True)
        self.clock.advance(11)
        self.assertTrue(t.aborted)  # nothing sent: the header deadline
        before = set(self.clock.getDelayedCalls())
        _, t, _ = self._exchange(site, [req("GET", "/slow/c")], accepting=True)
        self.assertEqual(set(self.clock.getDelayedCalls()), before)  # answering: neither timer
        self.slow.pending.pop().callback(None)
        self.assertTrue(t.disconnecting)

    def test_a_failure_in_the_door_leaves_the_read_to_the_full_path(self) -> None:
        """A bug in the door (here: the route check raising) is logged and the full path
        serves the read as it would have."""

        def boom(_route: Any) -> bool:
            raise RuntimeError("a bug")

        self.patch(lean_module, "is_lean", boom)
        self._compare([req("GET", "/v1.41/volumes/vol1")], lean_expected=False)
        # once by the channel's door, once by the port's (whose declined read the channel
        # then does not offer to its own door again)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


class ParseTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """The parse keeps header order and values as twisted.web stores them."""
        p = lean_module.parse(
            b"GET /a?b=1 HTTP/1.1\r\nhost: x\r\nX-A:  1 \r\nx-a: 2\r\nContent-Length: 0\r\n\r\n"
        )
        assert p is not None
        self.assertEqual((p.method, p.uri, p.body), (b"GET", b"/a?b=1", b""))
        self.assertEqual(
            p.headers, {b"Host": [b"x"], b"X-A": [b"1", b"2"], b"Content-Length": [b"0"]}
        )
        self.assertIsNone(lean_module.parse(b"GET /a HTTP/1.1\r\nHost: x\r\n"))

    def test_request_state_as_twisted_makes_it(self) -> None:
        """A lean request has the attributes twisted.web's request has once constructed (the
        two addresses read when asked), so that twisted.web's methods find what they use."""
        # a clock of its own: the channel's idle timer must not be left on the global reactor
        site = ApiSite(ApiRoot([]), reactor=task.Clock())
        ch: Any = site.buildProtocol(None)
        ch.makeConnection(_Transport())
        self.addCleanup(ch.connectionLost, Exception("test over"))
        parsed = lean_module.parse(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert parsed is not None
        lean_req = lean_module.LeanRequest(ch, parsed)
        full = ApiRequest(ch)
        self.assertEqual(
            set(vars(lean_req)) - {"method", "uri", "clientproto", "args", "path", "content"},
            set(vars(full)) - {"client", "host"},
        )
        self.assertEqual((lean_req.client, lean_req.host), (full.client, full.host))
