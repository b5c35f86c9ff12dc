"""The syslog log driver with dual logging (issue 17): a container's lines reach a unixgram socket
of the test's own, and `docker logs` still shows them."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox


def _receive(sock: socket.socket, want: int, timeout: float = 30) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.1))
        try:
            got.append(sock.recv(65536))
        except TimeoutError:
            break
    return got


def test_syslog_unixgram_and_docker_logs(tmp_path: Path) -> None:
    """Lines go out as rfc5424 with the daemon facility (stdout info, stderr err) and the
    {{.Name}} tag; docker logs shows the same lines from the local cache."""
    path = str(tmp_path / "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    d = PydDaemon(str(tmp_path / "d"))
    try:
        d.start()
        load_busybox(d)
        d.docker(
            "run", "--name", "logger", "--log-driver", "syslog",
            "--log-opt", f"syslog-address=unixgram://{path}",
            "--log-opt", "syslog-format=rfc5424", "--log-opt", "tag={{.Name}}",
            DEFAULT_TAG, "sh", "-c", "echo one; echo two >&2; sleep 1; echo three",
        )  # fmt: skip
        got = _receive(sock, 3)
        assert len(got) == 3, got
        by_text = {m.rsplit(b" - ", 1)[1]: m for m in got}
        assert set(by_text) == {b"one", b"two", b"three"}
        assert by_text[b"one"].startswith(b"<30>1 ")  # daemon.info
        assert by_text[b"two"].startswith(b"<27>1 ")  # daemon.err
        assert b" logger " in by_text[b"one"]
        logs = d.docker("logs", "logger")
        assert logs.stdout.split() == ["one", "three"] and logs.stderr.split() == ["two"]
        info = d.docker("info", "--format", "{{json .Plugins.Log}}").stdout
        assert "syslog" in info
        # cache-disabled: lines still go out, but nothing is kept for docker logs (dockerd's)
        d.docker(
            "run", "--name", "nocache", "--log-driver", "syslog",
            "--log-opt", f"syslog-address=unixgram://{path}", "--log-opt", "cache-disabled=true",
            DEFAULT_TAG, "echo", "four",
        )  # fmt: skip
        assert [m.rsplit(b": ", 1)[1] for m in _receive(sock, 1)] == [b"four"]
        r = d.docker("logs", "nocache", check=False)
        assert r.returncode != 0
        assert "configured logging driver does not support reading" in r.stderr
    finally:
        d.cleanup()
        sock.close()
