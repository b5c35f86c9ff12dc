"""Certificate making (pyd.core.certs) and the `pyd tls`/`pyd hosts` commands' files."""

from __future__ import annotations

import datetime
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509

from pyd.cli import contexts
from pyd.cli import main as cli_main
from pyd.core import certs


class CertsTests:
    """CA, server and client certificates carry what clients and the daemon check."""

    def test_server_sans_and_usage(self) -> None:
        """A server certificate names its hosts and IPs and is for server auth, signed by the CA."""
        ca = certs.make_ca()
        srv = certs.make_server(ca, ["h1.example"], ["10.200.0.2"])
        assert certs.sans_of(srv.cert) == ["DNS:h1.example", "IP:10.200.0.2"]
        eku = srv.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku
        srv.cert.verify_directly_issued_by(ca.cert)
        with pytest.raises(ValueError):
            certs.make_server(ca, [], [])

    def test_client_role_and_validity(self) -> None:
        """The role travels as OU=pyd-role:ROLE; validity is the documented default."""
        ca = certs.make_ca()
        c = certs.make_client(ca, "alice", "operator")
        assert certs.role_of(c.cert) == "operator"
        assert certs.subject_of(c.cert) == "OU=pyd-role:operator,CN=alice"
        days = (c.cert.not_valid_after_utc - c.cert.not_valid_before_utc).days
        assert days == certs.CLIENT_DAYS
        assert certs.role_of(certs.make_client(ca, "x", None).cert) is None
        with pytest.raises(ValueError):
            certs.make_client(ca, "x", "root")

    def test_crl_lists_serials(self) -> None:
        """A CRL names the revoked serials and is signed by the CA."""
        ca = certs.make_ca()
        c = certs.make_client(ca, "m", "admin")
        crl = certs.load_crl(
            certs.crl_pem(
                certs.make_crl(ca, [(c.cert.serial_number, datetime.datetime.now(datetime.UTC))])
            )
        )
        assert crl.get_revoked_certificate_by_serial_number(c.cert.serial_number) is not None
        assert crl.is_signature_valid(ca.cert.public_key())  # type: ignore[arg-type]  # cryptography types public_key() as a union; the CA's key is RSA


class TlsCommandTests:
    """`pyd tls` writes the docker CLI's layout with private keys 0600."""

    def test_init_server_client_revoke_show(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The whole flow on files; the CRL grows on revoke."""
        d, out = tmp_path / "ca", tmp_path / "alice"
        assert cli_main(["tls", "init", "--dir", str(d)]) == 0
        assert cli_main(["tls", "init", "--dir", str(d)]) == 1  # no silent CA replacement
        assert (
            cli_main(["tls", "server", "--dir", str(d), "--host", "h1", "--ip", "10.200.0.2"]) == 0
        )
        assert (
            cli_main(
                ["tls", "client", "--dir", str(d), "--out", str(out), "alice", "--role", "viewer"]
            )
            == 0
        )
        for key in (d / "ca-key.pem", d / "server-key.pem", out / "key.pem"):
            assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        assert {p.name for p in out.iterdir()} == {"ca.pem", "cert.pem", "key.pem"}
        assert certs.role_of(certs.load_cert((out / "cert.pem").read_bytes())) == "viewer"
        serial = certs.load_cert((out / "cert.pem").read_bytes()).serial_number
        assert cli_main(["tls", "revoke", "--dir", str(d), "alice"]) == 0
        crl = certs.load_crl((d / "crl.pem").read_bytes())
        assert crl.get_revoked_certificate_by_serial_number(serial) is not None
        assert cli_main(["tls", "revoke", "--dir", str(d), "nobody"]) == 1
        capsys.readouterr()
        assert cli_main(["tls", "show", "--dir", str(d)]) == 0
        shown = capsys.readouterr().out
        assert "REVOKED" in shown and "OU=pyd-role:viewer,CN=alice" in shown and "DNS:h1" in shown

    def test_default_dir_is_per_user(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """Without --dir the CA lives under $XDG_CONFIG_HOME/pyd/tls (or PYD_TLS_DIR)."""
        from pyd.cli.tls import default_dir

        monkeypatch.delenv("PYD_TLS_DIR", raising=False)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
        assert default_dir() == tmp_path / "pyd" / "tls"
        monkeypatch.setenv("PYD_TLS_DIR", "/x")
        assert default_dir() == Path("/x")


class ContextStoreTests:
    """`pyd hosts` reads and writes docker's context store layout."""

    def test_roundtrip(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A context written by pyd has docker's meta.json and TLS files; ls and rm work."""
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
        contexts.write(
            "h1",
            "tcp://10.200.0.2:2376",
            {"ca.pem": b"c", "cert.pem": b"e", "key.pem": b"k"},
            "first",
        )
        meta = json.loads((contexts.meta_dir("h1") / "meta.json").read_text())
        assert meta == {
            "Name": "h1",
            "Metadata": {"Description": "first"},
            "Endpoints": {"docker": {"Host": "tcp://10.200.0.2:2376", "SkipTLSVerify": False}},
        }
        assert stat.S_IMODE(os.stat(contexts.tls_dir("h1") / "key.pem").st_mode) == 0o600
        [c] = contexts.list_all()
        assert c.name == "h1" and c.has_tls
        contexts.remove("h1")
        assert contexts.list_all() == []
        with pytest.raises(ValueError):
            contexts.write("default", "tcp://x:1")
