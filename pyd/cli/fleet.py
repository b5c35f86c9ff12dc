"""C{pyd fleet}: one command to many hosts, concurrently, over mutual TLS (layer: cli).

Each host is a docker context (see L{pyd.cli.contexts}). Requests go out to every host at once;
each has its own timeout, so a host that is down, slow or refusing shows up as an error in its own
row and never holds up the others. Server identity is checked with service-identity against the
host name or IP address in the context's endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import attrs
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError, ConnectionRefusedError, TimeoutError
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from pyd.cli.contexts import Context

API = "/v1.50"


class HostError(Exception):
    """A host answered with an error, or could not be reached; the text goes in its row."""


@implementer(IAgentEndpointFactory)
@attrs.define
class _OneHost:
    """Every URI goes to the one host of a context (TLS-wrapped when it has certificates)."""

    reactor: Any
    context: Context
    timeout: float

    def endpointForURI(self, uri: Any) -> Any:
        """The endpoint of this context's daemon."""
        u = urlsplit(self.context.host)
        if u.scheme == "unix":
            return UNIXClientEndpoint(self.reactor, u.path, timeout=self.timeout)
        if u.scheme != "tcp" or not u.hostname:
            raise HostError(f"unsupported endpoint {self.context.host}")
        port = u.port or (2376 if self.context.has_tls else 2375)
        tcp = TCP4ClientEndpoint(self.reactor, u.hostname, port, timeout=self.timeout)
        if not self.context.has_tls:
            return tcp
        assert self.context.tls_dir is not None
        d = self.context.tls_dir
        ca = Certificate.loadPEM((d / "ca.pem").read_bytes())
        client = PrivateCertificate.loadPEM(
            (d / "key.pem").read_bytes() + (d / "cert.pem").read_bytes()
        )
        options = optionsForClientTLS(u.hostname, trustRoot=ca, clientCertificate=client)
        return wrapClientTLS(options, tcp)


@attrs.define
class Client:
    """HTTP calls to one host's Engine API."""

    reactor: Any
    context: Context
    timeout: float
    pool: HTTPConnectionPool

    def _agent(self) -> Agent:
        agent: Agent = Agent.usingEndpointFactory(
            self.reactor, _OneHost(self.reactor, self.context, self.timeout), pool=self.pool
        )
        return agent

    async def request(
        self, method: str, path: str, body: object = None, timeout: float | None = None
    ) -> Any:
        """One call; returns the decoded JSON (or None). @raise HostError: any failure."""
        from io import BytesIO

        from twisted.web.client import FileBodyProducer

        headers = Headers({b"Host": [b"pyd"], b"User-Agent": [b"pyd-fleet"]})
        producer = None
        if body is not None:
            headers.addRawHeader(b"Content-Type", b"application/json")
            producer = FileBodyProducer(BytesIO(json.dumps(body).encode()))
        d = self._agent().request(
            method.encode(), f"http://pyd{API}{path}".encode(), headers, producer
        )
        d.addTimeout(timeout or self.timeout, self.reactor)
        try:
            response = await d
            data = await readBody(response).addTimeout(timeout or self.timeout, self.reactor)
        except Exception as e:  # every failure becomes this host's error row
            raise HostError(describe_failure(e)) from e
        if response.code >= 400:
            try:
                message = json.loads(data).get("message", "")
            except (ValueError, AttributeError):
                message = data.decode("utf-8", "replace").strip()
            raise HostError(f"{response.code}: {message}")
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError:
            return [json.loads(line) for line in data.splitlines() if line.strip()]


def describe_failure(e: BaseException) -> str:
    """A one-line reason for a transport failure."""
    if isinstance(e, defer.TimeoutError | defer.CancelledError | TimeoutError):
        return "error: timed out"
    if isinstance(e, ConnectionRefusedError):
        return "error: connection refused"
    if isinstance(e, ResponseFailed):
        reasons = [r.value for r in e.reasons if isinstance(r, Failure) and r.value is not None]
        if any(
            isinstance(r, defer.TimeoutError | defer.CancelledError | TimeoutError) for r in reasons
        ):
            return "error: timed out"
        for r in reasons:
            if "SSL" in type(r).__name__ or "ssl" in type(r).__module__.lower():
                return f"error: TLS refused: {_ssl_reason(r)}"
        if reasons:
            return f"error: {type(reasons[0]).__name__}: {reasons[0]}"
    if isinstance(e, ConnectError):
        return f"error: cannot connect: {e.osError or e}"
    if "VerificationError" in type(e).__name__:
        return f"error: server identity check failed: {e}"
    return f"error: {type(e).__name__}: {e}"


def _ssl_reason(e: BaseException) -> str:
    args: Any = getattr(e, "args", ())
    try:
        return ", ".join(str(x[2]) for x in args[0])
    except (IndexError, TypeError):
        return str(e)


# ---- commands: each returns (header, rows-per-host) -------------------------------------------

Row = tuple[str, ...]
Command = Callable[[Client], Awaitable[list[Row]]]


def _short(id_: str) -> str:
    return id_.removeprefix("sha256:")[:12]


def ps(all_: bool) -> tuple[Row, Command]:
    """C{docker ps} columns."""

    async def run(c: Client) -> list[Row]:
        items = await c.request("GET", "/containers/json" + ("?all=1" if all_ else ""))
        return [
            (
                _short(i["Id"]),
                i.get("Image", ""),
                json.dumps(i.get("Command", ""))[:30],
                i.get("Status", ""),
                ",".join(n.lstrip("/") for n in i.get("Names") or []),
            )
            for i in items or []
        ]

    return ("CONTAINER ID", "IMAGE", "COMMAND", "STATUS", "NAMES"), run


def images() -> tuple[Row, Command]:
    """C{docker images} columns."""

    async def run(c: Client) -> list[Row]:
        items = await c.request("GET", "/images/json")
        rows: list[Row] = []
        for i in items or []:
            for tag in i.get("RepoTags") or ["<none>:<none>"]:
                repo, _, t = tag.rpartition(":")
                rows.append((repo, t, _short(i["Id"]), f"{i.get('Size', 0) / 1e6:.1f}MB"))
        return rows

    return ("REPOSITORY", "TAG", "IMAGE ID", "SIZE"), run


def info() -> tuple[Row, Command]:
    """A digest of C{docker info}."""

    async def run(c: Client) -> list[Row]:
        i = await c.request("GET", "/info")
        return [
            (
                str(i.get("Name", "")),
                str(i.get("ServerVersion", "")),
                str(i.get("Containers", 0)),
                str(i.get("ContainersRunning", 0)),
                str(i.get("Images", 0)),
                str(i.get("KernelVersion", "")),
            )
        ]

    return ("NAME", "VERSION", "CONTAINERS", "RUNNING", "IMAGES", "KERNEL"), run


def events(since: str, until: str) -> tuple[Row, Command]:
    """Events in a bounded window (C{--until} is required so the table can end)."""

    async def run(c: Client) -> list[Row]:
        q = urlencode({"since": since, "until": until})
        items = await c.request("GET", "/events?" + q, timeout=c.timeout * 4)
        if isinstance(items, dict):
            items = [items]
        return [
            (
                str(e.get("time", "")),
                str(e.get("Type", "")),
                str(e.get("Action", "")),
                _short(str((e.get("Actor") or {}).get("ID", ""))),
            )
            for e in items or []
        ]

    return ("TIME", "TYPE", "ACTION", "ACTOR"), run


def run_container(image: str, cmd: Sequence[str], name: str | None) -> tuple[Row, Command]:
    """Create and start one detached container per host."""

    async def run(c: Client) -> list[Row]:
        body: dict[str, Any] = {"Image": image}
        if cmd:
            body["Cmd"] = list(cmd)
        path = "/containers/create" + (f"?name={quote(name)}" if name else "")
        created = await c.request("POST", path, body)
        cid = created["Id"]
        await c.request("POST", f"/containers/{cid}/start")
        return [(_short(cid), "started")]

    return ("CONTAINER ID", "RESULT"), run


def stop(names: Sequence[str], timeout: int | None) -> tuple[Row, Command]:
    """Stop the named containers on every host."""

    async def run(c: Client) -> list[Row]:
        rows: list[Row] = []
        for n in names:
            q = f"?t={timeout}" if timeout is not None else ""
            try:
                await c.request("POST", f"/containers/{quote(n, safe='')}/stop{q}")
                rows.append((n, "stopped"))
            except HostError as e:
                rows.append((n, str(e)))
        return rows

    return ("CONTAINER", "RESULT"), run


async def run_everywhere(
    reactor: Any, targets: Sequence[Context], command: Command, timeout: float
) -> dict[str, list[Row] | str]:
    """Run C{command} against all targets at once; a failure becomes that host's string."""
    pool = HTTPConnectionPool(reactor, persistent=False)

    async def one(ctx: Context) -> list[Row] | str:
        try:
            return await command(Client(reactor, ctx, timeout, pool))
        except HostError as e:
            return str(e)
        except Exception as e:  # noqa: BLE001  # a bug for one host must not hide the others
            return describe_failure(e)

    results = await defer.gatherResults(
        [defer.Deferred.fromCoroutine(one(t)) for t in targets], consumeErrors=True
    )
    await pool.closeCachedConnections()
    return {t.name: r for t, r in zip(targets, results, strict=True)}


def merge(header: Row, results: dict[str, list[Row] | str]) -> tuple[list[Row], bool]:
    """One table with a HOST column (and ERROR rows); also whether every host succeeded."""
    rows: list[Row] = [("HOST", *header)]
    ok = True
    for host in sorted(results):
        r = results[host]
        if isinstance(r, str):
            ok = False
            rows.append((host, r, *[""] * (len(header) - 1)))
        else:
            rows.extend((host, *row) for row in r)
    return rows, ok
