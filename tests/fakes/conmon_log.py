"""conmon 2.1.6's k8s-file writer, in Python, for rotation tests.

Mirrors C{write_k8s_log}, C{reopen_k8s_file} (src/ctr_logging.c) and the control FIFO's
C{REOPEN_LOGS_EVENT} (src/ctrl.c): before each record it carries out a reopen requested on the
FIFO, and checks whether the record would take the file past C{--log-size-max}; a reopen
closes the file, opens C{<log>.tmp} with O_TRUNC|O_CREAT and renames it over the log.
"""

from __future__ import annotations

import os
from collections.abc import Callable

TS = "2026-11-28T12:30:03.100000000+00:00"


class FakeConmonLog:
    """One conmon's log writer (its byte counter starts at 0, like a fresh conmon)."""

    def __init__(self, path: str, size_max: int = 0, ctl_path: str = "") -> None:
        self.path = path
        self.size_max = size_max
        self.written = 0
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.ctl = -1
        if ctl_path:
            os.mkfifo(ctl_path, 0o600)
            self.ctl = os.open(ctl_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.mid_rotation: Callable[[], None] | None = None
        self.rotations = 0
        self.requests = 0

    def line(self, text: str, stream: str = "stdout") -> None:
        self._read_ctl()
        record = f"{TS} {stream} F {text}\n".encode()
        if self.size_max > 0 and self.written + len(record) > self.size_max:
            self.written = 0
            self.reopen()
        os.write(self.fd, record)
        self.written += len(record)

    def _read_ctl(self) -> None:
        if self.ctl < 0:
            return
        try:
            data = os.read(self.ctl, 200)
        except BlockingIOError:
            return
        for msg in data.splitlines():
            if msg.split()[:1] == [b"2"] and len(msg.split()) == 3:
                self.requests += 1
                self.reopen()  # (bytes_written is not reset by a requested reopen)

    def reopen(self) -> None:
        os.close(self.fd)
        tmp = self.path + ".tmp"
        self.fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if self.mid_rotation is not None:
            self.mid_rotation()
        os.rename(tmp, self.path)
        self.rotations += 1

    def close(self) -> None:
        for fd in (self.fd, self.ctl):
            if fd >= 0:
                os.close(fd)
        self.fd = self.ctl = -1
