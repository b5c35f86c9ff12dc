"""POST /build and /build/prune in memory: query decoding, HTTP errors, the JSON-lines stream."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any
from urllib.parse import urlencode

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from pyd.api.build import BuildRouter, options_from_request
from pyd.api.root import ApiRoot
from pyd.core.seams import InlineBlocking
from pyd.engine.builder import fs
from pyd.engine.builder.builder import BuildService
from tests.fakes.build import FakeBuildContainers, FakeBuildImages
from tests.unit.builder.helpers import make_tar
from tests.unit.builder.test_builder import BUSYBOX_CONFIG, fake_run


class BuildApiTests(SynchronousTestCase):
    """The build router over the real builder with fake image store and containers."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-buildapi-")
        self.addCleanup(fs.remove_tree, self.tmp)
        self.images = FakeBuildImages(os.path.join(self.tmp, "store"))
        self.images.add_base("busybox", {"bin/sh": "x"}, BUSYBOX_CONFIG)
        svc = BuildService(
            self.images,
            FakeBuildContainers(self.images, fake_run),
            InlineBlocking(),
            os.path.join(self.tmp, "builds"),
            Clock(),
        )
        self.http = StubTreq(ApiRoot([BuildRouter(svc)]))

    def post(self, files: dict[str, Any], **params: Any) -> tuple[int, Any, bytes]:
        query: list[tuple[str, str]] = []
        for k, v in params.items():
            for item in v if isinstance(v, list) else [v]:
                query.append((k, item))
        url = "http://pyd/v1.50/build?" + urlencode(query)
        resp = self.successResultOf(
            self.http.post(
                url, data=make_tar(files).getvalue(), headers={"Content-Type": "application/x-tar"}
            )
        )
        body = self.successResultOf(resp.content())
        return resp.code, resp.headers, body

    def lines(self, body: bytes) -> list[dict[str, Any]]:
        return [json.loads(x) for x in body.splitlines() if x.strip()]

    def test_stream(self) -> None:
        """A successful build streams stream/aux lines and the final messages."""
        code, headers, body = self.post(
            {"Dockerfile": "FROM busybox\nARG X\nLABEL a=$X\n"},
            t=["app:v1", "app"],
            version="1",
            buildargs=json.dumps({"X": "1"}),
            labels=json.dumps({"l": "2"}),
            rm="1",
        )
        self.assertEqual(code, 200)
        self.assertEqual(headers.getRawHeaders("Content-Type"), ["application/json"])
        msgs = self.lines(body)
        self.assertEqual(msgs[0], {"stream": "Step 1/4 : FROM busybox\n"})
        aux = [m["aux"]["ID"] for m in msgs if "aux" in m]
        self.assertEqual(len(aux), 1)
        self.assertEqual(msgs[-3], {"stream": f"Successfully built {aux[0][7:19]}\n"})
        self.assertEqual(msgs[-2], {"stream": "Successfully tagged app:v1\n"})
        self.assertEqual(msgs[-1], {"stream": "Successfully tagged app:latest\n"})
        cfg = self.images.images[aux[0]].config["config"]
        self.assertEqual(cfg["Labels"], {"a": "1", "l": "2"})

    def test_run_error_in_band(self) -> None:
        """A failing RUN is an in-band errorDetail with the exit code."""
        code, _, body = self.post({"Dockerfile": "FROM busybox\nRUN exit 4\n"})
        self.assertEqual(code, 200)
        last = self.lines(body)[-1]
        msg = "The command '/bin/sh -c exit 4' returned a non-zero code: 4"
        self.assertEqual(last, {"errorDetail": {"message": msg, "code": 4}, "error": msg})

    def test_syntax_error_is_400(self) -> None:
        """A Dockerfile syntax error is an HTTP 400 with the line number."""
        code, _, body = self.post({"Dockerfile": "FROM busybox\nBOGUSX a\n"})
        self.assertEqual(code, 400)
        self.assertEqual(
            json.loads(body),
            {"message": "dockerfile parse error on line 2: unknown instruction: BOGUSX"},
        )

    def test_bad_params(self) -> None:
        """Invalid tags, squash, BuildKit version and bad JSON params are 400s."""
        for params, text in (
            ({"t": "Bad:Tag"}, "invalid reference format"),
            ({"squash": "1"}, "squash is only supported with experimental mode"),
            ({"version": "2"}, "BuildKit is not supported"),
            (
                {"buildargs": "{nope"},
                "error reading build args: invalid character 'n' looking for beginning of object key string",
            ),
        ):
            code, _, body = self.post({"Dockerfile": "FROM busybox\n"}, **params)
            self.assertEqual(code, 400, params)
            self.assertIn(text, json.loads(body)["message"])

    def test_values_read_as_dockerd_reads_them(self) -> None:
        """dockerd's Int64ValueOrZero and BoolValue (checked on dockerd 20.10 and in 28's
        build_routes.go): resource values that are no integers are 0, not errors; a boolean
        is true unless "", 0, no, false or none; an empty rm and forcerm both mean rm; only
        shmsize is parsed strictly (ParseInt's text; a 500 in dockerd, a 400 here)."""
        for params, expected in (
            ({"memory": "abc", "memswap": "-x", "cpushares": "x", "cpuquota": "1.5"}, {}),
            ({"memory": "99999999999999999999", "cpuperiod": "¹"}, {}),
            ({"memory": "+64", "cpushares": "-2"}, {"memory": 64, "cpu_shares": -2}),
            ({"q": "maybe", "nocache": "abc", "pull": "¹"},
             {"quiet": True, "no_cache": True, "pull": True}),
            ({"q": "0", "nocache": "no", "pull": "None"}, {}),
            ({"rm": ""}, {"rm": True}),
            ({"rm": "0", "forcerm": "1"}, {"rm": True, "force_rm": True}),
            ({"rm": "false"}, {"rm": False}),
        ):  # fmt: skip
            request = DummyRequest([b"build"])
            request.args = {k.encode(): [v.encode()] for k, v in params.items()}
            opts = options_from_request(request)
            got = {
                "memory": opts.memory, "memory_swap": opts.memory_swap,
                "cpu_shares": opts.cpu_shares, "cpu_period": opts.cpu_period,
                "cpu_quota": opts.cpu_quota, "quiet": opts.quiet, "no_cache": opts.no_cache,
                "pull": opts.pull, "rm": opts.rm, "force_rm": opts.force_rm,
            }  # fmt: skip
            defaults = (
                dict.fromkeys(got, 0)
                | dict.fromkeys(("quiet", "no_cache", "pull", "force_rm"), False)
                | {"rm": True}
            )
            self.assertEqual(got, defaults | expected, params)
        code, _, body = self.post({"Dockerfile": "FROM busybox\n"}, shmsize="abc")
        self.assertEqual(code, 400)
        self.assertEqual(
            json.loads(body), {"message": 'strconv.ParseInt: parsing "abc": invalid syntax'}
        )
        code, _, _ = self.post({"Dockerfile": "FROM busybox\n"}, memory="abc", q="maybe")
        self.assertEqual(code, 200)

    def test_quiet(self) -> None:
        """q=1 streams only the aux and the id."""
        _, _, body = self.post({"Dockerfile": "FROM busybox\nENV A=1\n"}, q="1")
        msgs = self.lines(body)
        self.assertEqual([list(m) for m in msgs], [["aux"], ["stream"]])
        self.assertEqual(msgs[1]["stream"], msgs[0]["aux"]["ID"] + "\n")

    def test_prune(self) -> None:
        """POST /build/prune answers CachesDeleted and SpaceReclaimed."""
        resp = self.successResultOf(self.http.post("http://pyd/v1.50/build/prune"))
        self.assertEqual(resp.code, 200)
        body = json.loads(self.successResultOf(resp.content()))
        self.assertEqual(body, {"CachesDeleted": None, "SpaceReclaimed": 0})


class RegistryConfigTests(SynchronousTestCase):
    """X-Registry-Config decoding."""

    def test_decode(self) -> None:
        """The CLI's map of registry credentials is decoded; anything malformed is ignored."""
        import base64

        from pyd.api.build import registry_config

        class Req:
            def __init__(self, value: str | None) -> None:
                self.value = value

            def getHeader(self, name: str) -> str | None:
                return self.value

        doc = {"127.0.0.1:5000": {"username": "u", "password": "p"}}
        enc = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()
        auths = registry_config(Req(enc))  # type: ignore[arg-type]  # a stand-in request with only the header the function reads
        self.assertEqual(auths["127.0.0.1:5000"].username, "u")
        self.assertEqual(auths["127.0.0.1:5000"].password, "p")
        self.assertEqual(registry_config(Req("e30=")), {})  # type: ignore[arg-type]  # a stand-in request with only the header the function reads
        self.assertEqual(registry_config(Req("!!notbase64")), {})  # type: ignore[arg-type]  # a stand-in request with only the header the function reads
        self.assertEqual(registry_config(Req(None)), {})  # type: ignore[arg-type]  # a stand-in request with only the header the function reads
