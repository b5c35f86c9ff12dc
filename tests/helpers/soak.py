"""A bounded soak of a running pyd (issue 18): C{clients} threads each loop over
create/start/exec/logs/stop/rm of a container while C{idle} keep-alive API connections sit
open, and the daemon's file descriptors, threads, RSS and database size are sampled.

Shared by the e2e test (about a minute) and C{python -m bench soak --minutes N}. Every request
counts; a failed one is recorded with its operation and message (none of these would fail on
dockerd: each client works on its own container). The end is sampled once the clients have
stopped, the idle connections are closed and the daemon had a moment to settle; descriptors
and threads are compared with a sample taken before the run, RSS and database size with one
taken after the warm-up (every pool has its threads, every cache its first entries).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker

from pyd.daemon.drivers import IO_THREADS
from tests.helpers.images import DEFAULT_TAG

# The container prints a line, then idles until SIGTERM (trapped: stop is prompt).
CMD = ["sh", "-c", "trap 'exit 0' TERM; echo soak-hello; while :; do sleep 0.2; done"]


# Bounds on growth, whatever the length of the run (the same for the minute in CI and the 20
# minutes of the bench). Descriptors and threads: from before the run to its end, both idle (no
# connection, no container): a descriptor or thread left per container or connection crosses
# them. RSS and database: from after the warm-up to the end; pyd's heap and SQLite's page cache
# (2 MiB) grew ~1 MiB per 100 container cycles in a 20-minute run (16 MiB over 1,031 cycles),
# the database keeps events up to their retention (10,000 rows, under 3 MiB) and its WAL up to
# a checkpoint. Threads: the io pool starts its threads as work queues up and keeps them, so
# an idle daemon may end a run with up to the whole pool more than it had before (a fresh
# daemon has used one or two of them); a thread left per container or connection still crosses
# the bound within the first few dozen of the hundreds of cycles.
FD_BOUND = 16
THREAD_BOUND = IO_THREADS
RSS_BOUND = 8 << 20  # plus RSS_PER_CYCLE for each container cycle of the run
RSS_PER_CYCLE = 16 << 10  # the forgotten exec sessions alone cost ~23 KiB per cycle
DB_BOUND = 8 << 20


@dataclass
class Sample:
    """The daemon's resources at one moment."""

    t: float
    fds: int
    threads: int
    rss: int
    db: int

    def row(self) -> str:
        """One line for a report."""
        return (
            f"t={self.t:7.1f}s fds={self.fds:5d} threads={self.threads:3d} "
            f"rss={self.rss / 2**20:7.1f}MiB db={self.db / 2**20:6.2f}MiB"
        )


@dataclass
class SoakResult:
    """What a soak measured."""

    seconds: float
    cycles: int
    requests: int
    failures: Counter[str] = field(default_factory=Counter)
    before: Sample | None = None
    warm: Sample | None = None
    end: Sample | None = None
    peak: Sample | None = None
    samples: list[Sample] = field(default_factory=list)

    def growth(self) -> dict[str, int]:
        """Per resource: descriptors and threads from before the run to its end (both idle:
        no connection, no container), RSS and database from after the warm-up to the end."""
        assert self.before is not None and self.warm is not None and self.end is not None
        return {
            "fds": self.end.fds - self.before.fds,
            "threads": self.end.threads - self.before.threads,
            "rss": self.end.rss - self.warm.rss,
            "db": self.end.db - self.warm.db,
        }

    def report(self) -> str:
        """A human-readable summary."""
        assert self.before is not None and self.warm is not None and self.end is not None
        assert self.peak is not None
        g = self.growth()
        lines = [
            f"soak: {self.seconds:.0f}s, {self.cycles} container cycles, {self.requests} requests "
            f"({self.requests / self.seconds:.1f}/s), {sum(self.failures.values())} failed",
            "  before:        " + self.before.row(),
            "  after warm-up: " + self.warm.row(),
            "  at the end:    " + self.end.row(),
            f"  peak: fds={self.peak.fds} threads={self.peak.threads} "
            f"rss={self.peak.rss / 2**20:.1f}MiB db={self.peak.db / 2**20:.2f}MiB",
            f"  growth: fds {g['fds']:+d}, threads {g['threads']:+d} (before to end); "
            f"rss {g['rss'] / 2**20:+.1f}MiB, db {g['db'] / 2**20:+.2f}MiB (warm-up to end)",
        ]
        lines += [f"  failure x{n}: {k}" for k, n in self.failures.most_common(10)]
        return "\n".join(lines)


def sample(pid: int, data_root: str, t0: float) -> Sample:
    """The resources of process C{pid} and the size of its database files."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    db = 0
    for suffix in ("", "-wal", "-shm"):
        p = Path(data_root) / f"pyd.db{suffix}"
        if p.exists():
            db += p.stat().st_size
    return Sample(time.monotonic() - t0, fds, threads, rss, db)


class _Idle:
    """Idle keep-alive API connections: each sent one C{/_ping} and then waits."""

    def __init__(self, sock: str, n: int) -> None:
        self.sock = sock
        self.conns = [self._open() for _ in range(n)]

    def _open(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(self.sock)
        self._ping(s)
        return s

    @staticmethod
    def _ping(s: socket.socket) -> None:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: soak\r\n\r\n")
        data = b""
        while not data.endswith(b"\r\n\r\nOK"):
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("idle connection closed by the daemon")
            data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(data[:80].decode(errors="replace"))

    def ping_all(self) -> int:
        """One C{/_ping} on every connection (before the daemon's 5-minute idle timeout):
        each must still be open and served. Returns the number of requests made."""
        for s in self.conns:
            self._ping(s)
        return len(self.conns)

    def close(self) -> None:
        """Close every connection."""
        for s in self.conns:
            s.close()


def run_soak(
    sock: str,
    pid: int,
    data_root: str,
    seconds: float,
    clients: int = 16,
    idle: int = 200,
    warmup: float = 15.0,
    image: str = DEFAULT_TAG,
    progress: Callable[[str], None] | None = None,
) -> SoakResult:
    """Run the soak against the daemon at C{sock} (process C{pid}); see the module docstring."""
    t0 = time.monotonic()
    stop_at = t0 + warmup + seconds
    lock = threading.Lock()
    counts = {"requests": 0, "cycles": 0}
    failures: Counter[str] = Counter()

    def count(n: int = 1) -> None:
        with lock:
            counts["requests"] += n

    def fail(op: str, err: BaseException) -> None:
        with lock:
            text = getattr(err, "explanation", None) or str(err)
            failures[f"{op}: {type(err).__name__}: {str(text)[:300]}"] += 1

    def client(k: int) -> None:
        api = docker.APIClient(base_url="unix://" + sock, version="1.47", timeout=120)
        try:
            while time.monotonic() < stop_at:
                _cycle(api, k, count, fail)
                with lock:
                    counts["cycles"] += 1
        finally:
            api.close()

    before = sample(pid, data_root, t0)
    idle_conns = _Idle(sock, idle)
    count(idle)
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for th in threads:
        th.start()
    result = SoakResult(seconds=0.0, cycles=0, requests=0, failures=failures, before=before)
    next_ping = time.monotonic() + 120
    try:
        warm_at = t0 + warmup
        while time.monotonic() < stop_at:
            time.sleep(min(5.0, max(0.1, stop_at - time.monotonic())))
            s = sample(pid, data_root, t0)
            result.samples.append(s)
            if result.warm is None and time.monotonic() >= warm_at:
                result.warm = s
            if time.monotonic() >= next_ping:
                count(idle_conns.ping_all())
                next_ping = time.monotonic() + 120
            if progress is not None:
                progress(f"{s.row()} cycles={counts['cycles']} failed={sum(failures.values())}")
        for th in threads:
            th.join(300)
        # Every idle connection is still open and served.
        try:
            count(idle_conns.ping_all())
        except OSError as e:
            fail("idle /_ping", e)
    finally:
        idle_conns.close()
    # Let the daemon notice the closed connections and finish what the last cycles left.
    time.sleep(3)
    result.end = sample(pid, data_root, t0)
    result.samples.insert(0, before)
    result.samples.append(result.end)
    if result.warm is None:
        result.warm = result.samples[0]
    result.peak = Sample(
        0,
        max(s.fds for s in result.samples),
        max(s.threads for s in result.samples),
        max(s.rss for s in result.samples),
        max(s.db for s in result.samples),
    )
    result.seconds = time.monotonic() - t0
    result.cycles = counts["cycles"]
    result.requests = counts["requests"]
    return result


def _cycle(
    api: docker.APIClient,
    k: int,
    count: Callable[[int], None],
    fail: Callable[[str, BaseException], None],
) -> None:
    """One container's life: create, start, exec, logs, stop, rm (each checked)."""
    name = f"soak-{k}-{uuid.uuid4().hex[:8]}"
    op = "create"
    try:
        cid = api.create_container(DEFAULT_TAG, CMD, name=name)["Id"]
        count(1)
        op = "start"
        api.start(cid)
        count(1)
        op = "exec"
        eid = api.exec_create(cid, ["echo", "soak-exec"])["Id"]
        count(1)
        out = _exec_start(api, eid)
        count(1)
        if out.strip() != b"soak-exec":
            raise AssertionError(f"exec output {out!r}")
        op = "exec inspect"
        if api.exec_inspect(eid)["ExitCode"] != 0:
            raise AssertionError("exec exit code")
        count(1)
        op = "logs"
        # The container may not have printed yet right after start: poll like a client would.
        for _ in range(50):
            logs = api.logs(cid, stdout=True, stderr=True)
            count(1)
            if b"soak-hello" in logs:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"logs {logs!r}")
        op = "stop"
        api.stop(cid, timeout=10)
        count(1)
        op = "rm"
        api.remove_container(cid)
        count(1)
    except Exception as e:
        fail(op, e)
        try:
            api.remove_container(name, force=True)
        except docker.errors.APIError:
            pass


def _exec_start(api: docker.APIClient, eid: str) -> bytes:
    """Start exec C{eid} attached, as docker-py's C{exec_start} sends it, and return its
    stdout and stderr (multiplexed frames).

    The stream is read from the same buffer as the 101 answer. docker-py's own C{exec_start}
    reads the stream from the raw socket under http.client's buffered reader, so output that
    reached the socket together with the 101 (a short command, a client thread waiting for the
    GIL among sixteen) is silently lost: docker/docker-py#3332, with dockerd as with pyd. The
    soak counts the daemon's failures, not that one.
    """
    url = api._url("/exec/{0}/start", eid)[len(api.base_url) :]
    body = b'{"Detach": false, "Tty": false}'
    sock_path = api.adapters["http+docker://"].socket_path
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(120)
        s.connect(sock_path)
        s.sendall(
            b"POST " + url.encode() + b" HTTP/1.1\r\nHost: docker\r\n"
            b"Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, sep, stream = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 101"):
        raise AssertionError(f"exec start answered {head[:80]!r}")
    out = b""
    while stream:
        size = int.from_bytes(stream[4:8], "big")
        if len(stream) < 8 + size:
            raise AssertionError(f"exec stream ends inside a frame: {stream!r}")
        out += stream[8 : 8 + size]
        stream = stream[8 + size :]
    return out


def check(result: SoakResult) -> list[str]:
    """What went wrong in a run: failed requests and growths past the bounds (empty: passed)."""
    g = result.growth()
    bad = []
    if result.failures:
        bad.append(f"{sum(result.failures.values())} failed requests")
    for key, bound in (
        ("fds", FD_BOUND),
        ("threads", THREAD_BOUND),
        ("rss", RSS_BOUND + RSS_PER_CYCLE * result.cycles),
        ("db", DB_BOUND),
    ):
        if g[key] > bound:
            bad.append(f"{key} grew by {g[key]} (bound {bound})")
    return bad
