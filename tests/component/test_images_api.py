"""The image API in memory: real router and engine, in-process extractor, SQLite, StubTreq."""

from __future__ import annotations

import json
import shutil
import tempfile
from typing import Any
from urllib.parse import quote

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.images import ImagesRouter
from pyd.api.root import ApiRoot
from pyd.engine.commit import CommitService
from tests.fakes.images import FakeCommitContainers, make_image_service
from tests.helpers.images import DEFAULT_TAG, busybox_image_tar


class RecordingDistribution:
    """L{pyd.api.images.Distribution} that records what it was handed and answers empty."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def pull(self, request: Any, from_image: str, tag: str | None) -> None:
        self.calls.append(("pull", from_image, tag or ""))

    def push(self, request: Any, name: str) -> None:
        self.calls.append(("push", name))

    def login(self, request: Any) -> bytes:
        self.calls.append(("login",))
        return b"{}"

    def search(self, request: Any) -> bytes:
        self.calls.append(("search",))
        return b"[]"


class ImagesApiTests(SynchronousTestCase):
    """Status codes and JSON of /images/* and /commit as dockerd answers them."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-img-api-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.svc, self.events, self.containers, _ = make_image_service(self.tmp)
        self.dist = RecordingDistribution()
        self.router = ImagesRouter(
            self.svc,
            commits=CommitService(FakeCommitContainers(), self.svc, self.events),
            distribution=self.dist,
        )
        self.http = StubTreq(ApiRoot([self.router]))
        self.built = busybox_image_tar(f"{self.tmp}/bb.tar")

    def call(
        self, method: str, path: str, data: bytes | None = None, ctype: str = "application/json"
    ) -> tuple[int, dict[str, str], bytes]:
        kw: dict[str, Any] = {}
        if data is not None:
            kw["data"] = data
            kw["headers"] = {"Content-Type": ctype}
        d = self.http.request(method, "http://pyd" + path, **kw)
        self.http.flush()
        resp = self.successResultOf(d)
        content = resp.content()
        self.http.flush()
        raw = self.successResultOf(content)
        headers = {k.decode().lower(): v[0].decode() for k, v in resp.headers.getAllRawHeaders()}
        return resp.code, headers, raw

    def load(self) -> list[dict[str, Any]]:
        with open(self.built.path, "rb") as f:
            code, headers, raw = self.call(
                "POST", "/v1.50/images/load?quiet=1", f.read(), "application/x-tar"
            )
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], "application/json")
        # each line ends as moby's pkg/streamformatter ends it (streamNewline)
        self.assertTrue(raw.endswith(b"}\r\n"), raw)
        return [json.loads(line) for line in raw.splitlines()]

    def test_load_list_inspect(self) -> None:
        """load streams JSON lines; list and inspect show the image."""
        self.assertEqual(self.load(), [{"stream": f"Loaded image: {DEFAULT_TAG}\n"}])
        code, _, raw = self.call("GET", "/v1.50/images/json")
        self.assertEqual(code, 200)
        [row] = json.loads(raw)
        self.assertEqual(row["Id"], self.built.id)
        self.assertEqual(row["RepoTags"], [DEFAULT_TAG])
        self.assertEqual(row["Containers"], -1)
        self.assertEqual(
            set(row),
            {
                "Id",
                "ParentId",
                "RepoTags",
                "RepoDigests",
                "Created",
                "Size",
                "SharedSize",
                "Labels",
                "Containers",
            },
        )
        code, _, raw = self.call("GET", "/v1.50/images/" + quote(DEFAULT_TAG, safe="/:") + "/json")
        info = json.loads(raw)
        self.assertEqual(info["RootFS"]["Layers"], list(self.built.diff_ids))
        self.assertNotIn("VirtualSize", info)
        code, _, raw = self.call("GET", "/v1.43/images/" + self.built.id[7:19] + "/json")
        self.assertEqual(json.loads(raw)["VirtualSize"], info["Size"])

    def test_inspect_shape_per_version(self) -> None:
        """dockerd 28's inspect: at 1.50 Parent/Comment/DockerVersion/Author always, Config last
        with its fixed defaults and sorted keys; at 1.43 VirtualSize and ContainerConfig (the
        whole Go container.Config), Config as 20.10's container.Config; at 1.45 no
        ContainerConfig."""
        self.load()
        path = "/images/" + self.built.id[7:19] + "/json"
        info = json.loads(self.call("GET", "/v1.50" + path)[2])
        self.assertEqual(
            list(info),
            ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "DockerVersion",
             "Author", "Architecture", "Os", "Size", "GraphDriver", "RootFS", "Metadata",
             "Config"],
        )  # fmt: skip
        self.assertEqual(
            list(info["Config"]),
            ["Cmd", "Entrypoint", "Env", "Labels", "OnBuild", "User", "Volumes", "WorkingDir"],
        )
        self.assertEqual(info["Metadata"], {"LastTagTime": "0001-01-01T00:00:00Z"})
        old = json.loads(self.call("GET", "/v1.43" + path)[2])
        self.assertEqual(old["VirtualSize"], info["Size"])
        self.assertNotIn("Container", old)
        self.assertEqual(
            list(old["ContainerConfig"]),
            ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
             "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir",
             "Entrypoint", "OnBuild", "Labels"],
        )  # fmt: skip
        self.assertEqual(old["Config"]["Cmd"], ["sh"])
        self.assertEqual(old["Config"]["Hostname"], "")
        self.assertLess(list(old).index("Config"), list(old).index("Architecture"))
        mid = json.loads(self.call("GET", "/v1.45" + path)[2])
        self.assertNotIn("ContainerConfig", mid)
        self.assertNotIn("VirtualSize", mid)

    def test_list_per_version(self) -> None:
        """/images/json: Labels null when unset; untagged rows are <none>:<none> before 1.43,
        [] after; VirtualSize before 1.44 only."""
        with open(self.built.path, "rb") as f:
            data = f.read()
        self.call("POST", "/v1.50/images/load", data, "application/x-tar")
        self.call("DELETE", "/v1.50/images/" + quote(DEFAULT_TAG, safe="/:"))
        self.call("POST", "/v1.50/images/load", data, "application/x-tar")
        self.call("POST", "/v1.50/images/" + self.built.id + "/tag?repo=keep&tag=1")
        self.call("DELETE", "/v1.50/images/keep:1?noprune=1")
        row = json.loads(self.call("GET", "/v1.50/images/json")[2])
        self.assertEqual(len(row), 1)
        new = row[0]
        self.assertEqual((new["Labels"], new["RepoDigests"]), (None, []))
        self.assertNotIn("VirtualSize", new)
        old = json.loads(self.call("GET", "/v1.42/images/json")[2])[0]
        self.assertEqual(old["VirtualSize"], old["Size"])
        self.assertEqual(old["RepoDigests"], None if old["RepoTags"] else ["<none>@<none>"])

    def test_list_old_filter_query(self) -> None:
        """Before API 1.41 the old C{filter=} query is a reference filter, added to
        C{filters}' (moby's getImagesJSON); from 1.41 on it is ignored (docker-py's
        test_tag_and_remove at API 1.24)."""
        self.load()
        self.call("POST", "/v1.50/images/" + self.built.id + "/tag?repo=other&tag=1")

        def tags(path: str) -> list[str]:
            code, _, raw = self.call("GET", path)
            self.assertEqual(code, 200, raw)
            return sorted(t for row in json.loads(raw) for t in row["RepoTags"])

        both = sorted([DEFAULT_TAG, "other:1"])
        # the reference filter shows the matching tags only, as dockerd's does
        self.assertEqual(tags("/v1.40/images/json?filter=other"), ["other:1"])
        self.assertEqual(tags("/v1.40/images/json?filter=nomatch"), [])
        self.assertEqual(tags("/v1.24/images/json?filter=other:*"), ["other:1"])
        self.assertEqual(tags("/v1.41/images/json?filter=nomatch"), both)
        self.assertEqual(
            tags('/v1.40/images/json?filter=other&filters={"reference":["nomatch"]}'),
            ["other:1"],
        )

    def test_unknown_image(self) -> None:
        """404 with dockerd's text for inspect, history, tag and delete."""
        for method, path in (
            ("GET", "/images/nope/json"),
            ("GET", "/images/nope/history"),
            ("POST", "/images/nope/tag?repo=x"),
            ("DELETE", "/images/nope"),
        ):
            code, _, raw = self.call(method, path)
            self.assertEqual(code, 404, path)
            self.assertEqual(json.loads(raw), {"message": "No such image: nope:latest"})

    def test_unknown_full_id_is_404(self) -> None:
        """A 64-hex id is looked up as an id: 404, not the 400 a 64-hex repository name gets
        (`docker inspect <container id>` falls back to the image endpoint and needs the 404)."""
        hexid = "9de60575cae1cb7a59783af8cb5d6c03dc8e9967ad1f9d155c4258643e5fb3d7"
        code, _, raw = self.call("GET", f"/images/{hexid}/json")
        self.assertEqual(
            (code, json.loads(raw)), (404, {"message": f"No such image: sha256:{hexid}"})
        )

    def test_bad_reference_is_400(self) -> None:
        """An invalid tag target is a 400."""
        self.load()
        code, _, raw = self.call("POST", "/images/" + self.built.id + "/tag?repo=Bad&tag=x")
        self.assertEqual(code, 400)
        self.assertIn("must be lowercase", json.loads(raw)["message"])

    def test_tag_delete(self) -> None:
        """tag is 201 with no body; delete lists Untagged/Deleted."""
        self.load()
        code, _, raw = self.call(
            "POST", "/images/pyd-test/busybox/tag?repo=docker.io/my/img&tag=v1"
        )
        self.assertEqual((code, raw), (201, b""))
        code, _, raw = self.call("DELETE", "/images/my/img:v1")
        self.assertEqual((code, json.loads(raw)), (200, [{"Untagged": "my/img:v1"}]))
        code, _, raw = self.call("DELETE", "/images/" + DEFAULT_TAG)
        items = json.loads(raw)
        self.assertEqual(items[0], {"Untagged": DEFAULT_TAG})
        self.assertEqual(items[1], {"Deleted": self.built.id})

    def test_delete_conflict_is_409(self) -> None:
        """A container using the image makes untag-last-reference a 409."""
        self.load()
        self.containers.uses[self.built.id] = [("a" * 64, True)]
        code, _, raw = self.call("DELETE", "/images/" + DEFAULT_TAG)
        self.assertEqual(code, 409)
        self.assertIn("(must force) - container aaaaaaaaaaaa is using", json.loads(raw)["message"])

    def test_prune_empty(self) -> None:
        """prune with nothing to do."""
        code, _, raw = self.call("POST", '/images/prune?filters={"dangling":{"true":true}}')
        self.assertEqual(
            (code, json.loads(raw)), (200, {"ImagesDeleted": None, "SpaceReclaimed": 0})
        )

    def test_bad_filter(self) -> None:
        """Unknown filter keys are 400."""
        code, _, raw = self.call("GET", '/images/json?filters={"nope":{"x":true}}')
        self.assertEqual(code, 400)
        self.assertEqual(json.loads(raw), {"message": "invalid filter 'nope'"})

    def test_save_streams_a_tar(self) -> None:
        """GET /images/get streams an application/x-tar body with manifest.json."""
        import io
        import tarfile

        self.load()
        code, headers, raw = self.call("GET", "/images/get?names=" + quote(DEFAULT_TAG))
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], "application/x-tar")
        with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
            self.assertIn("manifest.json", tf.getnames())
        code, _, raw = self.call("GET", "/images/get?names=nope")
        self.assertEqual(code, 404)

    def test_load_garbage(self) -> None:
        """A body that is not an archive ends the stream with an errorDetail."""
        code, _, raw = self.call("POST", "/images/load", b"not a tar" * 100, "application/x-tar")
        self.assertEqual(code, 200)
        last = json.loads(raw.splitlines()[-1])
        self.assertIn("errorDetail", last)

    def test_import_stream(self) -> None:
        """fromSrc=- imports the body; the stream's status is the new id."""
        code, _, raw = self.call(
            "POST",
            "/images/create?fromSrc=-&repo=imp&tag=1&changes=" + quote('CMD ["sh"]'),
            self.built.layers[0],
            "application/x-tar",
        )
        self.assertEqual(code, 200)
        status = json.loads(raw.splitlines()[-1])["status"]
        code, _, raw = self.call("GET", "/images/imp:1/json")
        info = json.loads(raw)
        self.assertEqual(info["Id"], status)
        self.assertEqual(
            info["Config"],
            {
                "Cmd": ["sh"],
                "Entrypoint": None,
                "Env": None,
                "Labels": None,
                "OnBuild": None,
                "User": "",
                "Volumes": None,
                "WorkingDir": "",
            },
        )
        self.assertEqual(info["DockerVersion"], "")  # no version injected in this test
        self.assertEqual(info["Comment"], "Imported from -")

    def test_registry_endpoints_reach_distribution(self) -> None:
        """pull, push, login and search are handed to the registry area with their arguments."""
        for method, path in (
            ("POST", "/images/create?fromImage=busybox&tag=latest"),
            ("POST", "/images/busybox/push?tag=latest"),
            ("POST", "/auth"),
            ("GET", "/v1.50/images/search?term=x"),
        ):
            code, _, _ = self.call(method, path, b"{}" if method == "POST" else None)
            self.assertEqual(code, 200, path)
        self.assertEqual(
            self.dist.calls,
            [("pull", "busybox", "latest"), ("push", "busybox"), ("login",), ("search",)],
        )

    def test_commit_unknown_container(self) -> None:
        """commit of an unknown container is a 404 with dockerd's text."""
        code, _, raw = self.call("POST", "/commit?container=nope&repo=x")
        self.assertEqual((code, json.loads(raw)), (404, {"message": "No such container: nope"}))

    def test_platform_parameters(self) -> None:
        """platform= of inspect and history (moby 28): the image must be of it (another is a
        404 naming both), a value that is not a platform a 400; load skips an image of another
        platform; delete takes one platform."""
        arm = quote('{"os":"linux","architecture":"arm64"}', safe="")
        amd = quote('{"os":"linux","architecture":"amd64"}', safe="")
        with open(self.built.path, "rb") as f:
            data = f.read()
        code, _, raw = self.call(
            "POST", f"/v1.50/images/load?platform={arm}", data, "application/x-tar"
        )
        self.assertEqual((code, raw), (200, b""))
        self.assertEqual(json.loads(self.call("GET", "/v1.50/images/json")[2]), [])
        self.load()
        name = quote(DEFAULT_TAG, safe="/:")
        self.assertEqual(self.call("GET", f"/v1.50/images/{name}/json?platform={amd}")[0], 200)
        code, _, raw = self.call("GET", f"/v1.50/images/{name}/json?platform={arm}")
        self.assertEqual(code, 404)
        self.assertIn(
            b"its platform (linux/amd64) does not match the specified platform (linux/arm64)", raw
        )
        code, _, raw = self.call("GET", f"/v1.50/images/{name}/history?platform=x")
        self.assertEqual(code, 400)
        self.assertIn(b"failed to parse platform: invalid character 'x'", raw)
        self.assertEqual(self.call("GET", f"/v1.47/images/{name}/history?platform=x")[0], 200)
        code, _, _ = self.call("DELETE", f"/v1.50/images/{name}?platforms={arm}")
        self.assertEqual(code, 404)
        self.assertEqual(self.call("DELETE", f"/v1.50/images/{name}?platforms={amd}")[0], 200)
