"""The C{pyd} command: certificates, the host inventory, and fleet-wide commands (layer: cli).

A client-side tool; it never imports the daemon's service, API or engine layers.

    pyd tls init|server|client|revoke|crl|show   certificates without openssl
    pyd hosts add|ls|rm                          the inventory (docker's context store)
    pyd fleet ps|images|info|events|logs|exec|run|stop|rm|pull
                                                 one command to many hosts at once

The parser is in L{pyd.cli.parser}; the fleet's transport in L{pyd.cli.fleet}, its subcommands in
L{pyd.cli.fleet_commands}, and how results print in L{pyd.cli.output}.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from pyd.cli import contexts
from pyd.cli import tls as tlscmd
from pyd.cli.output import HostResult, StreamPrinter, render, render_rows, summary
from pyd.cli.tls import CLIError
from pyd.core.seams import ICliReactor


def relative_time(v: str | None, now: float | None = None) -> str | None:
    """C{10m}/C{2h}/C{30s}/C{1d} as a Unix time before now; other forms go to the daemon as
    they are (a Unix time, RFC 3339), which parses them as dockerd does."""
    if not v:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if v[-1] in units and v[:-1].isdigit():
        return str(int((time.time() if now is None else now) - int(v[:-1]) * units[v[-1]]))
    return v


def _print(lines: Sequence[str]) -> None:
    for line in lines:
        print(line)


def _tls(args: argparse.Namespace) -> int:
    d = args.dir or tlscmd.default_dir()
    if args.cmd == "init":
        _print(tlscmd.cmd_init(d, args.cn, args.days, args.force))
    elif args.cmd == "server":
        _print(tlscmd.cmd_server(d, args.host, args.ip, args.days, args.out))
    elif args.cmd == "client":
        _print(
            tlscmd.cmd_client(
                d, args.name, args.role, args.days, args.out, args.context, args.docker_host
            )
        )
    elif args.cmd == "revoke":
        _print(tlscmd.cmd_revoke(d, args.name, args.serial))
    elif args.cmd == "crl":
        _print([f"revocation list {tlscmd.write_crl(d, tlscmd.load_ca(d))} rewritten"])
    elif args.cmd == "show":
        _print(tlscmd.cmd_show(d, args.files))
    return 0


def _labels(specs: Sequence[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        key, eq, value = spec.partition("=")
        if not key or not eq:
            raise CLIError(f"--label {spec}: expected KEY=VALUE")
        out[key] = value
    return out


def _react(go: Any) -> int:
    """Run C{go(reactor)} (a coroutine function returning the exit status) on a reactor.

    Ctrl-C does not stop the reactor outright: it fires the command's L{Interrupt} (when it has
    one) so streams end, the summary prints and the exit status still tells how the hosts did.
    """
    from twisted.internet import task
    from twisted.internet.defer import Deferred

    async def main(reactor: ICliReactor) -> None:
        code = await go(reactor)
        if code:
            raise SystemExit(code)  # react() exits with this status

    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)), [])
    return 0  # pragma: no cover - react() exits


def _hosts(args: argparse.Namespace) -> int:
    from pyd.cli import hosts

    if args.cmd == "add":
        files = None
        if args.tls_dir is not None:
            try:
                files = {f: (args.tls_dir / f).read_bytes() for f in contexts.TLS_FILES}
            except OSError as e:
                raise CLIError(f"--tls-dir {args.tls_dir}: {e.strerror}") from e
        try:
            contexts.write(
                args.name, args.host, files, args.description, labels=_labels(args.labels)
            )
        except ValueError as e:
            raise CLIError(str(e)) from e
        print(args.name)
    elif args.cmd == "ls":
        items = hosts.inventory()
        if not args.check:
            rows = hosts.ls_rows(items, contexts.current_name())
            if args.format == "table":
                rows = hosts.mark_current(rows)
            _print(render_rows(args.format, hosts.COLUMNS, rows))
            return 0

        async def go(reactor: ICliReactor) -> int:
            rows = await hosts.check_all(reactor, items, args.timeout)
            _print(render_rows(args.format, hosts.CHECK_COLUMNS, rows))
            results = [
                HostResult(r["Name"], error=None if r["Reachable"] else r["Error"] or "unreachable")
                for r in rows
            ]
            print(summary(results), file=sys.stderr)
            return 0 if all(r["Reachable"] for r in rows) else 1

        return _react(go)
    elif args.cmd == "rm":
        for n in args.names:
            try:
                contexts.remove(n)
            except KeyError:
                raise CLIError(f"context {n!r} does not exist") from None
            print(n)
    return 0


def _fleet(args: argparse.Namespace) -> int:
    from pyd.cli import fleet
    from pyd.cli import fleet_commands as fc

    try:
        inventory = [contexts.default_context(), *contexts.list_all()]
        targets = fleet.select(inventory, args.hosts, args.labels)
    except fleet.SelectionError as e:
        raise CLIError(str(e)) from None
    interrupt = fleet.Interrupt()
    printer = StreamPrinter(args.format, [t.name for t in targets], sys.stdout, sys.stderr)
    filters = getattr(args, "filters", [])
    columns: tuple[tuple[str, str], ...] = ()
    command: fleet.Command
    try:
        if args.cmd in ("ps", "images", "info", "run", "stop", "rm", "pull"):
            spec = {
                "ps": lambda: fc.ps(args.all, filters),
                "images": lambda: fc.images(filters),
                "info": fc.info,
                "run": lambda: fc.run_container(args.image, args.command, args.name),
                "stop": lambda: fc.stop(args.containers, args.time),
                "rm": lambda: fc.rm(args.containers, args.force, args.volumes),
                "pull": lambda: fc.pull(args.image),
            }[args.cmd]()
            columns, command = spec.columns, spec.command
        elif args.cmd == "events":
            since, until = relative_time(args.since), relative_time(args.until)
            command = fc.events(since, until, filters, printer, interrupt)
        elif args.cmd == "logs":
            command = fc.logs(
                args.name, args.tail, args.follow, args.timestamps, printer, interrupt
            )
        else:
            if not args.command:
                raise CLIError("exec needs a command")
            command = fc.exec_(args.name, args.command, args.user, printer, interrupt)
    except ValueError as e:
        raise CLIError(str(e)) from None
    streaming = not columns

    async def go(reactor: ICliReactor) -> int:
        if streaming:
            # After the reactor installed its own handler: Ctrl-C ends the streams instead.
            signal.signal(signal.SIGINT, lambda *_: reactor.callFromThread(interrupt.fire))
        results = await fleet.run_everywhere(reactor, targets, command, args.timeout)
        if streaming:
            for r in results:
                if r.error is not None:
                    printer.failure(r.host, r.error)
        else:
            _print(render(args.format, columns, results))
        print(summary(results), file=sys.stderr)
        return 0 if all(r.ok for r in results) else 1

    return _react(go)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the C{pyd} console script."""
    from pyd.cli.parser import build

    args = build().parse_args(argv)
    try:
        if args.group == "tls":
            return _tls(args)
        if args.group == "hosts":
            return _hosts(args)
        return _fleet(args)
    except CLIError as e:
        print(f"pyd: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
