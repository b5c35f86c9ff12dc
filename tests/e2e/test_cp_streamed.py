"""PUT /containers/{id}/archive streams its body into the extraction helper (issue 21): a body in
many small chunks, a refusal in the middle of the body, and a client that goes away mid-body,
over a raw Unix socket against a running daemon."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import tarfile
import uuid
from collections.abc import Iterator

import pytest

from tests.helpers.daemon import PydDaemon, parse_answer, recv_all, wait_until
from tests.helpers.images import DEFAULT_TAG

pytestmark = pytest.mark.e2e


def _tar(*entries: tuple[str, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _connect(pyd: PydDaemon) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(pyd.sock)
    return s


def _read_answer(s: socket.socket) -> tuple[int, bytes]:
    data = recv_all(s)
    if data.startswith(b"HTTP/1.1 100 "):  # Expect: 100-continue's interim answer
        data = data.partition(b"\r\n\r\n")[2]
    status, _, body = parse_answer(data)
    return status, body


def _put_chunked(pyd: PydDaemon, ref: str, path: str, body: bytes, piece: int) -> tuple[int, bytes]:
    """The body sent in chunked encoding, C{piece} bytes a chunk, each its own send."""
    s = _connect(pyd)
    try:
        s.sendall(
            f"PUT /v1.41/containers/{ref}/archive?path={path}&noOverwriteDirNonDir=true HTTP/1.1\r\n"
            "Host: pyd\r\nConnection: close\r\nContent-Type: application/x-tar\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        for i in range(0, len(body), piece):
            part = body[i : i + piece]
            s.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        return _read_answer(s)
    finally:
        s.close()


@pytest.fixture
def box(pyd: PydDaemon) -> Iterator[str]:
    name = "pyd-t-" + uuid.uuid4().hex[:10]
    pyd.docker("run", "-d", "--name", name, DEFAULT_TAG, "sleep", "300")
    try:
        yield name
    finally:
        pyd.docker("rm", "-f", name, check=False)


def _sha(pyd: PydDaemon, box: str, path: str) -> str:
    return pyd.docker("exec", box, "sha256sum", path).stdout.split()[0]


def _helpers(pyd: PydDaemon) -> list[int]:
    """The pids of the helpers the fork server has forked and not reaped."""
    assert pyd.proc is not None
    out = subprocess.run(
        ["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split(None, 2) for line in out.splitlines() if line.strip()]
    servers = {r[0] for r in rows if len(r) == 3 and "pyd.drivers.forkserver" in r[2]}
    daemon = str(pyd.proc.pid)
    servers = {p for p in servers if any(r[0] == p and r[1] == daemon for r in rows)}
    spawned = [r[0] for r in rows if r[1] == daemon and "rootview" in r[2]]  # the fallback
    return [int(r[0]) for r in rows if r[1] in servers] + [int(p) for p in spawned]


def test_a_body_in_many_chunks_is_extracted_whole(pyd: PydDaemon, box: str) -> None:
    """3 MiB in 1,500-byte chunks (the pipe fills and the connection is paused many times)."""
    big = os.urandom(3 << 20)
    body = _tar(("d", None), ("d/big", big), ("d/small", b"hello\n"))
    status, answer = _put_chunked(pyd, box, "/tmp", body, 1500)
    assert (status, answer) == (200, b"")
    assert _sha(pyd, box, "/tmp/d/big") == hashlib.sha256(big).hexdigest()
    assert pyd.docker("exec", box, "cat", "/tmp/d/small").stdout == "hello\n"


def test_a_refusal_mid_body_is_dockerds_answer(pyd: PydDaemon, box: str) -> None:
    """An entry that would replace a directory with a file, after 2 MiB of accepted entries:
    dockerd's 500 and text, sent once the body is in; the connection's next state is clean (a
    second request on the daemon is answered). An escaping entry mid-body: the 400 tar error."""
    pyd.docker("exec", box, "mkdir", "-p", "/tmp/t/dir")
    first = os.urandom(2 << 20)
    body = _tar(("first", first), ("dir", b"not a dir"), ("after", b"x"))
    status, answer = _put_chunked(pyd, box, "/tmp/t", body, 32 << 10)
    assert status == 500
    assert b'cannot overwrite directory \\"/tmp/t/dir\\" with non-directory \\"/tmp/t\\"' in answer
    # go-archive checks each entry as it comes: what came before stays, nothing after
    assert _sha(pyd, box, "/tmp/t/first") == hashlib.sha256(first).hexdigest()
    assert pyd.docker("exec", box, "ls", "-A", "/tmp/t").stdout.split() == ["dir", "first"]

    body = _tar(("a", os.urandom(1 << 20)), ("../../../escaped", b"x"))
    status, answer = _put_chunked(pyd, box, "/tmp/t", body, 16 << 10)
    assert status == 400
    assert b"Error processing tar file(" in answer and b"outside of" in answer
    assert pyd.docker("exec", box, "ls", "/escaped", check=False).returncode != 0


def test_a_client_gone_mid_body_ends_the_helper(pyd: PydDaemon, box: str) -> None:
    """Headers for 64 MiB, 4 MiB sent, then the connection closed: extraction had begun before
    the body's end (the file is there), the helper ends (no child of the fork server is left)
    and the daemon serves the next copy."""
    s = _connect(pyd)
    try:
        s.sendall(
            f"PUT /v1.41/containers/{box}/archive?path=/tmp HTTP/1.1\r\nHost: pyd\r\n"
            f"Content-Type: application/x-tar\r\nContent-Length: {64 << 20}\r\n\r\n".encode()
        )
        info = tarfile.TarInfo("huge")
        info.size = 60 << 20
        header = info.tobuf(tarfile.USTAR_FORMAT)
        s.sendall(header)
        for _ in range(64):
            s.sendall(os.urandom(64 << 10))
        wait_until(lambda: pyd.docker("exec", box, "ls", "/tmp/huge", check=False).returncode == 0)
    finally:
        s.close()
    wait_until(lambda: not _helpers(pyd))
    status, answer = _put_chunked(pyd, box, "/tmp", _tar(("next", b"ok\n")), 4096)
    assert (status, answer) == (200, b"")
    assert pyd.docker("exec", box, "cat", "/tmp/next").stdout == "ok\n"


def _put_raw(pyd: PydDaemon, ref: str, path: str, head: str, body: bytes) -> tuple[int, bytes]:
    """C{body} sent after headers C{head} (C{Content-Length} and the like), as one stream."""
    s = _connect(pyd)
    try:
        s.sendall(
            f"PUT /v1.41/containers/{ref}/archive?path={path} HTTP/1.1\r\nHost: pyd\r\n"
            f"Connection: close\r\nContent-Type: application/x-tar\r\n{head}\r\n".encode()
        )
        s.sendall(body)
        return _read_answer(s)
    finally:
        s.close()


def test_a_body_that_is_not_a_tar_is_the_same_400_streamed_or_gathered(
    pyd: PydDaemon, box: str
) -> None:
    """1 MiB of noise: a 400 naming the tar error, the same text whether the body was streamed
    (chunked, or with a length) or gathered first (a client that asks C{Expect: 100-continue}
    is answered by twisted.web's whole-body path); no helper is left."""
    noise = b"\x01" * 512 + os.urandom(1 << 20)
    chunked = _put_chunked(pyd, box, "/tmp", noise, 32 << 10)
    sized = _put_raw(pyd, box, "/tmp", f"Content-Length: {len(noise)}\r\n", noise)
    gathered = _put_raw(
        pyd, box, "/tmp", f"Content-Length: {len(noise)}\r\nExpect: 100-continue\r\n", noise
    )
    assert chunked[0] == 400 and b"Error processing tar file(" in chunked[1]
    assert sized == chunked
    assert gathered == chunked
    wait_until(lambda: not _helpers(pyd))


def test_a_body_longer_than_announced_is_cut_at_its_length(pyd: PydDaemon, box: str) -> None:
    """A Content-Length shorter than what is sent: the tar up to the length is extracted and
    answered, and the bytes after it are the connection's next request (a 400 and the
    connection closed, as Go's server answers bytes that are not a request)."""
    body = _tar(("within", b"ok\n"))
    s = _connect(pyd)
    try:
        s.sendall(
            f"PUT /v1.41/containers/{box}/archive?path=/tmp HTTP/1.1\r\nHost: pyd\r\n"
            f"Content-Type: application/x-tar\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
            + b"x" * 8000  # more of the "body": a line of the next request to the server
            + b" is not a request\r\n\r\n"
        )
        data = recv_all(s)
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 400 " in data
    assert pyd.docker("exec", box, "cat", "/tmp/within").stdout == "ok\n"
    assert pyd.docker("exec", box, "ls", "-A", "/tmp").stdout.split() == ["within"]
    wait_until(lambda: not _helpers(pyd))


def test_refused_requests_leave_nothing_behind(pyd: PydDaemon, box: str) -> None:
    """An unknown container and a missing parameter are answered on the request alone (404,
    400); a missing directory is the helper's own refusal before it reads the body (404).
    Each 4 MiB body is read and discarded, and the connection serves a next request."""
    body = _tar(("f", os.urandom(4 << 20)))
    status, answer = _put_chunked(pyd, "pyd-t-no-such-container", "/tmp", body, 32 << 10)
    assert status == 404 and b"No such container: pyd-t-no-such-container" in answer
    status, answer = _put_chunked(pyd, box, "", body, 32 << 10)
    assert status == 400 and b"bad parameter: pathcannot be empty" in answer
    status, answer = _put_chunked(pyd, box, "/no/such/dir", body, 32 << 10)
    assert status == 404
    assert b"Could not find the file /no/such/dir in container " + box.encode() in answer
    assert pyd.docker("exec", box, "ls", "/no", check=False).returncode != 0
    wait_until(lambda: not _helpers(pyd))

    s = _connect(pyd)
    try:  # a refused request's body is drained, then the same connection goes on
        s.sendall(
            b"PUT /v1.41/containers/pyd-t-none/archive?path=/tmp HTTP/1.1\r\nHost: pyd\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
            + b"GET /v1.41/_ping HTTP/1.1\r\nHost: pyd\r\nConnection: close\r\n\r\n"
        )
        data = recv_all(s)
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 404 ")
    assert data.count(b"HTTP/1.1 200 OK") == 1 and data.endswith(b"OK")
