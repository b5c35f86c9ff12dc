"""L{pyd.api.bodystream.StreamedBody}: a request body written to a pipe as it arrives, with the
client's connection paused while the pipe is full."""

from __future__ import annotations

import fcntl
import os
from typing import Any

from twisted.internet.error import ConnectionLost
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.bodystream import BATCH, HIGH_WATER, StreamedBody
from pyd.engine.archive import PIPE_SIZE


class _Transport:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def pauseProducing(self) -> None:
        # a paused transport may be paused again (harmless, as Twisted's)
        self.pauses += not self.paused
        self.paused = True

    def resumeProducing(self) -> None:
        assert self.paused
        self.paused = False


class _Reactor:
    def __init__(self) -> None:
        self.writers: set[Any] = set()

    def addWriter(self, w: Any) -> None:
        self.writers.add(w)

    def removeWriter(self, w: Any) -> None:
        self.writers.discard(w)


class StreamedBodyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.transport, self.reactor = _Transport(), _Reactor()
        self.body = StreamedBody(self.reactor, self.transport)  # type: ignore[arg-type]  # a fake reactor
        self.r, w = os.pipe()  # 64 KiB: filled many times over below
        self.w = w
        self.addCleanup(self._close_read)

    def _big_pipe(self) -> None:
        """The daemon's pipe size (pyd.engine.archive.PIPE_SIZE): a batch fits in it."""
        fcntl.fcntl(self.w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)

    def _close_read(self) -> None:
        if self.r >= 0:
            os.close(self.r)

    def _drain(self) -> bytes:
        os.set_blocking(self.r, False)
        out = b""
        while True:
            try:
                data = os.read(self.r, 1 << 20)
            except BlockingIOError:
                return out
            if not data:
                return out
            out += data

    def test_many_chunks_arrive_in_order_with_backpressure(self) -> None:
        """Pieces before the pipe is given are kept (the connection paused past the high
        mark); then each is written as it comes; a full pipe is watched and the connection
        paused until it is read; the body's end closes the pipe and fires."""
        pieces = [bytes([i % 251]) * 1000 for i in range(3000)]
        sent = b"".join(pieces)
        for p in pieces[:1500]:
            self.body.write(p)
        self.assertTrue(self.transport.paused)  # 1.5 MB kept, nowhere to go yet
        done = self.body.feed(self.w)
        got = self._drain()
        while self.reactor.writers:
            self.body.doWrite()
            got += self._drain()
        self.assertFalse(self.transport.paused)
        for p in pieces[1500:]:
            self.body.write(p)
            while self.transport.paused:  # the channel reads nothing more until then
                got += self._drain()
                self.body.doWrite()
        self.assertNoResult(done)
        self.body.end()
        got += self._drain()
        while self.reactor.writers:
            self.body.doWrite()
            got += self._drain()
        self.successResultOf(done)
        self.assertEqual(got, sent)
        self.assertEqual(os.read(self.r, 1), b"")  # the pipe is closed: its reader sees EOF
        self.assertGreater(self.transport.pauses, 1)
        self.assertFalse(self.transport.paused)

    def test_a_reader_that_stops_mid_body_leaves_the_rest_discarded(self) -> None:
        """The helper answered (a refusal) before the body's end: the rest is dropped and the
        connection keeps being read (never left paused)."""
        done = self.body.feed(self.w)
        for _ in range(200):
            self.body.write(b"x" * 16384)  # far more than a pipe holds
        self.assertTrue(self.transport.paused)
        os.close(self.r)
        self.r = -1
        self.body.doWrite()  # EPIPE: the reader is gone
        self.successResultOf(done)
        self.assertFalse(self.transport.paused)
        self.assertEqual(self.reactor.writers, set())
        self.body.write(b"more")  # discarded
        self.body.end()
        self.assertEqual(self.body.received, 200 * 16384 + 4)

    def test_drop_discards_and_closes(self) -> None:
        done = self.body.feed(self.w)
        self.body.write(b"a" * (HIGH_WATER + 1 << 1))
        self.body.drop()
        self.successResultOf(done)
        self.assertFalse(self.transport.paused)
        self.assertEqual(self.reactor.writers, set())
        self._drain()  # what fitted in the pipe
        self.assertEqual(os.read(self.r, 1), b"")

    def test_a_client_gone_mid_body_closes_the_pipe_and_fails_the_feed(self) -> None:
        """What was written stays in the pipe for its reader, then an early end; what was held
        below a batch goes with the client."""
        self._big_pipe()
        done = self.body.feed(self.w)
        self.body.write(b"a" * BATCH)
        self.body.write(b"abc")
        self.body.close()
        self.failureResultOf(done, ConnectionLost)
        self.assertEqual(self._drain(), b"a" * BATCH)
        self.assertEqual(os.read(self.r, 1), b"")  # early EOF: the helper stops

    def test_a_pipe_given_after_the_answer_is_closed_at_once(self) -> None:
        self.body.drop()
        self.successResultOf(self.body.feed(self.w))
        self.assertEqual(os.read(self.r, 1), b"")

    def test_small_pieces_are_written_in_batches(self) -> None:
        """Pieces of a few KiB are gathered into writes of at least L{BATCH} bytes (one wake-up
        of the reader each); the body's end writes what is left."""
        self._big_pipe()
        done = self.body.feed(self.w)
        piece = b"p" * 3000
        sent = 0
        while sent + len(piece) < BATCH:
            self.body.write(piece)
            sent += len(piece)
        self.assertEqual(self._drain(), b"")  # held: not a batch yet
        self.body.write(piece)
        self.assertEqual(self._drain(), piece * (sent // len(piece) + 1))  # one write
        self.body.write(b"tail")
        self.assertEqual(self._drain(), b"")
        self.body.end()
        self.assertEqual(self._drain(), b"tail")
        self.successResultOf(done)
        self.assertEqual(os.read(self.r, 1), b"")
