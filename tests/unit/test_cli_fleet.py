"""`pyd fleet` and `pyd hosts` without daemons: host selection, formatting, the per-host commands
against a fake client, stream framing, and per-host timeouts on a fake clock."""

from __future__ import annotations

import argparse
import io
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

import pyd
from pyd.cli import contexts, fleet, hosts, relative_time
from pyd.cli import fleet_commands as fc
from pyd.cli.contexts import Context
from pyd.cli.output import (
    HostResult,
    StreamPrinter,
    json_rows,
    render_rows,
    render_table,
    summary,
)
from pyd.cli.parser import build
from tests.helpers.sync import run_sync


def ctx(name: str, host: str = "tcp://10.0.0.1:2376", **labels: str) -> Context:
    return Context(name, host, labels=labels)


class FakeClient:
    """Stands in for L{fleet.Client}: canned JSON per (method, path prefix) and canned streams."""

    def __init__(self, name: str, answers: dict[tuple[str, str], Any]) -> None:
        self.name = name
        self.answers = answers
        self.calls: list[tuple[str, str, object]] = []

    def _answer(self, method: str, path: str) -> Any:
        for (m, prefix), value in self.answers.items():
            if m == method and path.startswith(prefix):
                if isinstance(value, Exception):
                    raise value
                return value
        raise AssertionError(f"unexpected {method} {path}")

    async def request(
        self, method: str, path: str, body: object = None, timeout: float | None = None
    ) -> Any:
        self.calls.append((method, path, body))
        return self._answer(method, path)

    async def stream(
        self,
        method: str,
        path: str,
        on_data: Callable[[bytes], None],
        body: object = None,
        stop: defer.Deferred[None] | None = None,
    ) -> None:
        self.calls.append((method, path, body))
        for chunk in self._answer(method, path):
            on_data(chunk)


def run(command: fleet.Command, client: FakeClient) -> list[dict[str, Any]]:
    return list(run_sync(command(client)))  # type: ignore[arg-type]  # the fake


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


class SelectionTests(SynchronousTestCase):
    """Hosts chosen by name, glob and label."""

    inventory = [
        ctx("web1", role="web"),
        ctx("web2", role="web"),
        ctx("db1", role="db", tier="gold"),
        Context("nohost", ""),
        Context("default", "unix:///var/run/docker.sock"),
    ]

    def names(self, patterns: list[str], labels: list[str] = []) -> list[str]:  # noqa: B006
        return [c.name for c in fleet.select(self.inventory, patterns, labels)]

    def test_all_by_default(self) -> None:
        """Without --host every context with an endpoint, sorted."""
        self.assertEqual(self.names([]), ["db1", "web1", "web2"])

    def test_glob_and_name(self) -> None:
        """A glob picks the matching contexts; a plain name picks that one."""
        self.assertEqual(self.names(["web*"]), ["web1", "web2"])
        self.assertEqual(self.names(["db1", "web?"]), ["db1", "web1", "web2"])

    def test_default_only_by_name(self) -> None:
        """The docker CLI's `default` context joins only when named."""
        self.assertNotIn("default", self.names(["*"]))
        self.assertEqual(self.names(["default"]), ["default"])

    def test_labels_narrow(self) -> None:
        """--label k=v keeps contexts with that value; --label k only asks for the key."""
        self.assertEqual(self.names([], ["role=web"]), ["web1", "web2"])
        self.assertEqual(self.names([], ["tier"]), ["db1"])
        with pytest.raises(
            fleet.SelectionError, match="no hosts match --host web1 --label role=db"
        ):
            self.names(["web1"], ["role=db"])

    def test_unknown_name_and_empty_glob(self) -> None:
        """A plain name that is no context is an error; so is a glob that matches nothing."""
        with pytest.raises(fleet.SelectionError, match="context 'nope' does not exist"):
            self.names(["nope"])
        with pytest.raises(fleet.SelectionError, match="no hosts match --host x\\*"):
            self.names(["x*"])


class OutputTests(SynchronousTestCase):
    """Tables with HOST, JSON rows with Host, the summary line."""

    results = [
        HostResult("h2", [{"ID": "b", "Names": "y"}]),
        HostResult("h1", [{"ID": "a", "Names": "x"}, {"ID": "c", "Names": "z"}]),
        HostResult("h3", error="timed out"),
    ]

    def test_table_has_host_column_and_error_rows(self) -> None:
        """One table sorted by host; a failed host's row holds its error."""
        lines = render_table((("CONTAINER ID", "ID"), ("NAMES", "Names")), self.results)
        self.assertEqual(lines[0].split(), ["HOST", "CONTAINER", "ID", "NAMES"])
        self.assertEqual([line.split()[0] for line in lines[1:]], ["h1", "h1", "h2", "h3"])
        self.assertIn("error: timed out", lines[-1])

    def test_json_rows_carry_host(self) -> None:
        """Each row is one JSON object with Host first; a failed host is an Error object."""
        rows = [json.loads(line) for line in json_rows(self.results)]
        self.assertEqual([r["Host"] for r in rows], ["h1", "h1", "h2", "h3"])
        self.assertEqual(list(rows[0]), ["Host", "ID", "Names"])
        self.assertEqual(rows[-1], {"Host": "h3", "Error": "timed out"})

    def test_row_errors_fail_the_host(self) -> None:
        """A row with an Error (one container that failed) counts its host as failed and the
        table grows an ERROR column."""
        res = [
            HostResult("h1", [{"Container": "a", "Result": "", "Error": "No such container: a"}])
        ]
        self.assertFalse(res[0].ok)
        lines = render_table((("CONTAINER", "Container"), ("RESULT", "Result")), res)
        self.assertTrue(lines[0].endswith("ERROR"))
        self.assertIn("No such container: a", lines[1])

    def test_summary(self) -> None:
        """N hosts ok, M failed, naming the failed ones."""
        self.assertEqual(summary(self.results), "2 hosts ok, 1 failed (h3)")
        self.assertEqual(summary(self.results[:1]), "1 host ok, 0 failed")

    def test_stream_printer_prefixes_and_json(self) -> None:
        """Stream lines are prefixed by the host padded to the widest name; JSON has Host."""
        out, err = io.StringIO(), io.StringIO()
        p = StreamPrinter("table", ["a", "long"], out, err)
        p.line("a", "hello", {})
        p.line("long", "oops", {}, stderr=True)
        p.failure("a", "refused")
        self.assertEqual(out.getvalue(), "a    | hello\n")
        self.assertEqual(err.getvalue(), "long | oops\na    | error: refused\n")
        out = io.StringIO()
        StreamPrinter("json", ["a"], out, err).line("a", "x", {"Line": "x"})
        self.assertEqual(json.loads(out.getvalue()), {"Host": "a", "Line": "x"})


class CommandTests(SynchronousTestCase):
    """The per-host commands against a fake client."""

    def test_ps_rows_and_filters(self) -> None:
        """ps passes -a and --filter as dockerd's query and makes docker ps's JSON keys."""
        client = FakeClient(
            "h1",
            {
                ("GET", "/containers/json"): [
                    {
                        "Id": "0123456789abcdef" * 4,
                        "Image": "app:1",
                        "Command": "httpd -f -p 8080 -h /www",
                        "State": "running",
                        "Status": "Up 2 minutes",
                        "Names": ["/app"],
                        "Ports": [
                            {
                                "IP": "0.0.0.0",
                                "PrivatePort": 8080,
                                "PublicPort": 18080,
                                "Type": "tcp",
                            }
                        ],
                        "Labels": {"a": "b"},
                    }
                ]
            },
        )
        spec = fc.ps(True, ["name=app", "label=a=b"])
        [row] = run(spec.command, client)
        _, path, _ = client.calls[0]
        self.assertIn("all=1", path)
        q = dict(x.split("=", 1) for x in path.split("?")[1].split("&"))
        from urllib.parse import unquote_plus

        self.assertEqual(
            json.loads(unquote_plus(q["filters"])), {"name": ["app"], "label": ["a=b"]}
        )
        self.assertEqual(row["ID"], "0123456789ab")
        self.assertEqual(row["Names"], "app")
        self.assertEqual(row["Ports"], "0.0.0.0:18080->8080/tcp")
        self.assertEqual(row["Command"], '"httpd -f -p 8080 -h…"')

    def test_bad_filter(self) -> None:
        """A filter without '=' is refused before any host is asked."""
        with pytest.raises(ValueError, match="bad format of filter"):
            fc.ps(False, ["oops"])

    def test_rm_reports_each_container(self) -> None:
        """rm -f -v asks for force and volumes; a missing container is that row's error."""
        client = FakeClient(
            "h1",
            {
                ("DELETE", "/containers/a?"): None,
                ("DELETE", "/containers/b?"): fleet.HostError("No such container: b"),
            },
        )
        rows = run(fc.rm(["a", "b"], True, True).command, client)
        self.assertEqual(client.calls[0][1], "/containers/a?force=1&v=1")
        self.assertEqual(rows[0], {"Container": "a", "Result": "removed"})
        self.assertEqual(rows[1]["Error"], "No such container: b")

    def test_pull_status_and_error(self) -> None:
        """pull keeps the daemon's last status; an error line fails the host."""
        ok = FakeClient(
            "h1",
            {
                ("POST", "/images/create"): [
                    b'{"status":"Pulling from app"}\n{"status":"Digest: sha256:x"}\n',
                    b'{"status":"Status: Downloaded newer image for reg:5000/app:1"}\n',
                ]
            },
        )
        [row] = run(fc.pull("reg:5000/app:1").command, ok)
        self.assertIn("fromImage=reg%3A5000%2Fapp&tag=1", ok.calls[0][1])
        self.assertEqual(row["Status"], "Downloaded newer image for reg:5000/app:1")
        bad = FakeClient(
            "h2",
            {("POST", "/images/create"): [b'{"error":"manifest unknown","errorDetail":{}}\n']},
        )
        with pytest.raises(fleet.HostError, match="manifest unknown"):
            run(fc.pull("app").command, bad)

    def test_split_reference(self) -> None:
        """Registry ports are not tags; digests are kept."""
        self.assertEqual(fc.split_reference("reg:5000/app"), ("reg:5000/app", "latest"))
        self.assertEqual(fc.split_reference("app:1"), ("app", "1"))
        self.assertEqual(fc.split_reference("app@sha256:ab"), ("app", "sha256:ab"))

    def test_exec_prints_prefixed_lines_and_fails_on_exit_code(self) -> None:
        """exec demultiplexes stdout/stderr into host-prefixed lines; exit 3 fails the host."""
        out, err = io.StringIO(), io.StringIO()
        printer = StreamPrinter("table", ["h1"], out, err)
        client = FakeClient(
            "h1",
            {
                ("POST", "/containers/app/exec"): {"Id": "e1"},
                ("POST", "/exec/e1/start"): [
                    frame(1, b"one\ntw"),
                    frame(1, b"o\n"),
                    frame(2, b"bad"),
                ],
                ("GET", "/exec/e1/json"): {"ExitCode": 3},
            },
        )
        rows = run(fc.exec_("app", ["sh", "-c", "x"], None, printer, fleet.Interrupt()), client)
        self.assertEqual(out.getvalue(), "h1 | one\nh1 | two\n")
        self.assertEqual(err.getvalue(), "h1 | bad\nh1 | error: exit code 3\n")
        self.assertEqual(rows, [{"ExitCode": 3, "Error": "exit code 3"}])
        self.assertEqual(client.calls[0][2]["Cmd"], ["sh", "-c", "x"])  # type: ignore[index]  # the recorded call's body is the JSON object the command sent

    def test_logs_tty_is_raw_and_query(self) -> None:
        """logs of a TTY container are not demultiplexed; --tail and -f reach the query."""
        out = io.StringIO()
        printer = StreamPrinter("json", ["h1"], out, io.StringIO())
        client = FakeClient(
            "h1",
            {
                ("GET", "/containers/app/json"): {"Config": {"Tty": True}},
                ("GET", "/containers/app/logs"): [b"raw line\n"],
            },
        )
        run(fc.logs("app", "5", True, False, printer, fleet.Interrupt()), client)
        self.assertIn("tail=5", client.calls[1][1])
        self.assertIn("follow=1", client.calls[1][1])
        self.assertEqual(
            json.loads(out.getvalue()), {"Host": "h1", "Stream": "stdout", "Line": "raw line"}
        )

    def test_event_line_like_docker_events(self) -> None:
        """Time with nanoseconds, type, action, actor id and sorted attributes."""
        line = fc.event_line(
            {
                "Type": "container",
                "Action": "start",
                "Actor": {"ID": "abc", "Attributes": {"name": "x", "image": "busybox"}},
                "timeNano": 1_700_000_000_123_456_789,
            }
        )
        self.assertEqual(
            line, "2023-11-14T22:13:20.123456789Z container start abc (image=busybox, name=x)"
        )

    def test_relative_time(self) -> None:
        """10m is ten minutes before now; other forms go to the daemon unchanged."""
        self.assertEqual(relative_time("10m", now=1000.0), "400")
        self.assertEqual(relative_time("2026-01-01T00:00:00Z"), "2026-01-01T00:00:00Z")
        self.assertIsNone(relative_time(None))


class FramingTests(SynchronousTestCase):
    """Line splitting and stdcopy demultiplexing across chunk boundaries."""

    def test_frames_split_anywhere(self) -> None:
        """A frame cut in the header or the payload is held until complete."""
        got: list[tuple[int, bytes]] = []
        demux = fleet.FrameDemux(lambda s, d: got.append((s, d)))
        data = frame(1, b"hello") + frame(2, b"err")
        for i in range(len(data)):
            demux.feed(data[i : i + 1])
        self.assertEqual(got, [(1, b"hello"), (2, b"err")])

    def test_lines(self) -> None:
        """Complete lines go out at once; the tail waits for flush; CRLF is trimmed."""
        got: list[bytes] = []
        s = fleet.LineSplitter(got.append)
        s.feed(b"a\r\nb")
        self.assertEqual(got, [b"a"])
        s.flush()
        self.assertEqual(got, [b"a", b"b"])


class TimeoutTests(SynchronousTestCase):
    """A hung host is reported after its own timeout and does not hold up the others."""

    def test_hung_host_times_out_alone(self) -> None:
        """One host never connects; the other's rows are ready at once; after the timeout the
        hung one is an error row and nothing else waited."""
        reactor = MemoryReactorClock()
        targets = [ctx("fast"), ctx("hung", "tcp://10.0.0.9:2376")]

        async def command(c: fleet.Client) -> list[dict[str, Any]]:
            if c.name == "fast":
                return [{"Name": "fast"}]
            return [await c.request("GET", "/info")]

        d = defer.Deferred.fromCoroutine(fleet.run_everywhere(reactor, targets, command, 5.0))
        self.assertNoResult(d)
        self.assertEqual(len(reactor.tcpClients), 1)  # the hung host's connection attempt
        reactor.advance(4.9)
        self.assertNoResult(d)
        reactor.advance(0.2)
        results = {r.host: r for r in self.successResultOf(d)}
        self.assertEqual(results["fast"].rows, [{"Name": "fast"}])
        self.assertEqual(results["hung"].error, "timed out")

    def test_interrupt_fires_every_waiter(self) -> None:
        """Every stream's stop Deferred fires once; later waiters fire at once."""
        i = fleet.Interrupt()
        a, b = i.wait(), i.wait()
        i.fire()
        self.successResultOf(a)
        self.successResultOf(b)
        self.successResultOf(i.wait())


class ContextTests(SynchronousTestCase):
    """Labels in the context store; the default context; `hosts ls` rows."""

    def setUp(self) -> None:
        import os
        import tempfile

        self.base = Path(tempfile.mkdtemp(prefix="pyd-t-ctx-"))
        self.addCleanup(__import__("shutil").rmtree, self.base, True)
        self.env = {k: os.environ.get(k) for k in ("DOCKER_HOST", "DOCKER_CONTEXT")}

        def restore() -> None:
            for k, v in self.env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

        self.addCleanup(restore)

    def test_labels_round_trip_in_metadata(self) -> None:
        """Labels are stored in the context's Metadata, next to docker's Description."""
        contexts.write("w1", "tcp://10.0.0.1:2376", None, "web", self.base, {"role": "web"})
        meta = json.loads((contexts.meta_dir("w1", self.base) / "meta.json").read_text())
        self.assertEqual(meta["Metadata"], {"Description": "web", "Labels": {"role": "web"}})
        self.assertEqual(contexts.read("w1", self.base).labels, {"role": "web"})

    def test_default_and_current(self) -> None:
        """`default` shows DOCKER_HOST; the current context comes from DOCKER_CONTEXT or
        config.json, and `hosts ls` marks it with *."""
        import os

        os.environ["DOCKER_HOST"] = "tcp://10.0.0.7:2375"
        os.environ.pop("DOCKER_CONTEXT", None)
        d = contexts.default_context()
        self.assertEqual((d.name, d.host), ("default", "tcp://10.0.0.7:2375"))
        self.assertEqual(contexts.current_name(self.base), "default")
        (self.base / "config.json").write_text(json.dumps({"currentContext": "w1"}))
        self.assertEqual(contexts.current_name(self.base), "w1")
        os.environ["DOCKER_CONTEXT"] = "w2"
        self.assertEqual(contexts.current_name(self.base), "w2")
        rows = hosts.ls_rows([d, ctx("w2")], "w2")
        self.assertEqual(
            [(r["Name"], r["Current"]) for r in rows], [("default", False), ("w2", True)]
        )
        self.assertEqual([r["Name"] for r in hosts.mark_current(rows)], ["default", "w2 *"])


class ParserTests(SynchronousTestCase):
    """Help on everything, --version, --format everywhere in fleet."""

    def _walk(self, p: argparse.ArgumentParser, path: str) -> list[str]:
        missing = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                for name, sub in action.choices.items():
                    if not helps.get(name):
                        missing.append(f"{path} {name}")
                    missing += self._walk(sub, f"{path} {name}")
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
        return missing

    def test_every_command_and_option_has_help(self) -> None:
        """No subcommand, option or argument without a help text."""
        self.assertEqual(self._walk(build(), "pyd"), [])

    def test_every_fleet_command_takes_format(self) -> None:
        """--format table|json on each fleet subcommand."""
        p = build()
        for cmd in ("ps", "images", "info", "events", "run x", "stop a", "rm a", "pull x"):
            name, *rest = cmd.split()
            args = p.parse_args(["fleet", name, "--format", "json", *rest])
            self.assertEqual(args.format, "json")
        args = p.parse_args(["fleet", "logs", "--format", "json", "app"])
        self.assertEqual(args.format, "json")
        args = p.parse_args(["fleet", "exec", "--format", "json", "app", "ls", "-l"])
        self.assertEqual((args.format, args.command), ("json", ["ls", "-l"]))

    def test_version(self) -> None:
        """`pyd --version` prints the package version."""
        out = io.StringIO()
        import contextlib

        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
            build().parse_args(["--version"])
        self.assertEqual(e.value.code, 0)
        self.assertEqual(out.getvalue().strip(), f"pyd version {pyd.__version__}")


class HostCheckTests(SynchronousTestCase):
    """`pyd hosts ls --check` reading /version answers, and its plain tables."""

    def test_version_answer_plain_and_chunked(self) -> None:
        """A Content-Length body and a chunked one both give the version object."""
        body = b'{"ApiVersion":"1.50","Version":"28.2.2"}'
        plain = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        self.assertEqual(hosts._parse_version(plain)["ApiVersion"], "1.50")
        chunked = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )
        self.assertEqual(hosts._parse_version(chunked)["Version"], "28.2.2")

    def test_refusal_is_a_host_error(self) -> None:
        """A 403 (a certificate without the right) is that host's error."""
        with pytest.raises(fleet.HostError, match="403 Forbidden"):
            hosts._parse_version(b"HTTP/1.1 403 Forbidden\r\n\r\n{}")

    def test_plain_rows(self) -> None:
        """Rows of no host print without a HOST column, or as JSON objects."""
        rows = [{"Name": "a", "Reachable": True}, {"Name": "b", "Reachable": False}]
        cols = (("NAME", "Name"), ("REACHABLE", "Reachable"))
        self.assertEqual(
            render_rows("table", cols, rows), ["NAME   REACHABLE", "a      true", "b      false"]
        )
        self.assertEqual(json.loads(render_rows("json", cols, rows)[1]), rows[1])
