"""Start a real `twistd -n pyd` on a temporary socket and data root, for end-to-end tests.

Plain synchronous code: no reactor in the test process. The daemon imports pyd from this source
tree (PYTHONPATH), and twistd finds the plugin installed in the venv by `make install`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TWISTD = str(Path(sys.executable).with_name("twistd"))
DOCKER = shutil.which("docker", path="/usr/local/bin") or "/usr/local/bin/docker"


def unix_request(
    sock: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request over a Unix socket (Connection: close); returns status, headers, body."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock)
    hdrs = {"Host": "pyd", "Connection": "close", **(headers or {})}
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
        hdrs["Content-Length"] = str(len(body))
    req = (
        f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    )
    s.sendall(req.encode() + (body or b""))
    data = recv_all(s)
    s.close()
    return parse_answer(data)


def recv_all(s: socket.socket) -> bytes:
    """Everything read from C{s} until the peer closes the connection."""
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def parse_answer(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer: its status, headers (names lower-cased) and body (de-chunked)."""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers_out = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers_out[k.strip().lower()] = v.strip()
    if headers_out.get("transfer-encoding") == "chunked":
        out = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out += rest[:size]
            rest = rest[size + 2 :]
        rest = out
    return status, headers_out, rest


class PydDaemon:
    """A pyd daemon process with its own socket, data root, exec root and pidfile."""

    def __init__(
        self,
        base: str | None = None,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        self.wrapper = list(wrapper)  # e.g. ["ip", "netns", "exec", NS]
        self.base = Path(base or tempfile.mkdtemp(prefix="pyd-e2e-"))
        self.sock = str(self.base / "pyd.sock")
        self.data_root = str(self.base / "data")
        self.exec_root = str(self.base / "exec")
        self.pidfile = str(self.base / "pyd.pid")
        self.logfile = str(self.base / "pyd.log")
        self.extra_args = list(extra_args)
        # Each daemon gets its own default bridge, subnet, address pool and nft table, so that
        # parallel daemons (and other tests) never collide; cleanup removes them.
        self.bridge = "pydt" + os.urandom(4).hex()
        self.bip = _free_bip()
        self.address_pool = f"base=10.{random.randint(200, 249)}.0.0/16,size=24"
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """The DOCKER_HOST value for this daemon."""
        return "unix://" + self.sock

    def argv(self) -> list[str]:
        """The twistd command line."""
        return [
            *self.wrapper,
            TWISTD,
            "-n",
            "--pidfile=",
            "--logfile",
            self.logfile,
            "pyd",
            "-H",
            self.host,
            "--data-root",
            self.data_root,
            "--exec-root",
            self.exec_root,
            "--pidfile",
            self.pidfile,
            "--config-file",
            str(self.base / "daemon.json"),
            *self._network_args(),
            *self.extra_args,
        ]

    def _network_args(self) -> list[str]:
        given = " ".join(self.extra_args)
        args = []
        if "--bridge" not in given and "-b" not in self.extra_args:
            args += ["--bridge", self.bridge]
        if "--bip" not in given:
            args += ["--bip", self.bip]
        if "--default-address-pool" not in given:
            args += ["--default-address-pool", self.address_pool]
        if not self.wrapper:
            # The network rule: a daemon in the root namespace neither turns on forwarding nor
            # masquerades (dockerd's defaults, and pyd's, do both); in a namespace of the test's
            # own (a wrapper) it keeps the defaults.
            if "--ip-forward" not in given:
                args.append("--ip-forward=false")
            if "--ip-masq" not in given:
                args.append("--ip-masq=false")
        return args

    @property
    def nft_table(self) -> str:
        """The name of this daemon's nftables table."""
        from pyd.drivers.network.nft import table_name

        return table_name(self.exec_root)

    def bridges(self) -> list[str]:
        """Bridge devices this daemon's database knows (read straight from SQLite)."""
        import sqlite3

        db = Path(self.data_root) / "pyd.db"
        if not db.exists():
            return []
        try:
            con = sqlite3.connect(str(db))
            try:
                rows = con.execute(
                    "SELECT bridge FROM networks WHERE bridge IS NOT NULL"
                ).fetchall()
            finally:
                con.close()
        except sqlite3.Error:
            return []
        return [r[0] for r in rows if r[0]]

    def remove_network_leftovers(self) -> None:
        """Delete this daemon's bridges, nft tables and accepts in the host's FORWARD (after it
        stopped)."""
        if not self.wrapper:  # a namespace of the test's own goes whole with its test
            from pyd.drivers.network.hostfw import HostForward
            from tests.helpers.netsvc import SyncRunner
            from tests.helpers.sync import run_sync

            for family in ("ip", "ip6"):
                run_sync(HostForward(SyncRunner(), self.nft_table, family).apply([]))
        for br in {*self.bridges(), self.bridge}:
            subprocess.run(["ip", "link", "del", br], capture_output=True, check=False)
        for family in ("ip", "ip6"):
            subprocess.run(
                ["nft", "delete", "table", family, self.nft_table],
                capture_output=True,
                check=False,
            )

    def start(self, timeout: float = 30, poll: float = 0.05) -> PydDaemon:
        """Spawn the daemon and wait until /_ping answers (asked every C{poll} seconds)."""
        self.base.mkdir(parents=True, exist_ok=True)
        cfg = self.base / "daemon.json"
        if not cfg.exists():
            cfg.write_text("{}")
        env = {**os.environ, "PYTHONPATH": str(REPO), **self.env}
        self.proc = subprocess.Popen(
            self.argv(),
            env=env,
            cwd=str(self.base),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"pyd exited {self.proc.returncode}: {err}\n{self.log()}")
            try:
                if unix_request(self.sock, "GET", "/_ping", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(poll)
        raise RuntimeError("pyd did not answer /_ping in time:\n" + self.log())

    def log(self) -> str:
        """The daemon's log so far."""
        try:
            return Path(self.logfile).read_text()
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait; SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill9(self) -> None:
        """SIGKILL the daemon only (containers and their monitors live on)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def request(
        self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """A raw API request; C{body} is JSON-encoded unless bytes."""
        raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        return unix_request(self.sock, method, path, raw, headers)

    def docker(
        self,
        *args: str,
        input: bytes | None = None,
        check: bool = True,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real docker CLI against this daemon."""
        full_env = {
            **os.environ,
            "DOCKER_HOST": self.host,
            "DOCKER_CONFIG": str(self.base / "docker-config"),
            **(env or {}),
        }
        full_env.pop("DOCKER_CONTEXT", None)
        r = subprocess.run(
            [DOCKER, *args],
            input=input.decode() if input else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {r.returncode}:\n"
                f"stdout: {r.stdout}\nstderr: {r.stderr}\n--- daemon log ---\n" + self.log()[-4000:]
            )
        return r

    def remove_all_objects(self) -> None:
        """Force-remove every container, then user networks and volumes, through the API."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for list_path, item_path, key in (
            ("/containers/json?all=1", "/containers/{}?force=1&v=1", "Id"),
            ("/networks", "/networks/{}", "Id"),
            ("/volumes", "/volumes/{}?force=1", "Name"),
        ):
            try:
                status, _, body = self.request("GET", list_path)
                if status != 200:
                    continue
                items = json.loads(body)
                if isinstance(items, dict):
                    items = items.get("Volumes") or []
                for item in items:
                    if key == "Id" and item.get("Name") in ("bridge", "host", "none"):
                        continue
                    self.request("DELETE", item_path.format(item[key]))
            except (OSError, ValueError):
                pass

    def cleanup(self) -> None:
        """Remove what the test made, stop the daemon, unmount and delete its directory."""
        self.remove_all_objects()
        self.stop()
        self.remove_network_leftovers()
        subprocess.run(
            [
                "sh",
                "-c",
                f"grep ' {self.base}' /proc/mounts | cut -d' ' -f2 | sort -r | "
                "xargs -r -n1 umount -l",
            ],
            check=False,
        )
        shutil.rmtree(self.base, ignore_errors=True)


def isolated_network_args(exec_root: str) -> tuple[list[str], Callable[[], None]]:
    """Flags giving a daemon started by hand its own bridge, subnet and pool, plus the cleanup
    that removes its bridges and nft table once it stopped (as L{PydDaemon} does)."""
    d = PydDaemon.__new__(PydDaemon)
    d.bridge = "pydt" + os.urandom(4).hex()
    d.bip = _free_bip()
    d.address_pool = f"base=10.{random.randint(200, 249)}.0.0/16,size=24"
    d.extra_args = []
    d.wrapper = []
    d.exec_root = exec_root
    d.data_root = os.path.join(os.path.dirname(exec_root.rstrip("/")), "data")
    return d._network_args(), d.remove_network_leftovers


def _host_routes() -> list[str]:
    r = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True
    )
    return [line.split()[0] for line in r.stdout.splitlines() if line and line[0].isdigit()]


def _free_bip() -> str:
    """A 10.2xx.y.1/24 gateway address whose /24 no host route covers."""
    import ipaddress

    routes = []
    for r in _host_routes():
        try:
            routes.append(ipaddress.ip_network(r, strict=False))
        except ValueError:
            continue
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{random.randint(200, 249)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(r) for r in routes):
            return f"{net.network_address + 1}/24"
    raise RuntimeError("no free 10.2xx.y.0/24 for a test daemon's bridge")


def wait_until(pred: Callable[[], object], timeout: float = 60) -> None:
    """Poll C{pred()} every 0.1 s until it is true; fail after C{timeout} seconds (generous:
    CI boxes are loaded, and the deadline only matters when the condition never holds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def pyd_cli(
    *args: str, env: dict[str, str], check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the C{pyd} admin command of this source tree; with C{check}, fail with its output."""
    r = subprocess.run(
        [sys.executable, "-m", "pyd.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )
    if check and r.returncode != 0:
        raise AssertionError(f"pyd {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r
