"""The journald log driver with dual logging (issue 17): the daemon runs in a mount namespace of
the test's own where /run/systemd/journal is the test's directory, so the journal socket the
daemon writes to is the test's; `docker logs` still shows the lines."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox
from tests.helpers.journald import journal_fields


def test_journald_native_protocol_and_docker_logs(tmp_path: Path) -> None:
    """Each line reaches the journal socket with the container's fields; docker logs works."""
    jdir = tmp_path / "journal"
    jdir.mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(jdir / "socket"))
    # A private mount namespace: a tmpfs on /run/systemd there, with the test's directory as
    # its journal/ (nothing changes in the host's /run).
    script = (
        "mount -t tmpfs pyd-test /run/systemd && mkdir /run/systemd/journal && "
        f'mount --bind {jdir} /run/systemd/journal && exec "$@"'
    )
    d = PydDaemon(
        str(tmp_path / "d"),
        # the wrapper keeps the root network namespace: the network rule's flags by hand
        extra_args=["--ip-forward=false", "--ip-masq=false"],
        wrapper=["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"],
    )
    try:
        d.start()
        load_busybox(d)
        d.docker(
            "run", "--name", "jlogger", "--log-driver", "journald",
            DEFAULT_TAG, "sh", "-c", "echo hello; echo oops >&2",
        )  # fmt: skip
        got: list[dict[str, bytes]] = []
        deadline = time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.1))
            try:
                got.append(journal_fields(sock.recv(65536)))
            except TimeoutError:
                break
        by_msg = {f["MESSAGE"]: f for f in got}
        assert set(by_msg) == {b"hello", b"oops"}, got
        hello = by_msg[b"hello"]
        assert hello["PRIORITY"] == b"6" and by_msg[b"oops"]["PRIORITY"] == b"3"
        assert hello["CONTAINER_NAME"] == b"jlogger"
        assert hello["IMAGE_NAME"] == DEFAULT_TAG.encode()
        full = d.docker("inspect", "-f", "{{.Id}}", "jlogger").stdout.strip().encode()
        assert hello["CONTAINER_ID_FULL"] == full and hello["CONTAINER_ID"] == full[:12]
        assert hello["SYSLOG_IDENTIFIER"] == full[:12]
        logs = d.docker("logs", "jlogger")
        assert (logs.stdout.split(), logs.stderr.split()) == (["hello"], ["oops"])
    finally:
        d.cleanup()
        sock.close()
