"""The API fuzzed from the official spec: bad input costs a 4xx with a plain message, never a 5xx,
and stores nothing that breaks a list.

For every operation of API 1.50 (tests/data/engine_api_v1.50_fuzz.json, extracted from the spec by
tests/helpers/apispec.py) that pyd's routers serve, Hypothesis generates requests
(tests/helpers/fuzzgen.py): path parameters naming objects the test made and missing ones, odd
strings; query parameters by their spec type and mutated (wrong types, non-ASCII digits, huge
numbers, empty); JSON bodies from the schema, mutated at every level (wrong types, nulls, extra
fields, another JSON type for the whole body, invalid UTF-8, truncated); raw bodies (tar streams,
bytes). They run in process against the whole daemon (L{InProcessDaemon}: the real site, engine
and SQLite, fake kernel drivers). After each request:
  - the status is not 5xx;
  - a 4xx has a JSON body C{{"message": str}} naming no Python exception class, no errno text and
    no host path (the data root, exec root, a temporary directory);
  - C{GET /containers/json?all=1}, C{/images/json}, C{/networks} and C{/volumes} answer 200.

Derandomized with a small example count by default; C{PYD_FUZZ_EXAMPLES=N} runs N examples per
operation (and C{PYD_FUZZ_SEED=S} randomizes with seed S) for a long run.

The fake drivers run no helper process: the routes that need one (archive, export, top) are
fuzzed up to it, and the fake runner's refusal (a 500 with its own text) is a 500 allowed; they are
fuzzed against a real daemon and its helpers by tests/e2e/test_fuzz_helpers.py. No
registry can be reached: every TCP connection is refused, and dockerd's 500 for an unreachable
registry (C{Get "https://...": dial tcp ...: connection refused}) is the other.

Operations skipped, and why:
  - C{POST /containers/{id}/attach}, C{GET /containers/{id}/attach/ws}, C{POST /exec/{id}/start}:
    they take over the connection (hijack) once past their checks, which the in-memory transport
    cannot hand over; their refusals before the hijack are fuzzed through the same parsers by the
    other routes (query and JSON readers) and tested in tests/component/test_hijack.py.
  - C{POST /session}: not served (pyd has no BuildKit session endpoint; 404).
  - C{GET /_ping}, C{HEAD /_ping}: no parameters to fuzz (covered by tests/component/test_api_root.py).
  - the operations pyd's routers do not define (listed by L{FuzzCoverageTests.test_served}):
    they answer the root's 404.
"""

from __future__ import annotations

import json
import os
import re
import signal
from typing import Any, ClassVar

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import apispec
from tests.helpers.fuzzgen import (
    Request,
    SchemaStrategies,
    encode_query,
    encode_segment,
    json_body_bytes,
    odd_text,
    query_value,
    raw_bodies,
)
from tests.helpers.images import DEFAULT_TAG, busybox_image_tar
from tests.helpers.leaks import leaks
from tests.helpers.wiring import NO_PROCESS, InProcessDaemon, decode_body

EXAMPLES = int(os.environ.get("PYD_FUZZ_EXAMPLES", "0") or 0)
SEED = os.environ.get("PYD_FUZZ_SEED")

SKIPPED = {
    ("POST", "/containers/{id}/attach"): "hijacked connection",
    ("GET", "/containers/{id}/attach/ws"): "hijacked connection",
    ("POST", "/exec/{id}/start"): "hijacked connection",
    ("GET", "/_ping"): "no parameters",
    ("HEAD", "/_ping"): "no parameters",
}

# Routes whose answer may be a stream that goes on (follow, stream, wait for an exit, a pull
# that waits on the network): a response still open after the clock has moved is cancelled.
STREAMING = {
    ("GET", "/containers/{id}/logs"),
    ("GET", "/containers/{id}/stats"),
    ("POST", "/containers/{id}/wait"),
    ("GET", "/events"),
    ("POST", "/images/create"),
    ("POST", "/images/{name}/push"),
    ("POST", "/build"),
    ("GET", "/containers/{id}/export"),
    ("GET", "/images/get"),
    ("GET", "/images/{name}/get"),
    ("POST", "/images/load"),
}

# The 5xx answers dockerd gives by design, not for bad input: swarm-mode endpoints outside a swarm
# (503, dockerd's texts), joining a swarm or installing a plugin (501: pyd has neither), a cluster
# volume update (503). Everything else must stay under 500.
DESIGNED_5XX = ("/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs", "/plugins")


def designed_5xx(method: str, template: str, code: int, body: Any) -> bool:
    """Whether C{code} is dockerd's own answer for the operation, whatever the input (a
    volume create with a C{ClusterVolumeSpec}: not a swarm manager)."""
    if code not in (501, 503):
        return False
    if template.startswith(DESIGNED_5XX) or (method, template) == ("PUT", "/volumes/{name}"):
        return True
    message = body.get("message", "") if isinstance(body, dict) else ""
    return template == "/volumes/create" and message.startswith("This node is not a swarm")


# Listed after every request: each must answer 200 (nothing malformed was stored).
LISTINGS = ("/containers/json?all=1", "/images/json", "/networks", "/volumes")

SPEC = apispec.load()
SCHEMAS = SchemaStrategies(SPEC["definitions"])


def operations() -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(method, path template, parameters) of every operation in the spec extract."""
    return [
        (m.upper(), p, op["parameters"])
        for p, ops in sorted(SPEC["paths"].items())
        for m, op in sorted(ops.items())
    ]


class FuzzDaemon:
    """One daemon for a test class, with the objects its requests name."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.case = case
        self.daemon = InProcessDaemon(prefix="pyd-t-fuzz-")
        # the containers end on SIGTERM: a stop or restart with t=-1 (wait as long as it takes,
        # as dockerd does) answers instead of waiting for ever
        self.daemon.runtime.fatal_signals[signal.SIGTERM] = 143
        case.successResultOf(self.daemon.start())
        self.http = self.daemon.stub()
        self.host_paths = [self.daemon.tmp, self.daemon.data_root, self.daemon.exec_root]
        built = busybox_image_tar(os.path.join(self.daemon.tmp, "bb.tar"))
        with open(built.path, "rb") as f:
            tar = f.read()
        code, _ = self.call(Request("POST", "/images/load?quiet=1", tar, "application/x-tar"))
        assert code == 200, code
        self.image_id = built.id
        self.ids: dict[str, str] = {}
        self.refused = 0
        self.ensure()

    def _refuse_connections(self) -> None:
        """Registries are out of reach: every TCP connection the daemon started (the memory
        reactor resolves every name to 127.0.0.1 and connects nowhere) is refused."""
        reactor = self.daemon.reactor
        while reactor.tcpClients:
            self.refused += 1
            factory = reactor.tcpClients.pop(0)[2]
            connector = reactor.connectors.pop(0)
            factory.clientConnectionFailed(
                connector, Failure(ConnectionRefusedError("Connection refused"))
            )

    def helpers_run(self) -> int:
        """How many helper processes the daemon asked for so far."""
        return sum(len(r.argvs) for r in self.daemon.runners)

    def close(self) -> None:
        d = self.daemon.stop()
        if d is not None:
            self.case.successResultOf(d)
        self.daemon.cleanup()

    def listings(self) -> dict[str, tuple[int | None, Any]]:
        """The four listings that must always answer 200, by path."""
        return {path: self.call(Request("GET", path)) for path in LISTINGS}

    def ensure(self, seen: dict[str, tuple[int | None, Any]] | None = None) -> None:
        """(Re)make the objects the generated requests name, if a request removed them (read
        from the listings C{seen} after the last request, when given)."""
        seen = seen or self.listings()

        def rows(path: str) -> list[Any]:
            code, body = seen[path]
            if code != 200:
                return []
            body = body.get("Volumes") if isinstance(body, dict) else body
            return body if isinstance(body, list) else []

        if not any(v.get("Name") == "fz-vol" for v in rows("/volumes")):
            self.call(Request("POST", "/volumes/create", b'{"Name":"fz-vol"}', "application/json"))
        net = next((n for n in rows("/networks") if n.get("Name") == "fz-net"), None)
        if net is None:
            _, net = self.call(
                Request("POST", "/networks/create", b'{"Name":"fz-net"}', "application/json")
            )
        if isinstance(net, dict):
            self.ids["network"] = str(net.get("Id", ""))
        if not any(DEFAULT_TAG in (i.get("RepoTags") or []) for i in rows("/images/json")):
            self.call(
                Request("POST", f"/images/{self.image_id}/tag?repo=pyd-test/busybox&tag=latest")
            )
        ctrs = {n: c for c in rows("/containers/json?all=1") for n in c.get("Names") or []}
        for name, start in (("fz-run", True), ("fz-stopped", False)):
            c = ctrs.get("/" + name)
            if c is None:
                self.ids.pop("exec", None) if start else None
                body = json.dumps({"Image": DEFAULT_TAG, "Cmd": ["sleep", "9"]}).encode()
                code, c = self.call(
                    Request("POST", f"/containers/create?name={name}", body, "application/json")
                )
                if code != 201:
                    continue
                c["State"] = "created"
            cid = str(c.get("Id", ""))
            self.ids[name] = cid
            if start and c.get("State") != "running":
                self.call(Request("POST", f"/containers/{cid}/unpause"))
                self.call(Request("POST", f"/containers/{cid}/start"))
        if "exec" not in self.ids:
            body = json.dumps({"Cmd": ["true"]}).encode()
            code, ex = self.call(
                Request("POST", "/containers/fz-run/exec", body, "application/json")
            )
            if code == 201:
                self.ids["exec"] = str(ex["Id"])

    def call(self, req: Request, streaming: bool = False) -> tuple[int | None, Any]:
        """Send C{req}; return (status, decoded body). A streamed answer still open once the
        clock has moved on is cancelled (status kept, body None); a request with no answer at
        all gives status None."""
        headers = dict(req.headers)
        if req.content_type is not None:
            headers["Content-Type"] = req.content_type
        d = self.http.request(
            req.method,
            "http://pyd" + req.path,
            data=req.body if req.body is not None else None,
            headers=headers or None,
            allow_redirects=False,
        )
        resp = self._settle(d)
        if resp is None:
            d.cancel()
            self.http.flush()
            return None, None
        content = resp.content()
        raw = self._settle(content)
        if raw is None:
            content.cancel()
            self.http.flush()
            if not streaming:
                self.case.fail(f"answer never finished: {req.describe()}")
            return resp.code, None
        return resp.code, decode_body(raw)

    def _settle(self, d: Any) -> Any:
        """The result of C{d} once the in-memory transport and the clock have moved (None:
        still pending)."""
        box: list[Any] = []
        d.addBoth(box.append)
        self.http.flush()
        for step in (0, 0.5, 2, 11, 31, 61):
            if box:
                break
            self._refuse_connections()
            self.daemon.reactor.advance(step)
            self.http.flush()
        if not box:
            return None
        out = box[0]
        if isinstance(out, Failure):
            out.raiseException()
        return out


class _Current:
    """The daemon the running test class uses: strategies are built once per operation and
    read the names of the objects at draw time."""

    fz: FuzzDaemon | None = None


CURRENT = _Current()


def _known(template: str) -> list[str]:
    fz = CURRENT.fz
    assert fz is not None
    ids = fz.ids
    if template.startswith("/containers/"):
        return ["fz-run", "fz-stopped", ids.get("fz-run", "x"), ids.get("fz-run", "x")[:6]]
    if template.startswith("/images/"):
        return [DEFAULT_TAG, fz.image_id, fz.image_id.removeprefix("sha256:")[:8], "busybox"]
    if template.startswith("/networks/"):
        return ["fz-net", "bridge", "host", "none", ids.get("network", "x")[:8]]
    if template.startswith("/volumes/"):
        return ["fz-vol"]
    if template.startswith("/exec/"):
        return [ids.get("exec", "x")]
    return ["nosuch"]


MISSING = ("nosuch", "0" * 64, "sha256:" + "f" * 64, "Name_With.Caps")


def path_values(template: str) -> st.SearchStrategy[str]:
    """Values for a path parameter of C{template}: objects the test made, missing ones, odd
    strings."""
    known = st.integers(0, 4).map(lambda i: (lambda k: k[i % len(k)])(_known(template)))
    return st.one_of(known, known, st.sampled_from(MISSING), odd_text)


def body_strategy(
    method: str, template: str, params: list[dict[str, Any]]
) -> st.SearchStrategy[tuple[bytes | None, str | None]]:
    """(body, content type) for the operation."""
    body = next((p for p in params if p["in"] == "body"), None)
    ctypes = st.sampled_from(["application/json", "application/json", "text/plain", None])
    if body is None:
        none: st.SearchStrategy[tuple[bytes | None, str | None]] = st.just((None, None))
        stray = st.tuples(st.binary(max_size=16), ctypes)
        return st.one_of(none, none, none, stray) if method != "GET" else none
    schema = body.get("schema") or {}
    if schema.get("type") == "string":  # a tar stream or an image tarball
        raw = st.tuples(
            raw_bodies, st.sampled_from(["application/x-tar", "application/x-tar", None, "text/x"])
        )
        return raw
    value = SCHEMAS.body(schema)
    if template == "/containers/create":
        image = st.sampled_from([DEFAULT_TAG, DEFAULT_TAG, "busybox", "nosuch", ""])
        value = st.one_of(
            st.builds(lambda v, i: {**v, "Image": i} if isinstance(v, dict) else v, value, image),
            value,
        )
    elif template == "/networks/{id}/connect":
        ctr = st.sampled_from(["fz-run", "fz-stopped", "nosuch"])
        value = st.builds(
            lambda v, c: {**v, "Container": c} if isinstance(v, dict) else v, value, ctr
        )
    elif template == "/containers/{id}/exec":
        value = st.one_of(
            st.builds(lambda v: {**v, "Cmd": ["true"]} if isinstance(v, dict) else v, value),
            value,
        )
    encoded = value.flatmap(json_body_bytes)
    return st.tuples(encoded, ctypes)


def request_strategy(
    method: str, template: str, params: list[dict[str, Any]]
) -> st.SearchStrategy[Request]:
    """Requests for one operation."""
    path_params = [p["name"] for p in params if p["in"] == "path"]
    query_params = [(p["name"], query_value(p)) for p in params if p["in"] == "query"]
    names = path_values(template)
    bodies = body_strategy(method, template, params)

    @st.composite
    def build(draw: Any) -> Request:
        path = template
        for name in path_params:
            value = draw(names)
            path = path.replace("{" + name + "}", encode_segment(value))
        pairs: list[tuple[str, str]] = []
        for pname, values in query_params:
            if draw(st.booleans()):
                pairs += [(pname, v) for v in draw(values)]
        if draw(st.integers(0, 9)) == 0:
            pairs.append((draw(odd_text), draw(odd_text)))  # a parameter the spec does not have
        version = draw(st.sampled_from(["/v1.50", "/v1.50", "", "/v1.24", "/v1.41", "/v1.44"]))
        body, ctype = draw(bodies)
        headers = {}
        for p in params:
            if p["in"] == "header" and p["name"] != "Content-type" and draw(st.booleans()):
                headers[p["name"]] = draw(
                    st.sampled_from(["", "e30=", "!!", "eyJ1c2VybmFtZSI6MX0="])
                )
        return Request(method, version + path + encode_query(pairs), body, ctype, headers)

    return build()


class _FuzzBase(SynchronousTestCase):
    """One daemon for the class; one generated test per operation."""

    fz: ClassVar[FuzzDaemon]

    @classmethod
    def setUpClass(cls) -> None:
        # a case to read Deferred results with (no test method runs yet)
        cls.fz = CURRENT.fz = FuzzDaemon(SynchronousTestCase())

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fz.close()
        CURRENT.fz = None

    def run_one(self, template: str, method: str, req: Request) -> None:
        fz = self.fz
        fz.case = self
        helpers_before, refused_before = fz.helpers_run(), fz.refused
        code, body = fz.call(req, streaming=(method, template) in STREAMING)
        self.flushLoggedErrors()
        what = req.describe()
        self.assertIsNotNone(code, f"no answer: {what}")
        assert code is not None
        helper = code == 500 and fz.helpers_run() > helpers_before
        if helper and method != "HEAD":
            self.assertEqual(body, {"message": NO_PROCESS}, what)
        # dockerd's answer when the registry cannot be reached is a 500 naming the URL
        unreachable = code == 500 and fz.refused > refused_before
        helper = helper or unreachable
        if not designed_5xx(method, template, code, body) and not helper:
            self.assertLess(code, 500, f"{code} {body!r} for {what}")
        if 400 <= code < 600 and method != "HEAD":
            self.assertIsInstance(body, dict, f"{code} {body!r} for {what}")
            self.assertIsInstance(body.get("message"), str, f"{code} {body!r} for {what}")
            found = leaks(body["message"], fz.host_paths)
            self.assertEqual(found, [], f"{code} {body!r} for {what}")
        seen = fz.listings()
        for check, (got, listing) in seen.items():
            self.assertEqual(got, 200, f"{check} after {what}: {listing!r}")
        if method not in ("GET", "HEAD"):
            fz.ensure(seen)


def _settings() -> Any:
    kw: dict[str, Any] = {
        "deadline": None,
        "database": None,
        "suppress_health_check": list(HealthCheck),
        "print_blob": False,
    }
    if EXAMPLES:
        kw["max_examples"] = EXAMPLES
        kw["derandomize"] = SEED is None
    else:
        kw["max_examples"] = 3
        kw["derandomize"] = True
    return settings(**kw)


def _make_test(method: str, template: str, params: list[dict[str, Any]]) -> Any:
    @_settings()
    @given(req=request_strategy(method, template, params))
    def test(self: _FuzzBase, req: Request) -> None:
        self.run_one(template, method, req)

    if SEED is not None:
        test = seed(int(SEED))(test)
    test.__doc__ = f"{method} {template}: no 5xx, plain 4xx messages, lists still answer."
    test.__name__ = "test_" + re.sub(r"\W+", "_", f"{method}_{template}").strip("_").lower()
    return test


AREAS: dict[str, tuple[str, ...]] = {
    "Containers": ("/containers",),
    "Images": ("/images", "/commit", "/build", "/auth", "/distribution"),
    "Networks": ("/networks",),
    "Volumes": ("/volumes",),
    "Exec": ("/exec",),
    "System": ("/info", "/version", "/events", "/system", "/swarm", "/nodes", "/services",
               "/tasks", "/secrets", "/configs", "/plugins", "/session"),
}  # fmt: skip


def _served(fz_routers: list[Any], method: str, template: str) -> bool:
    return apispec.served_route(fz_routers, method, template) is not None


ROUTERS = apispec.served_routers()
FUZZED = [
    (m, p, params)
    for m, p, params in operations()
    if (m, p) not in SKIPPED and _served(ROUTERS, m, p)
]

for _area, _prefixes in AREAS.items():
    _attrs: dict[str, Any] = {"__doc__": f"Fuzzed {_area.lower()} operations of API 1.50."}
    for _m, _p, _params in FUZZED:
        if _p.startswith(_prefixes):
            _t = _make_test(_m, _p, _params)
            _attrs[_t.__name__] = _t
    globals()[f"Fuzz{_area}Tests"] = type(f"Fuzz{_area}Tests", (_FuzzBase,), _attrs)


class FuzzCoverageTests(SynchronousTestCase):
    """What the fuzz suite covers."""

    def test_served(self) -> None:
        """Every operation of the spec is fuzzed, skipped with a reason, or not served by pyd
        (then the root answers 404); the fuzzed ones are in an area class."""
        ops = {(m, p) for m, p, _ in operations()}
        fuzzed = {(m, p) for m, p, _ in FUZZED}
        unserved = ops - fuzzed - set(SKIPPED)
        self.assertTrue(all(not _served(ROUTERS, m, p) for m, p in unserved))
        in_area = {
            (m, p) for m, p in fuzzed if any(p.startswith(a) for v in AREAS.values() for a in v)
        }
        self.assertEqual(in_area, fuzzed)
        self.assertGreater(len(fuzzed), 60)

    def test_extract_is_the_spec(self) -> None:
        """The committed extract is what tests/helpers/apispec.py makes of the spec (checked
        when the spec's reference copy is at hand)."""
        path = apispec.spec_path()
        if path is None:
            raise self.skipTest("the API spec's reference copy is not on this machine")
        self.assertEqual(
            apispec.dump(apispec.extract(apispec.load_spec_yaml(path))), apispec.dump(SPEC)
        )

    def test_leak_patterns(self) -> None:
        """The leak check fires on what it looks for and not on dockerd's texts."""
        self.assertTrue(leaks("failed: [Errno 40] Too many levels of symbolic links", []))
        self.assertTrue(leaks("TypeError: unhashable type: 'list'", []))
        self.assertTrue(leaks("open /x/data/a: nope", ["/x/data"]))
        self.assertEqual(leaks("No such container: nosuch", []), [])
        self.assertEqual(leaks("json: cannot unmarshal array into Go struct field", []), [])
