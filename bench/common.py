"""What every benchmark shares: daemons on temporary sockets, timing, a keep-alive HTTP client,
and a results table with pyd/dockerd ratios.

A benchmark module builds a list of L{Daemon}s with L{daemons} (pyd always; dockerd too when
/usr/sbin/dockerd exists, on its own socket, data root and exec root, stopped by pid), loads the
offline busybox image into each with L{load_busybox}, runs the SAME workload against each with
L{Daemon.docker}, L{measure} or the helpers below, and prints L{table} with a pyd/dockerd ratio.
Workloads are run row by row, alternating daemons, so a load spike on the shared machine hits
both. Numbers are medians; keep runs short (2 shared cores). C{BENCH_NO_DOCKERD=1} runs pyd only.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.daemon import DOCKER, PydDaemon
from tests.helpers.images import DEFAULT_TAG, busybox_image_tar

# Debian installs dockerd in /usr/sbin.
DOCKERD = shutil.which("dockerd", path="/usr/sbin:/usr/bin:/usr/local/bin") or "/usr/bin/dockerd"


@dataclass
class Daemon:
    """A running daemon the benchmark talks to over a Unix socket."""

    name: str
    sock: str
    pid: int
    stop: Callable[[], None] = field(repr=False)
    base: str = ""
    # Stop the daemon (SIGTERM, waited for) and start it again on the same data; returns the
    # seconds from the new process's start to /_ping answering 200 (and updates C{pid}).
    relaunch: Callable[[], float] | None = field(default=None, repr=False)

    def restart(self) -> float:
        """Restart on the same data root; seconds from process start to /_ping answering."""
        if self.relaunch is None:
            raise RuntimeError(f"{self.name} cannot be restarted")
        return self.relaunch()

    @property
    def host(self) -> str:
        """DOCKER_HOST for this daemon."""
        return "unix://" + self.sock

    @property
    def env(self) -> dict[str, str]:
        """Environment for the docker CLI talking to this daemon (own DOCKER_CONFIG)."""
        env = {
            **os.environ,
            "DOCKER_HOST": self.host,
            "DOCKER_CONFIG": os.path.join(self.base, "docker-config"),
            "DOCKER_BUILDKIT": "0",  # the classic builder, which both daemons implement
        }
        env.pop("DOCKER_CONTEXT", None)
        return env

    def docker(
        self, *args: str, timeout: float = 600, check: bool = True, stdout: int | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the real docker CLI against this daemon; raise with its stderr on failure."""
        r = subprocess.run(
            [DOCKER, *args],
            env=self.env,
            stdout=subprocess.PIPE if stdout is None else stdout,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
        if check and r.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args)} on {self.name}: {r.stderr.decode(errors='replace')}"
            )
        return r

    def cli_ms(self, *args: str) -> float:
        """Milliseconds of one docker CLI command (output discarded)."""
        t0 = time.perf_counter()
        self.docker(*args, stdout=subprocess.DEVNULL)
        return (time.perf_counter() - t0) * 1000


def start_pyd(extra_args: Sequence[str] = ()) -> Daemon:
    """A pyd on a temporary socket and data root."""
    d = PydDaemon(extra_args=extra_args).start()
    assert d.proc is not None
    out = Daemon("pyd", d.sock, d.proc.pid, d.cleanup, str(d.base))

    def relaunch() -> float:
        d.stop()
        t0 = time.perf_counter()
        d.start(timeout=300, poll=0.005)
        assert d.proc is not None
        out.pid = d.proc.pid
        return time.perf_counter() - t0

    out.relaunch = relaunch
    return out


def _die_with_parent() -> None:
    """In the child: SIGTERM when the bench dies (a killed bench must not leave a dockerd)."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_dockerd(extra_args: Sequence[str] = (), netns: str | None = None) -> Daemon | None:
    """A dockerd on its own socket/data-root/exec-root, or None when it is not installed (or
    C{BENCH_NO_DOCKERD} is set). Without C{extra_args} it has no bridge and never touches
    iptables or ip_forward; C{extra_args} are added (a --bridge/--bip there replaces
    `--bridge none`, an --iptables/--ip-forward there replaces the default off). With C{netns}
    (a network namespace the caller made) it runs inside it, so that its bridge is there."""
    if not os.path.exists(DOCKERD) or os.environ.get("BENCH_NO_DOCKERD"):
        return None
    base = Path(tempfile.mkdtemp(prefix="bench-dockerd-"))
    net = list(extra_args)
    if not any(a.startswith(("--bridge", "--bip", "-b")) for a in net):
        net += ["--bridge", "none"]
    if not any(a.startswith("--iptables") for a in net):
        net += ["--iptables=false", "--ip6tables=false"]
    if not any(a.startswith("--ip-forward") for a in net):
        net.append("--ip-forward=false")
    sock = str(base / "docker.sock")
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115  # closed by stop()
    argv = [
        # nsenter, not `ip netns exec`: that one also remounts /sys, hiding the cgroups.
        *(["nsenter", f"--net=/run/netns/{netns}"] if netns else []),
        DOCKERD,
        "-H",
        "unix://" + sock,
        "--data-root",
        str(base / "data"),
        "--exec-root",
        str(base / "exec"),
        "--pidfile",
        str(base / "dockerd.pid"),
        *net,
    ]

    def launch() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - started before any other thread
        )

    procs = [launch()]

    def halt() -> None:
        proc = procs[-1]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop() -> None:
        halt()
        log.close()
        # dockerd binds its data root onto itself at each start and, after a restart, one of
        # those binds outlives it: unmount whatever is left under the base before removing it
        subprocess.run(
            ["sh", "-c", f"grep ' {base}' /proc/mounts | cut -d' ' -f2 | sort -r | "
             "xargs -r -n1 umount -l"],
            check=False,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)

    def wait_ping(timeout: float, poll: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and procs[-1].poll() is None:
            try:
                if request(sock, "GET", "/_ping")[0] == 200:
                    return True
            except OSError:
                time.sleep(poll)
        return False

    if not wait_ping(30, 0.1):
        stop()
        raise RuntimeError("dockerd did not start")
    out = Daemon("dockerd", sock, procs[-1].pid, stop, str(base))

    def relaunch() -> float:
        halt()
        t0 = time.perf_counter()
        procs.append(launch())
        if not wait_ping(300, 0.005):
            raise RuntimeError("dockerd did not start again")
        out.pid = procs[-1].pid
        return time.perf_counter() - t0

    out.relaunch = relaunch
    return out


@contextlib.contextmanager
def daemons(
    pyd_args: Sequence[str] = (), dockerd_args: Sequence[str] = (), busybox: bool = False
) -> Iterator[list[Daemon]]:
    """pyd, plus dockerd when available (with C{busybox}: the test image loaded into each);
    all stopped afterwards."""
    started: list[Daemon] = []
    try:
        started.append(start_pyd(pyd_args))
        d = start_dockerd(dockerd_args)
        if d is not None:
            started.append(d)
        if busybox:
            for d in started:
                load_busybox(d)
        yield started
    finally:
        for d in started:
            d.stop()


def load_busybox(d: Daemon, tag: str = DEFAULT_TAG, **kwargs: object) -> str:
    """`docker load` the offline busybox image (tests/helpers/images.py) into C{d}; its id."""
    fd, tmp = tempfile.mkstemp(prefix="bench-bb-", suffix=".tar")
    os.close(fd)
    try:
        built = busybox_image_tar(tmp, tag, **kwargs)  # type: ignore[arg-type]
        d.docker("load", "-q", "-i", tmp)
        return built.id
    finally:
        os.unlink(tmp)


def median_of(fn: Callable[[], float], n: int) -> float:
    """Median of C{n} calls of C{fn} (which returns its own measurement)."""
    return statistics.median(fn() for _ in range(n))


class KeepAlive:
    """One HTTP/1.1 keep-alive connection to a Unix socket (Content-Length or chunked bodies)."""

    def __init__(self, sock: str) -> None:
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(sock)
        self.buf = b""

    def request(self, method: str, path: str) -> tuple[int, bytes]:
        """Send one request and read its response."""
        self.s.sendall(f"{method} {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
        if b"content-length" in headers:
            n = int(headers[b"content-length"])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
            return status, body
        if headers.get(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size_line, _, self.buf = self.buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self._fill()
                body += self.buf[:size]
                self.buf = self.buf[size + 2 :]
                if size == 0:
                    return status, body
        return status, b""

    def _fill(self) -> None:
        chunk = self.s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.buf += chunk

    def close(self) -> None:
        """Close the connection."""
        self.s.close()


def request(sock: str, method: str, path: str) -> tuple[int, bytes]:
    """One request on a fresh connection."""
    c = KeepAlive(sock)
    try:
        return c.request(method, path)
    finally:
        c.close()


def latency_ms(sock: str, path: str, n: int = 300, warmup: int = 30) -> float:
    """Median latency in ms of GET C{path} on one keep-alive connection."""
    c = KeepAlive(sock)
    try:
        for _ in range(warmup):
            c.request("GET", path)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            status, _ = c.request("GET", path)
            times.append(time.perf_counter() - t0)
            assert status == 200, status
        return statistics.median(times) * 1000
    finally:
        c.close()


def _client(sock: str, path: str, seconds: float, start: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    c = KeepAlive(sock)
    while time.time() < start:
        time.sleep(0.001)
    n = 0
    end = start + seconds
    while time.time() < end:
        c.request("GET", path)
        n += 1
    c.close()
    out.put(n)


def throughput(sock: str, path: str, clients: int, seconds: float = 3.0) -> float:
    """Requests/s of GET C{path} from C{clients} processes, each on one keep-alive connection."""
    q: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    start = time.time() + 0.5
    procs = [
        multiprocessing.Process(target=_client, args=(sock, path, seconds, start, q))
        for _ in range(clients)
    ]
    for p in procs:
        p.start()
    total = sum(q.get(timeout=seconds + 30) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants in MB (dockerd + its containerd)."""
    total = rss_mb(pid)
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        kids = []
    return total + sum(tree_rss_mb(k) for k in kids)


def measure(fn: Callable[[], object], n: int = 5) -> float:
    """Median seconds of C{fn()} over C{n} runs."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@dataclass
class Row:
    """One line of results: a workload, its unit and the value per daemon."""

    workload: str
    unit: str
    values: dict[str, float]
    higher_is_better: bool = False


def table(rows: Sequence[Row], names: Sequence[str]) -> str:
    """A text table; with dockerd present, a ratio column (pyd's figure over dockerd's) and who
    wins (lower is better unless the row says otherwise). C{BENCH_MARKDOWN=1}: a Markdown table."""
    header = ["workload", "unit", *names]
    both = "dockerd" in names and "pyd" in names
    if both:
        header += ["pyd/dockerd", "better"]
    lines = [header]
    for r in rows:
        cells = [r.workload, r.unit] + [_fmt(r.values.get(n)) for n in names]
        if both:
            p, d = r.values.get("pyd"), r.values.get("dockerd")
            if p and d:
                wins = p > d if r.higher_is_better else p < d
                cells += [f"{p / d:.2f}x", "pyd" if wins else "dockerd"]
            else:
                cells += ["-", "-"]
        lines.append(cells)
    if os.environ.get("BENCH_MARKDOWN"):
        out = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(line) + " |" for line in lines[1:]]
        return "\n".join(out)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i > 1 else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"
