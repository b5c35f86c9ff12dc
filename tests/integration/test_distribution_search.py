"""C{docker search} in the engine + driver against a fake v1 index on loopback (no internet)."""

from __future__ import annotations

import base64
import tempfile
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import TestCase

from pyd.core.errors import InvalidParameter, SystemError_
from pyd.core.records import RegistryAuth
from pyd.core.seams import InlineBlocking
from pyd.drivers.registry import HTTPClients
from pyd.engine.distribution import DistributionService, DistributionSettings, split_search_term
from tests.fakes.distribution import FakeRegistryImages
from tests.helpers.fake_index import FakeIndex
from tests.helpers.registry import free_port

pytestmark = pytest.mark.integration


class SearchTests(TestCase):
    """The term's index is searched over /v1/search and the answer filtered as dockerd 28 does."""

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.index = FakeIndex().start()
        self.addCleanup(self.index.stop)
        self.http = HTTPClients(reactor)
        self.addCleanup(self.http.close)
        tmp = tempfile.mkdtemp(prefix="pyd-search-")
        self.addCleanup(lambda: __import__("shutil").rmtree(tmp, True))
        self.svc = DistributionService(
            FakeRegistryImages(tmp + "/store"),
            self.http,
            InlineBlocking(),
            tmp,
            lambda: DistributionSettings(),
        )

    def search(
        self,
        term: str,
        limit: int = 0,
        filters: dict[str, list[str]] | None = None,
        auth: RegistryAuth | None = None,
    ) -> Deferred[Any]:
        return ensureDeferred(self.svc.search(term, limit, filters or {}, auth))

    async def test_search_and_request(self) -> None:
        """The remote part of the term is the query, n is 25 by default; HTTPS fails on a plain
        HTTP index and the insecure loopback index is then pinged and searched over HTTP."""
        rows = await self.search(f"{self.index.host}/busybox")
        self.assertEqual(
            [r.name for r in rows],
            ["library/busybox", "someone/busybox-tools", "other/busybox-mini"],
        )
        self.assertEqual(rows[0].star_count, 3300)
        self.assertTrue(rows[0].is_official)
        self.assertEqual(rows[0].description, "Busybox base image.")
        # is_automated is deprecated: always false, whatever the index says
        self.assertFalse(any(r.is_automated for r in rows))
        seen = self.index.searches()[-1]
        self.assertEqual(seen.query, {"q": ["busybox"], "n": ["25"]})
        self.assertEqual(seen.headers.get("x-docker-token"), "true")
        self.assertNotIn("authorization", seen.headers)
        self.assertIn("/v1/_ping", [r.path for r in self.index.requests])

    async def test_limit(self) -> None:
        """limit is sent as n; outside [1, 100] is dockerd's 400."""
        rows = await self.search(f"{self.index.host}/busybox", limit=1)
        self.assertEqual(len(rows), 1)
        self.assertEqual(self.index.searches()[-1].query["n"], ["1"])
        for bad in (101, -1):
            with self.assertRaises(InvalidParameter) as e:
                await self.search(f"{self.index.host}/busybox", limit=bad)
            self.assertEqual(str(e.exception), f"limit {bad} is outside the range of [1, 100]")

    async def test_filters(self) -> None:
        """is-official and stars filter the answer; is-automated=true finds nothing (deprecated);
        unknown filters and bad values are dockerd's messages."""
        host = self.index.host
        rows = await self.search(f"{host}/b", filters={"is-official": ["true"]})
        self.assertEqual([r.name for r in rows], ["library/busybox", "library/alpine"])
        rows = await self.search(f"{host}/b", filters={"is-official": ["false"]})
        self.assertEqual([r.name for r in rows], ["someone/busybox-tools", "other/busybox-mini"])
        rows = await self.search(f"{host}/b", filters={"stars": ["5", "12"]})
        self.assertEqual(
            [r.name for r in rows],
            ["library/busybox", "someone/busybox-tools", "library/alpine"],
        )
        before = len(self.index.searches())
        self.assertEqual(await self.search(f"{host}/b", filters={"is-automated": ["1"]}), [])
        self.assertEqual(len(self.index.searches()), before)  # not even asked
        rows = await self.search(f"{host}/b", filters={"is-automated": ["false"]})
        self.assertEqual(len(rows), 4)
        for filters, msg in (
            ({"foo": ["1"]}, "invalid filter 'foo'"),
            ({"is-official": ["maybe"]}, "invalid filter 'is-official=[maybe]'"),
            (
                {"stars": ["x"]},
                "invalid filter 'stars=x': strconv.Atoi: parsing \"x\": invalid syntax",
            ),
        ):
            with self.assertRaises(InvalidParameter) as e:
                await self.search(f"{host}/b", filters=filters)
            self.assertEqual(str(e.exception), msg)

    async def test_credentials(self) -> None:
        """X-Registry-Auth credentials go to the index as basic auth on the search request."""
        await self.search(f"{self.index.host}/busybox", auth=RegistryAuth("joe", "pw"))
        got = self.index.searches()[-1].headers["authorization"]
        self.assertEqual(got, "Basic " + base64.b64encode(b"joe:pw").decode())

    async def test_unreachable_index(self) -> None:
        """An index that answers neither HTTPS nor HTTP is dockerd's 400 naming both attempts."""
        port = free_port()
        with self.assertRaises(InvalidParameter) as e:
            await self.search(f"127.0.0.1:{port}/busybox")
        self.assertEqual(
            str(e.exception),
            f'invalid registry endpoint "http://127.0.0.1:{port}/v1/". HTTPS attempt: '
            f'Get "https://127.0.0.1:{port}/v1/_ping": dial tcp 127.0.0.1:{port}: connect: '
            f'connection refused. HTTP attempt: Get "http://127.0.0.1:{port}/v1/_ping": '
            f"dial tcp 127.0.0.1:{port}: connect: connection refused",
        )

    async def test_index_errors(self) -> None:
        """A non-200 answer and an undecodable one are 500s with dockerd's words; a scheme in
        the term is refused."""
        self.index.status = 404
        with self.assertRaises(SystemError_) as e:
            await self.search(f"{self.index.host}/busybox")
        self.assertEqual(str(e.exception), "Unexpected status code 404")
        self.index.status = 200
        self.index.body = b"<html>"
        with self.assertRaises(SystemError_) as e2:
            await self.search(f"{self.index.host}/busybox")
        self.assertTrue(
            str(e2.exception).startswith("error decoding registry search results"),
        )
        with self.assertRaises(InvalidParameter) as e3:
            await self.search("http://x/busybox")
        self.assertEqual(
            str(e3.exception),
            "invalid repository name: repository name (http://x/busybox) should not have a scheme",
        )


class SplitTermTests(TestCase):
    """dockerd's splitReposSearchTerm."""

    def test_split(self) -> None:
        """Docker Hub unless the first component looks like a host."""
        for term, want in (
            ("busybox", ("docker.io", "busybox")),
            ("library/busybox", ("docker.io", "library/busybox")),
            ("index.docker.io/busybox", ("docker.io", "busybox")),
            ("localhost/x", ("localhost", "x")),
            ("127.0.0.1:5000/a/b", ("127.0.0.1:5000", "a/b")),
            ("reg.example/x", ("reg.example", "x")),
        ):
            self.assertEqual(split_search_term(term), want, term)
