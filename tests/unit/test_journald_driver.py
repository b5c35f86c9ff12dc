"""The journald log driver: the native protocol, and the forwarder following a container's log
(a journal socket of the test's own)."""

from __future__ import annotations

import datetime
import os
import shutil
import socket
import struct
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import InvalidParameter
from pyd.drivers.journald import JournaldSender, encode
from pyd.engine.containers import runconfig
from pyd.engine.containers.logfiles import LogTail
from pyd.engine.containers.logforward import LogForwarder
from pyd.engine.spec import rules
from tests.helpers.journald import journal_fields


class JournaldTests(SynchronousTestCase):
    """Datagrams as journald's native protocol wants them."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="pyd-journal-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "socket")
        self.rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.rx.bind(self.path)
        self.rx.settimeout(5)
        self.addCleanup(self.rx.close)

    def test_encode_binary_safe(self) -> None:
        """A value with a newline uses the length-prefixed form."""
        raw = encode({"A": "x", "B": b"l1\nl2"})
        self.assertEqual(raw, b"A=x\nB\n" + struct.pack("<Q", 5) + b"l1\nl2\n")
        self.assertEqual(journal_fields(raw), {"A": b"x", "B": b"l1\nl2"})

    def test_forwarder_sends_container_fields(self) -> None:
        """Each new line of the log goes out with the container's fields and its priority;
        lines already in the file when forwarding starts are not sent again."""
        log = os.path.join(self.dir, "ctr.log")
        with open(log, "wb") as f:
            f.write(b"2026-03-05T14:07:09.000000001Z stdout F old\n")
        sender = JournaldSender(
            {"CONTAINER_ID": "abc", "CONTAINER_NAME": "web", "SYSLOG_IDENTIFIER": "abc"},
            self.path,
        )
        fwd = LogForwarder(LogTail(log), sender, "abc")
        self.addCleanup(fwd.close)
        fwd.skip_existing()
        with open(log, "ab") as f:
            f.write(b"2026-03-05T14:07:10.000000001Z stdout F hello\n")
            f.write(b"2026-03-05T14:07:11.000000001Z stderr F oops\n")
        self.assertEqual(fwd.drain(), 2)
        first, second = journal_fields(self.rx.recv(65536)), journal_fields(self.rx.recv(65536))
        self.assertEqual((first["MESSAGE"], first["PRIORITY"]), (b"hello", b"6"))
        self.assertEqual((second["MESSAGE"], second["PRIORITY"]), (b"oops", b"3"))
        self.assertEqual(first["CONTAINER_NAME"], b"web")
        self.assertEqual(first["SYSLOG_TIMESTAMP"], b"2026-03-05T14:07:10.000000001Z")
        # dockerd 28's sequence fields: one epoch per logger, ordinals from 1
        epoch = first["CONTAINER_LOG_EPOCH"]
        self.assertEqual((len(epoch), second["CONTAINER_LOG_EPOCH"]), (64, epoch))
        self.assertEqual(
            (first["CONTAINER_LOG_ORDINAL"], second["CONTAINER_LOG_ORDINAL"]), (b"1", b"2")
        )
        other = JournaldSender({}, self.path)
        self.assertNotEqual(other.fields["CONTAINER_LOG_EPOCH"].encode(), epoch)

    def test_options(self) -> None:
        """journald takes the common options and the cache ones; others are dockerd's 400."""
        rules.validate_log_config(
            {"Type": "journald", "Config": {"tag": "x", "cache-max-file": "2"}}
        )
        e = self.assertRaises(
            InvalidParameter,
            rules.validate_log_config,
            {"Type": "journald", "Config": {"syslog-address": "udp://x"}},
        )
        self.assertEqual(str(e), "unknown log opt 'syslog-address' for journald log driver")
        plan = runconfig.log_plan({"Type": "journald", "Config": {}})
        self.assertEqual((plan.driver, plan.forward), ("journald", {}))

    def test_no_journal(self) -> None:
        """Without a journal socket the send fails with OSError (logged by the engine)."""
        sender = JournaldSender({}, os.path.join(self.dir, "absent"))
        self.addCleanup(sender.close)
        when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
        self.assertRaises(OSError, sender.send, "stdout", b"x\n", when, "t")

    def test_long_line_partial_fields(self) -> None:
        """A 40 KiB line (in conmon's smaller chunks) goes out as dockerd 28 splits it: two 16 KiB
        pieces marked partial, then the rest as the last piece, one id and ordinals 1..3; a short
        line between carries no partial field; a line left without a newline goes out at close."""
        sender = JournaldSender({"CONTAINER_ID": "abc"}, self.path)
        line = bytes(range(65, 91)) * 1600  # 41600 bytes
        when = datetime.datetime(2026, 3, 5, tzinfo=datetime.UTC)
        for i in range(0, len(line), 8192):
            sender.send("stdout", line[i : i + 8192], when, "abc", b"T1")
        sender.send("stdout", b"\n", when, "abc", b"T2")
        sender.send("stderr", b"short\n", when, "abc", b"T3")
        sender.send("stderr", b"unterminated", when, "abc", b"T4")
        got = [journal_fields(self.rx.recv(65536)) for _ in range(4)]
        pieces, short = got[:3], got[3]
        self.assertEqual(b"".join(p["MESSAGE"] for p in pieces), line)
        self.assertEqual([len(p["MESSAGE"]) for p in pieces], [16384, 16384, 41600 - 32768])
        self.assertEqual([p["CONTAINER_PARTIAL_ORDINAL"] for p in pieces], [b"1", b"2", b"3"])
        self.assertEqual(
            [p["CONTAINER_PARTIAL_LAST"] for p in pieces], [b"false", b"false", b"true"]
        )
        self.assertEqual(
            [p.get("CONTAINER_PARTIAL_MESSAGE") for p in pieces], [b"true", b"true", None]
        )
        ids = {p["CONTAINER_PARTIAL_ID"] for p in pieces}
        self.assertEqual(len(ids), 1)
        self.assertEqual(len(ids.pop()), 64)
        self.assertEqual(short["MESSAGE"], b"short")
        self.assertFalse([k for k in short if k.startswith("CONTAINER_PARTIAL")])
        self.rx.setblocking(False)
        self.assertRaises(BlockingIOError, self.rx.recv, 65536)  # the unterminated line waits
        self.rx.setblocking(True)
        sender.close()
        last = journal_fields(self.rx.recv(65536))
        self.assertEqual((last["MESSAGE"], last["PRIORITY"]), (b"unterminated", b"3"))
        self.assertEqual(last["SYSLOG_TIMESTAMP"], b"T4")
