"""The C{pyd} command line: every group, subcommand and option, each with its help (layer: cli)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyd
from pyd.cli import tls as tlscmd
from pyd.cli.output import FORMATS
from pyd.core import certs

FLEET_EPILOG = """\
hosts are docker contexts (`pyd hosts add`, `docker context create`); all of them unless
--host/--label choose. A host that fails is reported in its own row and the command exits 1
after the summary line (on stderr): N hosts ok, M failed.

examples:
  pyd fleet --host 'web*' ps --format json
  pyd fleet --label role=web exec app wget -qO- http://127.0.0.1:8080/
  pyd fleet logs app --tail 20 -f
  pyd fleet events --since 10m
"""


def _fmt(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (default) or json: one JSON object per line, each with a Host field",
    )


def _filters(sp: argparse.ArgumentParser, example: str) -> None:
    sp.add_argument(
        "-f",
        "--filter",
        dest="filters",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"filter as docker does (repeatable), e.g. {example}",
    )


def _tls_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tls = sub.add_parser(
        "tls",
        help="make and revoke certificates",
        description="A CA, server and client "
        "certificates with roles, and revocation, without openssl.",
    ).add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    dir_help = f"CA directory (default {tlscmd.default_dir()}; env PYD_TLS_DIR)"

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = tls.add_parser(name, help=help_, description=help_)
        sp.add_argument("--dir", type=Path, default=None, help=dir_help)
        return sp

    sp = add("init", "make a CA: DIR/ca.pem, DIR/ca-key.pem, DIR/crl.pem")
    sp.add_argument("--cn", default="pyd CA", help="the CA's common name (default: pyd CA)")
    sp.add_argument("--days", type=int, default=certs.CA_DAYS, help="validity in days")
    sp.add_argument("--force", action="store_true", help="replace an existing CA")
    sp = add("server", "make DIR/server-cert.pem and DIR/server-key.pem for a daemon")
    sp.add_argument("--host", action="append", default=[], help="DNS name (repeatable)")
    sp.add_argument("--ip", action="append", default=[], help="IP address (repeatable)")
    sp.add_argument("--days", type=int, default=certs.SERVER_DAYS, help="validity in days")
    sp.add_argument("--out", type=Path, default=None, help="write here instead of DIR")
    sp = add("client", "make OUT/{ca,cert,key}.pem for NAME with a role")
    sp.add_argument("name", help="the client's common name")
    sp.add_argument(
        "--role", choices=certs.ROLES, default=None, help="the role (omit: the daemon's default)"
    )
    sp.add_argument("--days", type=int, default=certs.CLIENT_DAYS, help="validity in days")
    sp.add_argument("--out", type=Path, default=None, help="directory (default: current)")
    sp.add_argument("--context", default=None, help="also write a docker context of this name")
    sp.add_argument("--docker-host", default=None, help="the context's tcp://HOST:2376")
    sp = add("revoke", "revoke NAME's certificates and rewrite DIR/crl.pem")
    sp.add_argument("name", help="the common name whose certificates to revoke")
    sp.add_argument("--serial", default=None, help="only this serial (hex)")
    add("crl", "rewrite DIR/crl.pem (renews its one-year validity)")
    sp = add("show", "list the CA and what it issued, or describe FILEs")
    sp.add_argument("files", nargs="*", help="certificate files to describe instead")


def _hosts_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hosts = sub.add_parser(
        "hosts",
        help="the host inventory (docker contexts)",
        description="The host inventory: docker's context store ($DOCKER_CONFIG/contexts), "
        "shared with `docker context` and `docker --context`.",
    ).add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sp = hosts.add_parser("add", help="add or replace a host", description="Add or replace a host.")
    sp.add_argument("name", help="the context's name")
    sp.add_argument("--host", required=True, help="tcp://HOST:2376 or unix:///path")
    sp.add_argument(
        "--tls-dir", type=Path, default=None, help="directory with ca.pem, cert.pem, key.pem"
    )
    sp.add_argument("--description", default="", help="free text shown by `ls`")
    sp.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label for choosing hosts with `pyd fleet --label` (repeatable)",
    )
    sp = hosts.add_parser(
        "ls",
        help="list hosts (with --check: are they up, and until when are their certificates valid)",
        description="List the contexts, `default` first and the current one marked with *.",
    )
    sp.add_argument(
        "--check",
        action="store_true",
        help="contact every host at once: reachability, API version, certificate expiry",
    )
    sp.add_argument("--timeout", type=float, default=10.0, help="seconds per host for --check")
    _fmt(sp)
    sp = hosts.add_parser("rm", help="remove hosts", description="Remove contexts.")
    sp.add_argument("names", nargs="+", help="the contexts to remove")


def _fleet_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fleet = sub.add_parser(
        "fleet",
        help="run a command on many hosts at once",
        description="Run one command on many hosts at once, over each context's mutual TLS.",
        epilog=FLEET_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fleet.add_argument(
        "--host",
        dest="hosts",
        action="append",
        default=[],
        metavar="NAME|GLOB",
        help="a context name or a glob such as 'web*' (repeatable; default: every context)",
    )
    fleet.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=[],
        metavar="KEY[=VALUE]",
        help="only contexts with this label (from `pyd hosts add --label`; repeatable)",
    )
    fleet.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds per host to connect and answer (streams then run on; default 10)",
    )
    fsub = fleet.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = fsub.add_parser(name, help=help_, description=help_)
        _fmt(sp)
        return sp

    sp = add("ps", "list containers on every host")
    sp.add_argument("-a", "--all", action="store_true", help="show stopped containers too")
    _filters(sp, "name=web, label=app, status=exited")
    sp = add("images", "list images on every host")
    _filters(sp, "reference=busybox*, dangling=true")
    add("info", "name, version and counts of every host")
    sp = add("events", "stream every host's events, one line each with its host, until Ctrl-C")
    sp.add_argument("--since", default=None, help="from this time: 10m, 2h, a Unix time, RFC 3339")
    sp.add_argument("--until", default=None, help="stop at this time (same forms as --since)")
    _filters(sp, "type=container, event=start")
    sp = add("logs", "print a container's log from every host, each line prefixed by its host")
    sp.add_argument("name", help="the container's name or id (the same on every host)")
    sp.add_argument("-n", "--tail", default=None, help='lines from the end ("all" or a number)')
    sp.add_argument("-f", "--follow", action="store_true", help="keep following until Ctrl-C")
    sp.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    sp = add("exec", "run a command in a container on every host; output prefixed by host")
    sp.add_argument("-u", "--user", default=None, help="user[:group] to run as")
    sp.add_argument("name", help="the container's name or id (the same on every host)")
    sp.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    sp = add("run", "create and start one detached container on every host")
    sp.add_argument("--name", default=None, help="the container's name")
    sp.add_argument("image", help="the image (it must be on each host: see `pyd fleet pull`)")
    sp.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    sp = add("stop", "stop containers on every host")
    sp.add_argument("-t", "--time", type=int, default=None, help="seconds to wait before killing")
    sp.add_argument("containers", nargs="+", help="container names or ids")
    sp = add("rm", "remove containers on every host")
    sp.add_argument("-f", "--force", action="store_true", help="remove running containers too")
    sp.add_argument("-v", "--volumes", action="store_true", help="remove anonymous volumes too")
    sp.add_argument("containers", nargs="+", help="container names or ids")
    sp = add("pull", "pull an image on every host")
    sp.add_argument("image", help="the image reference, e.g. registry:5000/app:1")


def build() -> argparse.ArgumentParser:
    """The whole C{pyd} parser."""
    p = argparse.ArgumentParser(
        prog="pyd", description="pyd client: certificates, host inventory, fleet-wide commands"
    )
    p.add_argument(
        "--version", action="version", version=f"pyd version {pyd.__version__}",
        help="print the version and exit",
    )  # fmt: skip
    sub = p.add_subparsers(dest="group", required=True, metavar="GROUP")
    _tls_parsers(sub)
    _hosts_parsers(sub)
    _fleet_parsers(sub)
    return p
