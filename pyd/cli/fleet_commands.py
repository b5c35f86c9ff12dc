"""The C{pyd fleet} subcommands: what each asks one host and the rows it makes (layer: cli).

Table commands (ps, images, info, run, stop, rm, pull) return rows keyed like C{docker ... --format
json} (C{ID}, C{Image}, C{Names}...) and name the columns a table shows. Stream commands (events,
logs, exec) print lines as they arrive through a L{StreamPrinter} and return no rows; they end
when the daemon ends the stream or the L{Interrupt} fires.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

import attrs

from pyd.cli.fleet import Client, Command, FrameDemux, HostError, Interrupt, LineSplitter
from pyd.cli.output import Column, StreamPrinter


@attrs.frozen
class Spec:
    """A fleet subcommand: the table's columns and the per-host command."""

    columns: tuple[Column, ...]
    command: Command


def filters_query(filters: Sequence[str]) -> dict[str, str]:
    """C{--filter k=v} (repeatable) as the API's C{filters} parameter ({} when none)."""
    out: dict[str, list[str]] = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or not key:
            raise ValueError(f"bad format of filter (expected name=value): {f}")
        out.setdefault(key, []).append(value)
    return {"filters": json.dumps(out)} if out else {}


def _q(params: dict[str, str]) -> str:
    return ("?" + urlencode(params)) if params else ""


def _short(id_: str) -> str:
    return id_.removeprefix("sha256:")[:12]


def _size(n: float) -> str:
    """docker's C{units.HumanSizeWithPrecision(n, 3)} (decimal units)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}TB"  # pragma: no cover - the loop always returns


def _ports(ports: Sequence[dict[str, Any]]) -> str:
    out = []
    for p in ports:
        inner = f"{p.get('PrivatePort')}/{p.get('Type', 'tcp')}"
        if p.get("PublicPort"):
            out.append(f"{p.get('IP', '')}:{p['PublicPort']}->{inner}".lstrip(":"))
        else:
            out.append(inner)
    return ", ".join(dict.fromkeys(out))


def _created(seconds: int) -> str:
    """C{docker ps --format json}'s C{CreatedAt} (Go's time.String() in UTC)."""
    when = datetime.datetime.fromtimestamp(int(seconds), datetime.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def _command(c: str) -> str:
    text = c if len(c) <= 20 else c[:19] + "…"
    return f'"{text}"'


def ps(all_: bool, filters: Sequence[str]) -> Spec:
    """C{docker ps [-a] [--filter ...]}."""
    params = {"all": "1"} if all_ else {}
    params.update(filters_query(filters))

    async def run(c: Client) -> list[dict[str, Any]]:
        items = await c.request("GET", "/containers/json" + _q(params))
        return [
            {
                "ID": _short(i["Id"]),
                "Image": i.get("Image", ""),
                "Command": _command(i.get("Command") or ""),
                "CreatedAt": _created(i.get("Created", 0)),
                "State": i.get("State", ""),
                "Status": i.get("Status", ""),
                "Ports": _ports(i.get("Ports") or []),
                "Names": ",".join(n.lstrip("/") for n in i.get("Names") or []),
                "Labels": i.get("Labels") or {},
            }
            for i in items or []
        ]

    return Spec(
        (
            ("CONTAINER ID", "ID"),
            ("IMAGE", "Image"),
            ("COMMAND", "Command"),
            ("STATUS", "Status"),
            ("PORTS", "Ports"),
            ("NAMES", "Names"),
        ),
        run,
    )


def images(filters: Sequence[str]) -> Spec:
    """C{docker images [--filter ...]}."""
    params = filters_query(filters)

    async def run(c: Client) -> list[dict[str, Any]]:
        items = await c.request("GET", "/images/json" + _q(params))
        rows = []
        for i in items or []:
            for tag in i.get("RepoTags") or ["<none>:<none>"]:
                repo, _, t = tag.rpartition(":")
                rows.append(
                    {
                        "Repository": repo,
                        "Tag": t,
                        "ID": _short(i["Id"]),
                        "Size": _size(i.get("Size", 0)),
                        "Containers": i.get("Containers", -1),
                    }
                )
        return rows

    return Spec(
        (("REPOSITORY", "Repository"), ("TAG", "Tag"), ("IMAGE ID", "ID"), ("SIZE", "Size")), run
    )


def info() -> Spec:
    """A digest of C{docker info}."""

    async def run(c: Client) -> list[dict[str, Any]]:
        i = await c.request("GET", "/info") or {}
        return [
            {
                "Name": str(i.get("Name", "")),
                "ServerVersion": str(i.get("ServerVersion", "")),
                "Containers": i.get("Containers", 0),
                "ContainersRunning": i.get("ContainersRunning", 0),
                "Images": i.get("Images", 0),
                "KernelVersion": str(i.get("KernelVersion", "")),
                "OperatingSystem": str(i.get("OperatingSystem", "")),
            }
        ]

    return Spec(
        (
            ("NAME", "Name"),
            ("VERSION", "ServerVersion"),
            ("CONTAINERS", "Containers"),
            ("RUNNING", "ContainersRunning"),
            ("IMAGES", "Images"),
            ("KERNEL", "KernelVersion"),
        ),
        run,
    )


def run_container(image: str, cmd: Sequence[str], name: str | None) -> Spec:
    """Create and start one detached container per host."""

    async def run(c: Client) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"Image": image}
        if cmd:
            body["Cmd"] = list(cmd)
        path = "/containers/create" + (f"?name={quote(name)}" if name else "")
        created = await c.request("POST", path, body)
        cid = created["Id"]
        await c.request("POST", f"/containers/{cid}/start")
        return [{"ID": _short(cid), "Result": "started"}]

    return Spec((("CONTAINER ID", "ID"), ("RESULT", "Result")), run)


def _each(names: Sequence[str], method: str, path: str, done: str) -> Command:
    """Apply one call to each named container; a container's error is its row's C{Error}."""

    async def run(c: Client) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for n in names:
            try:
                await c.request(method, path.format(quote(n, safe="")))
                rows.append({"Container": n, "Result": done})
            except HostError as e:
                rows.append({"Container": n, "Result": "", "Error": str(e)})
        return rows

    return run


def stop(names: Sequence[str], timeout: int | None) -> Spec:
    """Stop the named containers on every host."""
    q = f"?t={timeout}" if timeout is not None else ""
    return Spec(
        (("CONTAINER", "Container"), ("RESULT", "Result")),
        _each(names, "POST", "/containers/{}/stop" + q, "stopped"),
    )


def rm(names: Sequence[str], force: bool, volumes: bool) -> Spec:
    """Remove the named containers on every host (C{docker rm [-f] [-v]})."""
    q = _q({k: "1" for k, on in (("force", force), ("v", volumes)) if on})
    return Spec(
        (("CONTAINER", "Container"), ("RESULT", "Result")),
        _each(names, "DELETE", "/containers/{}" + q, "removed"),
    )


def split_reference(ref: str) -> tuple[str, str]:
    """C{repo[:tag]} or C{repo@digest} as C{fromImage} and C{tag} (tag C{latest} by default)."""
    if "@" in ref:
        repo, _, digest = ref.partition("@")
        return repo, digest
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, "latest"


def pull(ref: str) -> Spec:
    """C{docker pull REF} on every host; the row holds the last status the daemon sent."""
    repo, tag = split_reference(ref)
    path = "/images/create?" + urlencode({"fromImage": repo, "tag": tag})

    async def run(c: Client) -> list[dict[str, Any]]:
        last: dict[str, Any] = {}
        errors: list[str] = []

        def on_line(line: bytes) -> None:
            nonlocal last
            try:
                msg = json.loads(line)
            except ValueError:
                return
            if not isinstance(msg, dict):
                return
            if msg.get("error"):
                errors.append(str(msg["error"]))
            elif msg.get("status"):
                last = msg

        splitter = LineSplitter(on_line)
        await c.stream("POST", path, splitter.feed)
        splitter.flush()
        if errors:
            raise HostError(errors[-1])
        status = str(last.get("status", "")).removeprefix("Status: ")
        return [{"Image": ref, "Status": status}]

    return Spec((("IMAGE", "Image"), ("STATUS", "Status")), run)


# ---- streams ------------------------------------------------------------------------------------


def event_line(e: dict[str, Any]) -> str:
    """An event as C{docker events} prints it: time, type, action, actor id (attributes)."""
    nano = int(e.get("timeNano") or int(e.get("time") or 0) * 1_000_000_000)
    when = datetime.datetime.fromtimestamp(nano // 1_000_000_000, datetime.UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S") + f".{nano % 1_000_000_000:09d}Z"
    actor = e.get("Actor") or {}
    attrs_ = actor.get("Attributes") or {}
    text = f"{stamp} {e.get('Type', '')} {e.get('Action', '')} {actor.get('ID', '')}"
    if attrs_:
        text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(attrs_.items())) + ")"
    return text


def events(
    since: str | None,
    until: str | None,
    filters: Sequence[str],
    printer: StreamPrinter,
    interrupt: Interrupt,
) -> Command:
    """Stream every host's events until C{until} (the daemon ends the stream) or interrupted."""
    params = {k: v for k, v in (("since", since), ("until", until)) if v}
    params.update(filters_query(filters))

    async def run(c: Client) -> list[dict[str, Any]]:
        def on_line(line: bytes) -> None:
            if not line.strip():
                return
            try:
                e = json.loads(line)
            except ValueError:
                return
            printer.line(c.name, event_line(e), e)

        splitter = LineSplitter(on_line)
        await c.stream("GET", "/events" + _q(params), splitter.feed, stop=interrupt.wait())
        splitter.flush()
        return []

    return run


def _printing_demux(c: Client, printer: StreamPrinter, tty: bool) -> tuple[FrameDemux, Any]:
    """A demultiplexer that prints each line of stdout/stderr with the host's prefix."""
    names = {1: "stdout", 2: "stderr"}

    def emit(stream: int) -> Any:
        def on_line(line: bytes) -> None:
            text = line.decode("utf-8", "replace")
            printer.line(
                c.name, text, {"Stream": names.get(stream, "stdout"), "Line": text}, stream == 2
            )

        return LineSplitter(on_line)

    splitters = {1: emit(1), 2: emit(2)}
    demux = FrameDemux(lambda s, data: splitters.get(s, splitters[1]).feed(data), raw=tty)

    def flush() -> None:
        for s in splitters.values():
            s.flush()

    return demux, flush


def logs(
    name: str,
    tail: str | None,
    follow: bool,
    timestamps: bool,
    printer: StreamPrinter,
    interrupt: Interrupt,
) -> Command:
    """Every host's log of container C{name}, each line prefixed by its host."""
    params = {"stdout": "1", "stderr": "1"}
    if tail is not None:
        params["tail"] = tail
    if follow:
        params["follow"] = "1"
    if timestamps:
        params["timestamps"] = "1"
    cname = quote(name, safe="")

    async def run(c: Client) -> list[dict[str, Any]]:
        info = await c.request("GET", f"/containers/{cname}/json")
        tty = bool(((info or {}).get("Config") or {}).get("Tty"))
        demux, flush = _printing_demux(c, printer, tty)
        await c.stream(
            "GET", f"/containers/{cname}/logs" + _q(params), demux.feed, stop=interrupt.wait()
        )
        flush()
        return []

    return run


def exec_(
    name: str, cmd: Sequence[str], user: str | None, printer: StreamPrinter, interrupt: Interrupt
) -> Command:
    """Run C{cmd} in container C{name} on every host; output lines are prefixed by the host and
    a non-zero exit code fails that host."""
    cname = quote(name, safe="")

    async def run(c: Client) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"AttachStdout": True, "AttachStderr": True, "Cmd": list(cmd)}
        if user:
            body["User"] = user
        created = await c.request("POST", f"/containers/{cname}/exec", body)
        eid = created["Id"]
        demux, flush = _printing_demux(c, printer, False)
        await c.stream(
            "POST",
            f"/exec/{eid}/start",
            demux.feed,
            body={"Detach": False, "Tty": False},
            stop=interrupt.wait(),
        )
        flush()
        if interrupt.fired:
            return []
        state = await c.request("GET", f"/exec/{eid}/json") or {}
        code = state.get("ExitCode")
        if code:
            printer.failure(c.name, f"exit code {code}")
            return [{"ExitCode": code, "Error": f"exit code {code}"}]
        return []

    return run
