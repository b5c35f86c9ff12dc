"""C{pyd tls}: a CA, server and client certificates, revocation, without openssl (layer: cli).

Directory layout of C{--dir} (default C{$PYD_TLS_DIR}, else C{$XDG_CONFIG_HOME/pyd/tls}, else
C{~/.config/pyd/tls}):

    ca.pem, ca-key.pem            the CA (key 0600)
    server-cert.pem, server-key.pem  the last server certificate made (key 0600)
    crl.pem                       the revocation list (give it to the daemon as --tlscrl)
    issued/<serial>.pem           every certificate this CA issued (for show and revoke)
    revoked.json                  serials revoked so far
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from pyd.cli import contexts
from pyd.cli.output import table
from pyd.core import certs


class CLIError(Exception):
    """A user-facing error; main() prints it and exits 1."""


def default_dir() -> Path:
    """The per-user CA directory."""
    env = os.environ.get("PYD_TLS_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "pyd" / "tls"


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with C{mode} from the start (keys are never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def load_ca(d: Path) -> certs.Issued:
    """The CA in C{d}. @raise CLIError: there is none."""
    try:
        cert = certs.load_cert((d / "ca.pem").read_bytes())
        key = certs.load_key((d / "ca-key.pem").read_bytes())
    except FileNotFoundError:
        raise CLIError(f"no CA in {d}: run `pyd tls init --dir {d}` first") from None
    return certs.Issued(cert, key)


def _record(d: Path, issued: certs.Issued) -> None:
    write_file(d / "issued" / f"{issued.cert.serial_number:x}.pem", issued.cert_pem, 0o644)


def _revoked(d: Path) -> dict[str, str]:
    try:
        data = json.loads((d / "revoked.json").read_text())
    except FileNotFoundError:
        return {}
    return {str(k): str(v) for k, v in data.items()}


def write_crl(d: Path, ca: certs.Issued) -> Path:
    """(Re)write C{d}/crl.pem from revoked.json, valid for a year."""
    entries = [
        (int(serial, 16), datetime.datetime.fromisoformat(when))
        for serial, when in _revoked(d).items()
    ]
    path = d / "crl.pem"
    write_file(path, certs.crl_pem(certs.make_crl(ca, entries)), 0o644)
    return path


def _validity(issued: certs.Issued) -> str:
    c = issued.cert
    return (
        f"valid {c.not_valid_before_utc:%Y-%m-%d} to {c.not_valid_after_utc:%Y-%m-%d} "
        f"({(c.not_valid_after_utc - c.not_valid_before_utc).days} days)"
    )


def cmd_init(d: Path, cn: str, days: int, force: bool) -> list[str]:
    """Make a CA in C{d}."""
    if (d / "ca.pem").exists() and not force:
        raise CLIError(
            f"{d}/ca.pem exists; pass --force to replace the CA (old certs stop working)"
        )
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = certs.make_ca(cn, days)
    write_file(d / "ca-key.pem", ca.key_pem, 0o600)
    write_file(d / "ca.pem", ca.cert_pem, 0o644)
    write_file(d / "revoked.json", b"{}", 0o644)
    crl = write_crl(d, ca)
    return [
        f"CA {certs.subject_of(ca.cert)}: {d / 'ca.pem'} (key {d / 'ca-key.pem'}), {_validity(ca)}",
        f"revocation list: {crl}",
    ]


def cmd_server(
    d: Path, hosts: Sequence[str], ips: Sequence[str], days: int, out: Path | None
) -> list[str]:
    """Make a server certificate with SANs C{hosts} + C{ips}."""
    ca = load_ca(d)
    try:
        issued = certs.make_server(ca, hosts, ips, days)
    except ValueError as e:
        raise CLIError(str(e)) from e
    o = out or d
    write_file(o / "server-key.pem", issued.key_pem, 0o600)
    write_file(o / "server-cert.pem", issued.cert_pem, 0o644)
    if o != d:
        write_file(o / "ca.pem", ca.cert_pem, 0o644)
    _record(d, issued)
    return [
        f"server certificate {o / 'server-cert.pem'} (key {o / 'server-key.pem'}) "
        f"for {', '.join(certs.sans_of(issued.cert))}, {_validity(issued)}",
        f"daemon flags: --tlsverify --tlscacert {d / 'ca.pem'} --tlscert {o / 'server-cert.pem'} "
        f"--tlskey {o / 'server-key.pem'} --tlscrl {d / 'crl.pem'}",
    ]


def cmd_client(
    d: Path,
    name: str,
    role: str | None,
    days: int,
    out: Path | None,
    context: str | None,
    docker_host: str | None,
) -> list[str]:
    """Make a client certificate for C{name} with C{role}; write files or a docker context."""
    ca = load_ca(d)
    try:
        issued = certs.make_client(ca, name, role, days)
    except ValueError as e:
        raise CLIError(str(e)) from e
    _record(d, issued)
    files = {"ca.pem": ca.cert_pem, "cert.pem": issued.cert_pem, "key.pem": issued.key_pem}
    lines = []
    if context:
        if not docker_host:
            raise CLIError("--context needs --docker-host tcp://HOST:2376")
        ctx = contexts.write(context, docker_host, files, f"pyd {role or 'default-role'} {name}")
        lines.append(f"docker context {context} -> {docker_host} (use: docker --context {context})")
        _ = ctx
    if out or not context:
        o = out or Path.cwd()
        write_file(o / "key.pem", issued.key_pem, 0o600)
        write_file(o / "cert.pem", issued.cert_pem, 0o644)
        write_file(o / "ca.pem", ca.cert_pem, 0o644)
        lines.append(
            f"client certificate {o / 'cert.pem'} (key {o / 'key.pem'}, CA {o / 'ca.pem'}) "
            f"for {certs.subject_of(issued.cert)}, role {role or '(daemon default)'}, "
            f"{_validity(issued)}"
        )
        lines.append(f"use: DOCKER_HOST=tcp://HOST:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={o}")
    return lines


def _issued(d: Path) -> list[x509.Certificate]:
    out = []
    idir = d / "issued"
    if idir.is_dir():
        for p in sorted(idir.glob("*.pem")):
            try:
                out.append(certs.load_cert(p.read_bytes()))
            except ValueError:
                continue
    return out


def cmd_revoke(d: Path, name: str, serial: str | None) -> list[str]:
    """Revoke every client certificate issued to C{name} (or just C{serial}); rewrite the CRL."""
    ca = load_ca(d)
    revoked = _revoked(d)
    hits = [
        c
        for c in _issued(d)
        if (serial is None and certs.common_name(c) == name)
        or (serial is not None and format(c.serial_number, "x") == serial.lower().lstrip("0x"))
    ]
    if not hits:
        raise CLIError(f"no certificate issued to {name!r} by the CA in {d}")
    now = datetime.datetime.now(datetime.UTC).isoformat()
    lines = []
    for c in hits:
        key = format(c.serial_number, "x")
        if key not in revoked:
            revoked[key] = now
            lines.append(f"revoked {certs.subject_of(c)} (serial {key})")
    write_file(d / "revoked.json", json.dumps(revoked, indent=1).encode(), 0o644)
    crl = write_crl(d, ca)
    lines.append(
        f"revocation list {crl} updated; send SIGHUP to the daemons (systemctl reload pyd)"
    )
    return lines


def cmd_show(d: Path, files: Sequence[str]) -> list[str]:
    """A table of the certificates in C{files}, or of the CA and all it issued."""
    if files:
        cert_list = []
        for f in files:
            try:
                cert_list.append(certs.load_cert(Path(f).read_bytes()))
            except (OSError, ValueError) as e:
                raise CLIError(f"{f}: {e}") from e
        revoked: dict[str, str] = {}
    else:
        ca = load_ca(d)
        cert_list = [ca.cert, *_issued(d)]
        revoked = _revoked(d)
    rows = [("KIND", "SUBJECT", "ROLE", "SERIAL", "NAMES", "NOT AFTER", "LEFT")]
    for c in cert_list:
        info = certs.describe(c)
        left = "REVOKED" if info["serial"] in revoked else info["expires_in"]
        rows.append(
            (
                info["kind"],
                info["subject"],
                info["role"] or "-",
                info["serial"][:12],
                info["sans"] or "-",
                info["not_after"],
                left,
            )
        )
    return table(rows)
