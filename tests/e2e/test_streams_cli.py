"""The streaming commands with the real docker CLI and docker-py against pyd (issue 4).

run in the foreground (output, exit codes, stdin, a real TTY), attach and detach keys, exec,
top, stats, cp both ways (and the refusal to follow a symlink out of the container's root), diff,
export and commit.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import io
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import tarfile
import termios
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.helpers.daemon import DOCKER, PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox

pytestmark = pytest.mark.e2e
IMG = DEFAULT_TAG


def _name() -> str:
    return "pyd-t-" + uuid.uuid4().hex[:10]


@pytest.fixture
def daemon(pyd_daemon: PydDaemon) -> PydDaemon:
    load_busybox(pyd_daemon)
    return pyd_daemon


@pytest.fixture
def sleeper(daemon: PydDaemon) -> Iterator[str]:
    name = _name()
    daemon.docker("run", "-d", "--name", name, IMG, "sleep", "300")
    yield name
    daemon.docker("rm", "-f", name, check=False)


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _recv_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def _ws_connect(d: PydDaemon, path: str) -> socket.socket:
    """A websocket handshake on the daemon's socket; the connection after the 101."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.sock)
    s.settimeout(60)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Origin: http://localhost\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    if not head.startswith(b"HTTP/1.1 101 "):
        s.close()
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
    accept = base64.b64encode(
        hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode(), usedforsecurity=False
        ).digest()
    )
    assert b"\r\nSec-WebSocket-Accept: " + accept + b"\r\n" in head
    return s


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, f"connection closed after {out!r}"
        out += chunk
    return out


def _ws_read(s: socket.socket) -> tuple[int, bytes]:
    """One server frame: (opcode, payload); a server's frames are final and unmasked."""
    b0, b1 = _recv_exactly(s, 2)
    assert b0 & 0x80 and not b1 & 0x80, (b0, b1)
    n = b1 & 0x7F
    if n >= 126:
        n = int.from_bytes(_recv_exactly(s, 2 if n == 126 else 8), "big")
    return b0 & 0x0F, _recv_exactly(s, n)


def _ws_client_frame(opcode: int, payload: bytes) -> bytes:
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + key + masked


class PtySession:
    """The docker CLI on a pseudo-terminal, as a user at a terminal runs it."""

    def __init__(self, daemon: PydDaemon, *args: str, size: tuple[int, int] | None = None) -> None:
        self.master, slave = pty.openpty()
        if size is not None:
            _set_size(self.master, *size)
        env = {
            **os.environ,
            "DOCKER_HOST": daemon.host,
            "DOCKER_CONFIG": str(daemon.base / "docker-config"),
            "TERM": "xterm",
        }
        self.proc = subprocess.Popen(
            [DOCKER, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.seen = b""

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, needle: bytes, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen in {self.seen!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"EOF before {needle!r}: {self.seen!r}")
                self.seen += chunk
        return self.seen

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.1)
            if r:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    pass
        rc = self.proc.wait(timeout=1)
        # What the CLI wrote just before exiting may still sit in the pty: drain it.
        while select.select([self.master], [], [], 0.2)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk
        return rc

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


class RunForegroundTests:
    """`docker run` attached: output, exit code, stdin, TTY."""

    def test_echo(self, daemon: PydDaemon) -> None:
        """`docker run --rm IMG echo hi` prints hi."""
        r = daemon.docker("run", "--rm", IMG, "echo", "hi")
        assert r.stdout == "hi\n"

    def test_exit_code_and_streams(self, daemon: PydDaemon) -> None:
        """The exit code is the container's; stdout and stderr stay separate."""
        r = daemon.docker(
            "run", "--rm", IMG, "sh", "-c", "echo out; echo err >&2; exit 3", check=False
        )
        assert r.returncode == 3
        assert r.stdout == "out\n"
        assert r.stderr == "err\n"

    def test_stdin(self, daemon: PydDaemon) -> None:
        """Piped stdin reaches the container; its EOF ends `cat`, output still arrives."""
        r = daemon.docker("run", "-i", "--rm", IMG, "sh", "-c", "cat; echo done", input=b"data\n")
        assert r.stdout == "data\ndone\n"

    def test_tty_typed(self, daemon: PydDaemon) -> None:
        """`docker run -it` on a pty: typed commands run, the size is the terminal's."""
        s = PtySession(daemon, "run", "-it", "--rm", IMG, "sh")
        try:
            s.expect(b"# ")
            s.send(b"echo $((6*7)); stty size\r")
            s.expect(b"42")
            s.send(b"exit 5\r")
            assert s.wait() == 5
        finally:
            s.close()


class TtySizeTests:
    """The terminal's size reaches exec and attach TTYs, at start and when it changes (the CLI
    calls the resize endpoints)."""

    def test_exec_size_and_resize(self, daemon: PydDaemon, sleeper: str) -> None:
        """`docker exec -it`: the process starts with the CLI terminal's size (ConsoleSize);
        after a window change (SIGWINCH to the CLI) it sees the new one."""
        s = PtySession(daemon, "exec", "-it", sleeper, "sh", size=(33, 111))
        try:
            s.send(b"stty size\r")
            s.expect(b"33 111")
            _set_size(s.master, 21, 77)
            os.kill(s.proc.pid, signal.SIGWINCH)
            # the shell's next command runs after the resize was handled by the daemon
            for _ in range(50):
                s.send(b"stty size\r")
                try:
                    s.expect(b"21 77", timeout=0.5)
                    break
                except AssertionError:
                    continue
            assert b"21 77" in s.seen
            s.send(b"exit\r")
            assert s.wait() == 0
        finally:
            s.close()

    def test_attach_size(self, daemon: PydDaemon) -> None:
        """`docker attach` to a -t container resizes its TTY to the terminal's."""
        name = _name()
        daemon.docker("run", "-dit", "--name", name, IMG, "sh")
        try:
            s = PtySession(daemon, "attach", name)
            try:
                _set_size(s.master, 27, 99)
                os.kill(s.proc.pid, signal.SIGWINCH)
                for _ in range(50):
                    s.send(b"stty size\r")
                    try:
                        s.expect(b"27 99", timeout=0.5)
                        break
                    except AssertionError:
                        continue
                assert b"27 99" in s.seen
                s.send(b"\x10\x11")
                s.wait()
            finally:
                s.close()
        finally:
            daemon.docker("rm", "-f", name, check=False)


class AttachTests:
    """`docker attach` and detach keys."""

    def test_attach_detach(self, daemon: PydDaemon) -> None:
        """Attach to a -dit shell, type, detach with ctrl-p ctrl-q: it keeps running."""
        name = _name()
        daemon.docker("run", "-dit", "--name", name, IMG, "sh")
        try:
            s = PtySession(daemon, "attach", name)
            try:
                s.send(b"echo attached-$((1+1))\r")
                s.expect(b"attached-2")
                s.send(b"\x10\x11")
                # As with dockerd: the CLI reports the detach and exits 1.
                assert s.wait() == 1
                assert b"read escape sequence" in s.seen
            finally:
                s.close()
            state = json.loads(daemon.docker("inspect", name).stdout)[0]["State"]
            assert state["Running"] is True
        finally:
            daemon.docker("rm", "-f", name, check=False)

    def _raw_attach(self, daemon: PydDaemon, name: str, keys: str) -> socket.socket:
        cid = daemon.docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(daemon.sock)
        s.sendall(
            f"POST /v1.50/containers/{cid}/attach?stream=1&stdin=1&stdout=1&detachKeys={keys} "
            "HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode()
        )
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
        return s

    def test_daemon_side_detach_keys(self, daemon: PydDaemon) -> None:
        """On a raw attach to a TTY container, the daemon itself ends the stream at the detach
        keys (custom ones here) without stopping the container; bytes before them reach it."""
        name = _name()
        daemon.docker(
            "run", "-dit", "--name", name, IMG, "sh", "-c", "while read l; do echo got-$l; done"
        )
        try:
            s = self._raw_attach(daemon, name, "ctrl-x,x")
            s.sendall(b"one\n")
            data = b""
            while b"got-one" not in data:
                data += s.recv(4096)
            s.sendall(b"\x18x")
            while s.recv(4096):
                pass
            s.close()
            state = json.loads(daemon.docker("inspect", name).stdout)[0]["State"]
            assert state["Running"] is True
        finally:
            daemon.docker("rm", "-f", name, check=False)

    def test_no_detach_without_tty(self, daemon: PydDaemon) -> None:
        """Without a TTY the keys are not looked for (moby's CopyStreams): they reach the
        container like any other byte and the stream goes on."""
        name = _name()
        daemon.docker(
            "run", "-di", "--name", name, IMG, "sh", "-c", "while read l; do echo got-$l; done"
        )
        try:
            s = self._raw_attach(daemon, name, "ctrl-x,x")
            s.sendall(b"a\x18xb\n")
            data = b""
            while b"got-a\x18xb" not in data:
                chunk = s.recv(4096)
                assert chunk, data
                data += chunk
            s.sendall(b"two\n")
            while b"got-two" not in data:
                chunk = s.recv(4096)
                assert chunk, data
                data += chunk
            s.close()
        finally:
            daemon.docker("rm", "-f", name, check=False)

    def test_config_detach_keys(self, daemon: PydDaemon) -> None:
        """The CLI sends its config's detachKeys: ctrl-p ctrl-q then reach the shell and the
        configured keys detach."""
        name = _name()
        daemon.docker("run", "-dit", "--name", name, IMG, "sh")
        cfg = daemon.base / "docker-config" / "config.json"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        old = cfg.read_text() if cfg.exists() else None
        cfg.write_text(json.dumps({"detachKeys": "ctrl-x,x"}))
        try:
            s = PtySession(daemon, "attach", name)
            try:
                s.send(b"\x10\x11echo still-$((2+2))\r")
                s.expect(b"still-4")
                assert s.proc.poll() is None
                s.send(b"\x18x")
                assert s.wait() == 1
                assert b"read escape sequence" in s.seen
            finally:
                s.close()
            state = json.loads(daemon.docker("inspect", name).stdout)[0]["State"]
            assert state["Running"] is True
        finally:
            if old is None:
                cfg.unlink()
            else:
                cfg.write_text(old)
            daemon.docker("rm", "-f", name, check=False)

    def test_exec_detach(self, daemon: PydDaemon) -> None:
        """`docker exec -it` detached with ctrl-p ctrl-q: the CLI returns and the container
        keeps running."""
        name = _name()
        daemon.docker("run", "-d", "--name", name, IMG, "sleep", "300")
        try:
            s = PtySession(daemon, "exec", "-it", name, "sh")
            try:
                s.send(b"echo in-exec-$((3+3))\r")
                s.expect(b"in-exec-6")
                s.send(b"\x10\x11")
                s.wait()
                assert b"read escape sequence" in s.seen
            finally:
                s.close()
            state = json.loads(daemon.docker("inspect", name).stdout)[0]["State"]
            assert state["Running"] is True
        finally:
            daemon.docker("rm", "-f", name, check=False)

    def test_exec_daemon_side_detach(self, daemon: PydDaemon) -> None:
        """A raw TTY exec start with the exec's DetachKeys: the daemon ends the stream at
        them, the process keeps running and exec_detach is logged (moby's ContainerExecStart)."""
        name = _name()
        daemon.docker("run", "-d", "--name", name, IMG, "sleep", "300")
        try:
            status, _, body = daemon.request(
                "POST",
                f"/v1.50/containers/{name}/exec",
                {"Cmd": ["sh"], "Tty": True, "AttachStdin": True, "AttachStdout": True,
                 "DetachKeys": "ctrl-x,x"},
            )  # fmt: skip
            assert status == 201, body
            exec_id = json.loads(body)["Id"]
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(20)
            s.connect(daemon.sock)
            payload = b'{"Detach": false, "Tty": true}'
            s.sendall(
                f"POST /v1.50/exec/{exec_id}/start HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            data = b""
            s.sendall(b"echo x-$((4+4))\n")
            while b"x-8" not in data:
                chunk = s.recv(4096)
                assert chunk, data
                data += chunk
            s.sendall(b"\x18x")
            while s.recv(4096):
                pass
            s.close()
            status, _, body = daemon.request("GET", f"/v1.50/exec/{exec_id}/json")
            assert status == 200 and json.loads(body)["Running"] is True
            assert json.loads(body)["DetachKeys"] == "GHg="
            # Up to a second from now: events of this second are in, whatever their fraction.
            until = str(int(time.time()) + 1)
            events = daemon.docker(
                "events", "--since", "0", "--until", until, "--filter", f"container={name}",
                "--format", "{{.Action}}",
            ).stdout.split()  # fmt: skip
            assert "exec_detach" in events
        finally:
            daemon.docker("rm", "-f", name, check=False)

    def test_attach_logs_replay(self, daemon: PydDaemon) -> None:
        """`attach?logs=1&stream=0` replays what was logged, framed per stream, then ends."""
        name = _name()
        daemon.docker(
            "run", "-d", "--name", name, IMG, "sh", "-c", "echo before; echo oops >&2; sleep 300"
        )
        try:
            for _ in range(50):
                if "before" in daemon.docker("logs", name).stdout:
                    break
                time.sleep(0.1)
            status, headers, body = daemon.request(
                "POST", f"/v1.50/containers/{name}/attach?logs=1&stream=0&stdout=1&stderr=1"
            )
            assert status == 200
            assert headers["content-type"] == "application/vnd.docker.multiplexed-stream"
            assert body == b"\x01\0\0\0\0\0\0\x07before\n" + b"\x02\0\0\0\0\0\0\x05oops\n"
        finally:
            daemon.docker("rm", "-f", name, check=False)

    def test_attach_websocket(self, daemon: PydDaemon) -> None:
        """`GET /containers/{id}/attach/ws`, as dockerd serves it: a websocket whose binary
        frames carry stdout and stderr unmultiplexed (text frames before API 1.28), whose data
        frames are stdin, ended by a 1000 close frame; a bad handshake is x/net/websocket's
        400 and a missing container the usual JSON 404."""
        client = docker.APIClient(base_url=daemon.host, version="auto")
        c = client.create_container(
            IMG, ["sh", "-c", "printf hi; read x; echo got $x; echo err >&2"], stdin_open=True
        )
        try:
            ws = _ws_connect(
                daemon, f"/v1.50/containers/{c['Id']}/attach/ws?stdin=1&stdout=1&stderr=1&stream=1"
            )
            client.start(c)
            assert _ws_read(ws) == (0x2, b"hi")
            ws.sendall(_ws_client_frame(0x2, b"abc\n"))
            frames = [_ws_read(ws) for _ in range(3)]
            assert frames == [(0x2, b"got abc\n"), (0x2, b"err\n"), (0x8, b"\x03\xe8")]
            assert ws.recv(1) == b""
            ws.close()
            ws = _ws_connect(daemon, f"/v1.27/containers/{c['Id']}/attach/ws?logs=1")
            replay = []
            while (f := _ws_read(ws))[0] != 0x8:
                replay.append(f)
            assert {op for op, _ in replay} == {0x1}
            assert b"".join(p for _, p in replay) == b"higot abc\nerr\n"  # all three before 1.42
            ws.close()
            s = socket.socket(socket.AF_UNIX)
            s.connect(daemon.sock)
            s.sendall(f"GET /containers/{c['Id']}/attach/ws HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert _recv_all(s) == b"HTTP/1.1 400 Bad Request\r\n\r\nnot websocket protocol"
            s.close()
            with pytest.raises(ConnectionError, match="404"):
                _ws_connect(daemon, "/containers/pyd-no-such/attach/ws")
        finally:
            client.remove_container(c, force=True)
            client.close()

    def test_start_attach(self, daemon: PydDaemon) -> None:
        """`docker start -a` shows the output of a created container."""
        name = _name()
        daemon.docker("create", "--name", name, IMG, "echo", "from-start")
        try:
            r = daemon.docker("start", "-a", name)
            assert r.stdout == "from-start\n"
        finally:
            daemon.docker("rm", "-f", name, check=False)


class ExecTests:
    """`docker exec` in its forms."""

    def test_exec_output_and_code(self, daemon: PydDaemon, sleeper: str) -> None:
        """Output and the exit code come back; a missing command fails like dockerd's."""
        assert daemon.docker("exec", sleeper, "echo", "hi").stdout == "hi\n"
        assert daemon.docker("exec", sleeper, "sh", "-c", "exit 7", check=False).returncode == 7
        r = daemon.docker("exec", sleeper, "/nonexistent", check=False)
        assert r.returncode == 126
        assert "OCI runtime exec failed" in r.stdout + r.stderr

    def test_exec_user_workdir_env(self, daemon: PydDaemon, sleeper: str) -> None:
        """-u, -w and -e apply."""
        r = daemon.docker(
            "exec", "-u", "1000", "-w", "/tmp", "-e", "X=1", sleeper, "sh", "-c",
            "id -u; pwd; echo $X",
        )  # fmt: skip
        assert r.stdout == "1000\n/tmp\n1\n"

    def test_exec_stdin_and_detached(self, daemon: PydDaemon, sleeper: str) -> None:
        """-i feeds stdin (EOF closes it); -d runs in the background."""
        r = daemon.docker("exec", "-i", sleeper, "sh", "-c", "cat; echo end", input=b"abc\n")
        assert r.stdout == "abc\nend\n"
        daemon.docker("exec", "-d", sleeper, "touch", "/tmp/bg")
        for _ in range(50):
            if daemon.docker("exec", sleeper, "ls", "/tmp", check=False).stdout.find("bg") >= 0:
                break
            time.sleep(0.1)
        assert "bg" in daemon.docker("exec", sleeper, "ls", "/tmp").stdout

    def test_exec_tty(self, daemon: PydDaemon, sleeper: str) -> None:
        """`docker exec -it` on a pty."""
        s = PtySession(daemon, "exec", "-it", sleeper, "sh")
        try:
            s.expect(b"# ")
            s.send(b"test -t 0 && echo is-a-tty\r")
            s.expect(b"is-a-tty")
            s.send(b"exit 4\r")
            assert s.wait() == 4
        finally:
            s.close()

    def test_tty_of_create_not_of_start(self, daemon: PydDaemon, sleeper: str) -> None:
        """An exec created with Tty runs on a terminal even when its start says Tty=false (as
        docker-py's exec_start does): the terminal's "\r\n", stderr merged, in stdout frames."""
        client = docker.APIClient(base_url=daemon.host)
        try:
            ex = client.exec_create(sleeper, ["sh", "-c", "echo out; echo err >&2"], tty=True)
            assert client.exec_start(ex, demux=True) == (b"out\r\nerr\r\n", None)
        finally:
            client.close()

    def test_docker_py(self, daemon: PydDaemon, sleeper: str) -> None:
        """docker-py's exec_run reports the exit code and output."""
        client = docker.DockerClient(base_url=daemon.host)
        try:
            c = client.containers.get(sleeper)
            res = c.exec_run(["sh", "-c", "echo py; exit 2"])
            assert res.exit_code == 2
            assert res.output == b"py\n"
        finally:
            client.close()


class InspectStreamsTests:
    """top, stats, diff, export."""

    def test_top(self, daemon: PydDaemon, sleeper: str) -> None:
        """`docker top` lists the container's processes only."""
        out = daemon.docker("top", sleeper).stdout
        assert "sleep 300" in out
        assert "PID" in out.splitlines()[0]
        assert "twistd" not in out

    def test_stats(self, daemon: PydDaemon, sleeper: str) -> None:
        """`docker stats --no-stream` shows memory and pids."""
        out = daemon.docker(
            "stats", "--no-stream", "--format", "{{json .}}", sleeper
        ).stdout.strip()
        row = json.loads(out)
        assert row["Name"] == sleeper
        assert row["PIDs"] == "1"
        assert "B" in row["MemUsage"]

    def test_diff_and_export(self, daemon: PydDaemon, sleeper: str) -> None:
        """`docker diff` shows an added file; `docker export` is a tar of the root."""
        daemon.docker("exec", sleeper, "sh", "-c", "echo x > /tmp/added")
        diff = daemon.docker("diff", sleeper).stdout.splitlines()
        assert "A /tmp/added" in diff
        out = subprocess.run(
            [DOCKER, "-H", daemon.host, "export", sleeper], capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(out)) as tf:
            names = tf.getnames()
        assert "bin/busybox" in names and "tmp/added" in names


class CopyTests:
    """`docker cp` both ways."""

    def test_copy_out_and_in(self, daemon: PydDaemon, sleeper: str, tmp_path: Path) -> None:
        """A file out; a file in (into a directory, and renamed onto a new name)."""
        daemon.docker("exec", sleeper, "sh", "-c", "echo content > /tmp/f")
        daemon.docker("cp", f"{sleeper}:/tmp/f", str(tmp_path / "out"))
        assert (tmp_path / "out").read_text() == "content\n"
        (tmp_path / "in").write_text("uploaded\n")
        daemon.docker("cp", str(tmp_path / "in"), f"{sleeper}:/tmp/")
        daemon.docker("cp", str(tmp_path / "in"), f"{sleeper}:/tmp/renamed")
        r = daemon.docker("exec", sleeper, "cat", "/tmp/in", "/tmp/renamed")
        assert r.stdout == "uploaded\nuploaded\n"

    def test_copy_directory(self, daemon: PydDaemon, sleeper: str, tmp_path: Path) -> None:
        """A directory copies recursively."""
        daemon.docker("exec", sleeper, "sh", "-c", "mkdir -p /d/sub && echo 1 > /d/sub/a")
        daemon.docker("cp", f"{sleeper}:/d", str(tmp_path / "d"))
        assert (tmp_path / "d" / "sub" / "a").read_text() == "1\n"

    def test_symlink_escape_refused(self, daemon: PydDaemon, sleeper: str, tmp_path: Path) -> None:
        """A symlink pointing out of the root is resolved inside it: the host file is neither
        read nor written through it."""
        host_dir = tmp_path / "hostside"
        host_dir.mkdir()
        (host_dir / "secret").write_text("host-secret\n")
        rel = "../" * 12 + str(host_dir).lstrip("/")
        daemon.docker("exec", sleeper, "ln", "-s", rel, "/tmp/escape")
        daemon.docker("exec", sleeper, "ln", "-s", str(host_dir), "/tmp/escape-abs")
        for link in ("/tmp/escape", "/tmp/escape-abs"):
            r = daemon.docker("cp", f"{sleeper}:{link}/secret", str(tmp_path / "got"), check=False)
            assert r.returncode != 0
            assert "Could not find the file" in r.stderr
            assert not (tmp_path / "got").exists()
            r = daemon.docker("cp", "-L", f"{sleeper}:{link}", str(tmp_path / "got2"), check=False)
            assert not (tmp_path / "got2").exists() or "host-secret" not in _read_any(
                tmp_path / "got2"
            )
        (tmp_path / "payload").write_text("evil\n")
        daemon.docker("cp", str(tmp_path / "payload"), f"{sleeper}:/tmp/escape-abs/", check=False)
        assert sorted(p.name for p in host_dir.iterdir()) == ["secret"]


def _read_any(p: Path) -> str:
    if p.is_dir():
        return "".join(_read_any(c) for c in p.iterdir())
    try:
        return p.read_text()
    except OSError:
        return ""


class CommitTests:
    """`docker commit` keeps the container's changes."""

    def test_commit(self, daemon: PydDaemon, sleeper: str) -> None:
        """A committed file is in a container of the new image."""
        tag = "pyd-t-commit-" + uuid.uuid4().hex[:6]
        daemon.docker("exec", sleeper, "sh", "-c", "echo kept > /kept")
        daemon.docker("commit", sleeper, tag)
        try:
            assert daemon.docker("run", "--rm", tag, "cat", "/kept").stdout == "kept\n"
        finally:
            daemon.docker("rmi", "-f", tag, check=False)


class DockerPyRunTests:
    """docker-py's foreground run."""

    def test_run_output(self, daemon: PydDaemon) -> None:
        """containers.run(..., detach=False) returns the output."""
        client = docker.DockerClient(base_url=daemon.host)
        try:
            out = client.containers.run(IMG, ["sh", "-c", "echo py-run"], remove=True)
            assert out == b"py-run\n"
        finally:
            client.close()


class LiveRestoreStreamsTests:
    """exec and attach reach containers that outlived a killed daemon."""

    def test_exec_and_attach_after_kill9(self, daemon: PydDaemon) -> None:
        """kill -9 the daemon, start it again: exec runs and attach sees new output."""
        name = _name()
        daemon.docker(
            "run", "-d", "--name", name, IMG, "sh", "-c",
            "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done",
        )  # fmt: skip
        try:
            daemon.kill9()
            daemon.start()
            assert daemon.docker("exec", name, "echo", "still-here").stdout == "still-here\n"
            p = subprocess.Popen(
                [DOCKER, "-H", daemon.host, "attach", "--no-stdin", name],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                assert p.stdout is not None
                ready, _, _ = select.select([p.stdout], [], [], 30)
                assert ready, "no output from docker attach"
                line = p.stdout.readline()
                assert line.startswith(b"tick-")
            finally:
                p.kill()
                p.wait()
        finally:
            daemon.docker("rm", "-f", name, check=False)
