"""Back-pressure of streamed responses (issue 18): a client that stops reading costs a small,
bounded buffer."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.streams import JSONLines


class _Transport:
    def __init__(self) -> None:
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True


class _Channel:
    def __init__(self) -> None:
        self.transport = _Transport()


class _Request:
    """The parts of twisted.web's Request a stream uses."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.producer: Any = None
        self.finished = False
        self.channel = _Channel()
        self._finish: list[Deferred[None]] = []
        self.code = 0

    def setResponseCode(self, code: int) -> None:
        self.code = code

    def setHeader(self, name: bytes, value: bytes) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming and self.producer is None
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def notifyFinish(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._finish.append(d)
        return d

    def finish(self) -> None:
        self.finished = True

    def lines(self) -> list[Any]:
        return [json.loads(x) for x in b"".join(self.written).splitlines()]


class JSONLinesBackpressureTests(SynchronousTestCase):
    """JSONLines holds, drops superseded progress, cuts off a client that lets it pile up."""

    def test_written_at_once_while_reading(self) -> None:
        """A client that reads gets every line as it is written."""
        req = _Request()
        out = JSONLines(req)
        out.write({"status": "a"})
        self.assertEqual(req.lines(), [{"status": "a"}])
        self.assertIs(req.producer, out.flow)

    def test_paused_holds_then_flushes_in_order(self) -> None:
        """Paused: lines are held (progress updates dropped); resumed: written in order."""
        req = _Request()
        out = JSONLines(req)
        req.producer.pauseProducing()
        out.write({"status": "Downloading", "progressDetail": {"current": 1, "total": 9}})
        out.write({"status": "Pull complete", "progressDetail": {}, "id": "x"})
        self.assertEqual(req.written, [b""])
        req.producer.resumeProducing()
        self.assertEqual(
            req.lines(), [{"status": "Pull complete", "progressDetail": {}, "id": "x"}]
        )
        self.assertEqual(out.dropped, 1)

    def test_client_that_never_reads_is_cut_off(self) -> None:
        """Beyond the hold limit the connection is aborted and nothing more is kept."""
        req = _Request()
        out = JSONLines(req, hold_limit=10_000)
        req.producer.pauseProducing()
        for i in range(1000):
            out.write({"stream": f"line {i} " + "x" * 50})
        self.assertTrue(req.channel.transport.aborted)
        self.assertTrue(out.closed)
        self.assertEqual(out._held_bytes, 0)

    def test_ready_waits_while_paused(self) -> None:
        """ready() (the writers that can wait: logs, stats) fires only once resumed."""
        req = _Request()
        out = JSONLines(req)
        req.producer.pauseProducing()
        d = Deferred.fromCoroutine(out.ready())
        self.assertNoResult(d)
        req.producer.resumeProducing()
        self.successResultOf(d)

    def test_finish_waits_for_held_lines(self) -> None:
        """finish() while lines are held ends the response after they are written."""
        req = _Request()
        out = JSONLines(req)
        req.producer.pauseProducing()
        out.write({"status": "done"})
        out.finish()
        self.assertFalse(req.finished)
        req.producer.resumeProducing()
        self.assertTrue(req.finished)
        self.assertEqual(req.lines(), [{"status": "done"}])
