"""The C{pyd} command: certificates, the host inventory, and fleet-wide commands (layer: cli).

A client-side tool; it never imports the daemon's service, API or engine layers.

    pyd tls init|server|client|revoke|crl|show   certificates without openssl
    pyd hosts add|ls|rm                          the inventory (docker's context store)
    pyd fleet ps|images|info|events|run|stop     one command to many hosts at once
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyd.cli import contexts
from pyd.cli import tls as tlscmd
from pyd.cli.tls import CLIError, table
from pyd.core import certs


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyd", description="pyd client: certificates, host inventory, fleet-wide commands"
    )
    sub = p.add_subparsers(dest="group", required=True)

    tls = sub.add_parser("tls", help="make and revoke certificates").add_subparsers(
        dest="cmd", required=True
    )
    dir_help = f"CA directory (default {tlscmd.default_dir()}; env PYD_TLS_DIR)"

    def add_dir(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--dir", type=Path, default=None, help=dir_help)

    sp = tls.add_parser("init", help="make a CA: DIR/ca.pem, DIR/ca-key.pem, DIR/crl.pem")
    add_dir(sp)
    sp.add_argument("--cn", default="pyd CA", help="CA common name")
    sp.add_argument("--days", type=int, default=certs.CA_DAYS)
    sp.add_argument("--force", action="store_true", help="replace an existing CA")
    sp = tls.add_parser("server", help="make DIR/server-cert.pem and DIR/server-key.pem")
    add_dir(sp)
    sp.add_argument("--host", action="append", default=[], help="DNS name (repeatable)")
    sp.add_argument("--ip", action="append", default=[], help="IP address (repeatable)")
    sp.add_argument("--days", type=int, default=certs.SERVER_DAYS)
    sp.add_argument("--out", type=Path, default=None, help="write here instead of DIR")
    sp = tls.add_parser("client", help="make OUT/{ca,cert,key}.pem for NAME with a role")
    add_dir(sp)
    sp.add_argument("name", help="the client's common name")
    sp.add_argument("--role", choices=certs.ROLES, default=None, help="omit: daemon default")
    sp.add_argument("--days", type=int, default=certs.CLIENT_DAYS)
    sp.add_argument("--out", type=Path, default=None, help="directory (default: current)")
    sp.add_argument("--context", default=None, help="write a docker context of this name")
    sp.add_argument("--docker-host", default=None, help="the context's tcp://HOST:2376")
    sp = tls.add_parser("revoke", help="revoke NAME's certificates and rewrite DIR/crl.pem")
    add_dir(sp)
    sp.add_argument("name")
    sp.add_argument("--serial", default=None, help="only this serial (hex)")
    sp = tls.add_parser("crl", help="rewrite DIR/crl.pem (renews its one-year validity)")
    add_dir(sp)
    sp = tls.add_parser("show", help="list the CA and what it issued, or describe FILEs")
    add_dir(sp)
    sp.add_argument("files", nargs="*")

    hosts = sub.add_parser("hosts", help="the host inventory (docker contexts)").add_subparsers(
        dest="cmd", required=True
    )
    sp = hosts.add_parser("add", help="add or replace a host")
    sp.add_argument("name")
    sp.add_argument("--host", required=True, help="tcp://HOST:2376 or unix:///path")
    sp.add_argument("--tls-dir", type=Path, default=None, help="directory with ca/cert/key.pem")
    sp.add_argument("--description", default="")
    hosts.add_parser("ls", help="list hosts")
    sp = hosts.add_parser("rm", help="remove hosts")
    sp.add_argument("names", nargs="+")

    fleet = sub.add_parser("fleet", help="run a command on many hosts at once")
    fleet.add_argument(
        "--host", dest="hosts", action="append", default=[], help="host/context (default: all)"
    )
    fleet.add_argument("--timeout", type=float, default=10.0, help="seconds per host")
    fsub = fleet.add_subparsers(dest="cmd", required=True)
    sp = fsub.add_parser("ps")
    sp.add_argument("-a", "--all", action="store_true")
    fsub.add_parser("images")
    fsub.add_parser("info")
    sp = fsub.add_parser("events")
    sp.add_argument("--since", default="10m", help="e.g. 10m or a Unix time")
    sp.add_argument("--until", default=None, help="default: now")
    sp = fsub.add_parser("run", help="create and start a detached container on every host")
    sp.add_argument("--name", default=None)
    sp.add_argument("image")
    sp.add_argument("command", nargs=argparse.REMAINDER)
    sp = fsub.add_parser("stop")
    sp.add_argument("-t", "--time", type=int, default=None)
    sp.add_argument("containers", nargs="+")
    return p


def _since(v: str) -> str:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if v and v[-1] in units and v[:-1].isdigit():
        return str(int(time.time()) - int(v[:-1]) * units[v[-1]])
    return v


def _print(lines: Sequence[str]) -> None:
    for line in lines:
        print(line)


def _tls(args: argparse.Namespace) -> int:
    d: Path = args.dir or tlscmd.default_dir()
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


def _hosts(args: argparse.Namespace) -> int:
    if args.cmd == "add":
        files = None
        if args.tls_dir is not None:
            try:
                files = {f: (args.tls_dir / f).read_bytes() for f in contexts.TLS_FILES}
            except OSError as e:
                raise CLIError(f"--tls-dir {args.tls_dir}: {e}") from e
        try:
            contexts.write(args.name, args.host, files, args.description)
        except ValueError as e:
            raise CLIError(str(e)) from e
        print(args.name)
    elif args.cmd == "ls":
        rows = [("NAME", "ENDPOINT", "TLS", "DESCRIPTION")]
        for c in contexts.list_all():
            rows.append((c.name, c.host, "yes" if c.has_tls else "no", c.description))
        _print(table(rows))
    elif args.cmd == "rm":
        for n in args.names:
            try:
                contexts.remove(n)
            except KeyError:
                raise CLIError(f"context {n!r} does not exist") from None
            print(n)
    return 0


def _fleet(args: argparse.Namespace) -> int:
    from twisted.internet import task
    from twisted.internet.defer import Deferred

    from pyd.cli import fleet

    if args.hosts:
        try:
            targets = [contexts.read(n) for n in args.hosts]
        except KeyError as e:
            raise CLIError(f"context {e.args[0]!r} does not exist") from None
    else:
        targets = [c for c in contexts.list_all() if c.host]
    if not targets:
        raise CLIError("no hosts: add some with `pyd hosts add` (or `docker context create`)")
    cmd: Any
    if args.cmd == "ps":
        cmd = fleet.ps(args.all)
    elif args.cmd == "images":
        cmd = fleet.images()
    elif args.cmd == "info":
        cmd = fleet.info()
    elif args.cmd == "events":
        cmd = fleet.events(_since(args.since), _since(args.until or str(int(time.time()))))
    elif args.cmd == "run":
        cmd = fleet.run_container(args.image, args.command, args.name)
    else:
        cmd = fleet.stop(args.containers, args.time)
    header, command = cmd

    async def go(reactor: Any) -> None:
        results = await fleet.run_everywhere(reactor, targets, command, args.timeout)
        rows, ok = fleet.merge(header, results)
        _print(table(rows))
        if not ok:
            raise SystemExit(1)

    task.react(lambda reactor: Deferred.fromCoroutine(go(reactor)), [])
    return 0  # not reached: react() exits


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the C{pyd} console script."""
    args = _parser().parse_args(argv)
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
