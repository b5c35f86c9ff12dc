"""Several pyd hosts, each a daemon in a network namespace of its own serving mutual TLS on
ADDR:2376, with a CA and client certificates made by `pyd tls` (layer: tests).

Used by the end-to-end modules that drive a fleet from the root namespace (the docker CLI,
docker-py, `pyd fleet`, Ansible, docker-compose). One L{Fleet} per module: starting daemons is
the slow part. L{Fleet.cleanup} stops every daemon and deletes every namespace even after a failure.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.helpers.daemon import DOCKER, PydDaemon, pyd_cli
from tests.helpers.netns import NetnsHost, random_prefix


def docker_cli(
    *args: str, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """The real docker CLI with none of the caller's DOCKER_* variables, plus C{env}."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, env={**full, **env}
    )


def openssl_docs_certs(d: Path, host: str, ip: str) -> None:
    """The commands of Docker's "Protect the Docker daemon socket" page (2048-bit for speed)."""
    d.mkdir(parents=True)

    def sh(cmd: str) -> None:
        subprocess.run(["sh", "-c", cmd], cwd=d, check=True, capture_output=True)

    sh("openssl genrsa -out ca-key.pem 2048")
    sh("openssl req -new -x509 -days 365 -key ca-key.pem -sha256 -out ca.pem -subj '/CN=docs-ca'")
    sh("openssl genrsa -out server-key.pem 2048")
    sh(f"openssl req -subj '/CN={host}' -sha256 -new -key server-key.pem -out server.csr")
    sh(f"echo subjectAltName = DNS:{host},IP:{ip},IP:127.0.0.1 >> extfile.cnf")
    sh("echo extendedKeyUsage = serverAuth >> extfile.cnf")
    sh(
        "openssl x509 -req -days 365 -sha256 -in server.csr -CA ca.pem -CAkey ca-key.pem "
        "-CAcreateserial -out server-cert.pem -extfile extfile.cnf"
    )
    sh("openssl genrsa -out key.pem 2048")
    sh("openssl req -subj '/CN=client' -new -key key.pem -out client.csr")
    sh("echo extendedKeyUsage = clientAuth > extfile-client.cnf")
    sh(
        "openssl x509 -req -days 365 -sha256 -in client.csr -CA ca.pem -CAkey ca-key.pem "
        "-CAcreateserial -out cert.pem -extfile extfile-client.cnf"
    )
    sh("chmod 0400 ca-key.pem key.pem server-key.pem")


class Fleet:
    """Three hosts, a CA, client certificates per role and a docker config dir.

    With C{openssl_host3}, the third host's certificates are made with openssl as Docker's
    documentation shows (its own CA); otherwise every host's come from `pyd tls`. With
    C{forwarding}, each host forwards IPv4, so published ports answer from the root namespace.
    C{extra_args} go to every daemon.
    """

    def __init__(
        self,
        base: Path,
        openssl_host3: bool = True,
        forwarding: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.base = base
        self.extra_args = list(extra_args)
        self.openssl_host3 = openssl_host3
        self.forwarding = forwarding
        self.ca = base / "ca"
        self.env = {"DOCKER_CONFIG": str(base / "docker-config"), "PYD_TLS_DIR": str(self.ca)}
        prefix = random_prefix()
        self.nets = [NetnsHost(prefix, i) for i in range(3)]
        self.daemons: list[PydDaemon] = []

    def client(self, name: str, role: str | None) -> Path:
        out = self.base / "clients" / name
        args = ["tls", "client", name, "--out", str(out)]
        if role:
            args += ["--role", role]
        pyd_cli(*args, env=self.env)
        return out

    def start(self) -> None:
        pyd_cli("tls", "init", env=self.env)
        for i, net in enumerate(self.nets):
            net.create()
            if self.forwarding:
                net.enable_forwarding()
            hdir = self.base / f"host{i + 1}"
            if i < 2 or not self.openssl_host3:
                pyd_cli(
                    "tls",
                    "server",
                    "--host",
                    f"host{i + 1}",
                    "--ip",
                    net.addr,
                    "--out",
                    str(hdir / "tls"),
                    env=self.env,
                )
                tls = hdir / "tls"
                ca, crl = self.ca / "ca.pem", self.ca / "crl.pem"
                cert, key = tls / "server-cert.pem", tls / "server-key.pem"
            else:
                openssl_docs_certs(hdir / "tls", "host3", net.addr)
                tls = hdir / "tls"
                ca, crl = tls / "ca.pem", None
                cert, key = tls / "server-cert.pem", tls / "server-key.pem"
            args = [
                "-H",
                f"tcp://{net.addr}:2376",
                "--tlsverify",
                "--tlscacert",
                str(ca),
                "--tlscert",
                str(cert),
                "--tlskey",
                str(key),
            ]
            if crl:
                args += ["--tlscrl", str(crl)]
            d = PydDaemon(
                str(hdir / "d"), extra_args=[*args, *self.extra_args], wrapper=net.prefix_argv()
            )
            self.daemons.append(d)
            d.start()

    def tls_env(self, i: int, certdir: Path) -> dict[str, str]:
        return {
            **self.env,
            "DOCKER_HOST": f"tcp://{self.nets[i].addr}:2376",
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(certdir),
        }

    def cleanup(self) -> None:
        try:
            for d in self.daemons:
                try:
                    d.cleanup()
                except Exception as e:  # keep cleaning the others
                    print(f"cleanup of {d.base} failed: {e}")
        finally:
            for n in self.nets:
                n.remove()
