"""The routes that run helper processes, fuzzed against a real daemon (issue 18).

tests/component/test_fuzz_api.py fuzzes every route in memory, but its fake drivers run no
process, so C{HEAD}/C{GET}/C{PUT /containers/{id}/archive} (the cp helper, chrooted in the
container's view), C{GET /containers/{id}/export} (the tar helper) and C{GET
/containers/{id}/top} (the host's C{ps}) stop where the helper would start. Here the same kind
of requests (Hypothesis, seeded, a few examples per route: the spec's parameters by type and
mutated, odd and hostile paths, the suite's hostile archives and raw bodies) go to C{twistd -n
pyd} over its socket, with a running and a stopped container. After each request: no 5xx but
dockerd's own by design (an archive that would replace a directory with a non-directory under
C{noOverwriteDirNonDir}; C{ps} options whose output has no PID column), a 4xx is C{{"message":
str}} with no exception name, errno text or host path, and the container listing answers.

C{PYD_FUZZ_EXAMPLES=N} runs N examples per route (C{PYD_FUZZ_SEED=S}: randomized with seed S).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.helpers import apispec
from tests.helpers.daemon import PydDaemon
from tests.helpers.fuzzgen import encode_query, encode_segment, odd_text, query_value, raw_bodies
from tests.helpers.hostile import CONTAINED, CP_PATHS, REFUSED
from tests.helpers.images import DEFAULT_TAG, load_busybox
from tests.helpers.leaks import leaks

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("PYD_FUZZ_EXAMPLES", "0") or 0) or 8
SEED = os.environ.get("PYD_FUZZ_SEED")

ROUTES = [
    ("HEAD", "/containers/{id}/archive"),
    ("GET", "/containers/{id}/archive"),
    ("PUT", "/containers/{id}/archive"),
    ("GET", "/containers/{id}/export"),
    ("GET", "/containers/{id}/top"),
]
SPEC = apispec.load()

# dockerd answers these with a 500 whatever the input's quality (moby returns them unclassified)
DESIGNED_500 = ("cannot overwrite directory", "cannot overwrite non-directory", "Couldn't find PID")


class _Daemon:
    def __init__(self, d: PydDaemon) -> None:
        self.d = d
        self.host_paths = [str(d.base), d.data_root, d.exec_root, tempfile.gettempdir() + "/"]


@pytest.fixture(scope="module")
def fz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Daemon]:
    d = PydDaemon(str(tmp_path_factory.mktemp("pyd-fuzz-helpers")))
    try:
        d.start()
        load_busybox(d)
        d.docker("run", "-d", "--name", "fz-run", DEFAULT_TAG, "sleep", "600")
        d.docker("create", "--name", "fz-stopped", DEFAULT_TAG, "sleep", "600")
        yield _Daemon(d)
    finally:
        d.docker("rm", "-f", "fz-run", "fz-stopped", check=False)
        d.cleanup()


containers = st.sampled_from(["fz-run", "fz-run", "fz-stopped", "nosuch", "0" * 64])
paths = st.one_of(
    st.sampled_from(["/", "/etc", "/etc/passwd", "/tmp", "/bin/sh", "/dev/null", "/proc/1"]),
    st.sampled_from(sorted(CP_PATHS)),
    odd_text,
)
archives = st.one_of(
    raw_bodies,
    st.sampled_from([data for data, _ in REFUSED.values()] + list(CONTAINED.values())),
)


def _request(method: str, template: str) -> st.SearchStrategy[tuple[str, str, bytes | None]]:
    params = SPEC["paths"][template][method.lower()]["parameters"]
    query = [(p["name"], p) for p in params if p["in"] == "query"]

    @st.composite
    def build(draw: Any) -> tuple[str, str, bytes | None]:
        path = template.replace("{id}", encode_segment(draw(containers)))
        pairs: list[tuple[str, str]] = []
        for name, p in query:
            if name == "path" and draw(st.integers(0, 9)):
                pairs.append(("path", draw(paths)))
            elif name == "ps_args" and draw(st.booleans()):
                pairs.append(
                    (
                        "ps_args",
                        draw(
                            st.one_of(st.sampled_from(["-ef", "aux", "-o comm", "-q 1"]), odd_text)
                        ),
                    )
                )
            elif draw(st.booleans()):
                pairs += [(name, v) for v in draw(query_value(p))]
        version = draw(st.sampled_from(["/v1.50", "", "/v1.41"]))
        body = draw(archives) if method == "PUT" else None
        return method, version + path + encode_query(pairs), body

    return build()


def _check(fz: _Daemon, method: str, path: str, body: bytes | None) -> None:
    headers = {"Content-Type": "application/x-tar"} if body is not None else None
    code, _, raw = fz.d.request(method, path, body, headers)
    what = f"{method} {path[:200]} ({len(body or b'')} bytes)"
    message = ""
    if code >= 400 and method != "HEAD":
        decoded = json.loads(raw)
        assert isinstance(decoded, dict) and isinstance(decoded.get("message"), str), (what, raw)
        message = decoded["message"]
        assert leaks(message, fz.host_paths) == [], (what, message)
    if code >= 500:
        assert method != "HEAD" and message.startswith(DESIGNED_500), (what, code, message)
    assert fz.d.request("GET", "/containers/json?all=1")[0] == 200, what


def _settings() -> Any:
    return settings(
        max_examples=EXAMPLES,
        derandomize=SEED is None,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


def _make(method: str, template: str) -> Any:
    @_settings()
    @given(req=_request(method, template))
    def test(fz: _Daemon, req: tuple[str, str, bytes | None]) -> None:
        _check(fz, *req)

    if SEED is not None:
        test = seed(int(SEED))(test)
    test.__doc__ = f"{method} {template} on real helpers: no 5xx, plain 4xx messages."
    return test


test_head_archive = _make(*ROUTES[0])
test_get_archive = _make(*ROUTES[1])
test_put_archive = _make(*ROUTES[2])
test_export = _make(*ROUTES[3])
test_top = _make(*ROUTES[4])


def test_the_containers_survived(fz: _Daemon) -> None:
    """After the fuzzing, the running container still runs and answers exec."""
    state = json.loads(fz.d.docker("inspect", "fz-run").stdout)[0]["State"]
    assert state["Running"] is True
    assert fz.d.docker("exec", "fz-run", "true").returncode == 0
