"""Docker's stream rules in pyd.engine.streams: detach keys and the I/O session plumbing."""

from __future__ import annotations

import pytest

from pyd.core.errors import InvalidParameter
from pyd.engine.exec import merge_env
from pyd.engine.streams import DetachScanner, IOSession, key_bytes, parse_detach_keys


class DetachKeyTests:
    """C{detachKeys} parsing and scanning, as moby's term.ToBytes and escapeProxy do it."""

    def test_parse(self) -> None:
        """ctrl-<x> and single characters become bytes; the default is ctrl-p,ctrl-q."""
        assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
        assert parse_detach_keys("a,ctrl-@,ctrl-[,ctrl-_") == b"a\x00\x1b\x1f"

    def test_parse_as_term_to_bytes(self) -> None:
        """moby/term's table exactly: DEL is 127, one byte is itself, an empty spec is the
        default (dockerd falls back to ctrl-p,ctrl-q)."""
        assert parse_detach_keys("DEL,x,ctrl-\\,ctrl-],ctrl-^") == b"\x7fx\x1c\x1d\x1e"
        assert parse_detach_keys("") == b"\x10\x11"
        assert key_bytes("ctrl-z,ctrl-a") == b"\x1a\x01"

    def test_parse_rejects(self) -> None:
        """Anything else is dockerd's 400: names are lower case only, a key of two bytes
        (one non-ASCII character), an empty key between commas, blanks around a key."""
        with pytest.raises(InvalidParameter, match=r"Invalid detach keys \(ctrl-pp\) provided"):
            parse_detach_keys("ctrl-pp")
        for bad in ("ctrl-A", "CTRL-a", "\u00e9", "a,,b", "a,", "ctrl-p, ctrl-q", "del", "ctrl-1"):
            assert key_bytes(bad) is None, bad
            with pytest.raises(InvalidParameter, match=r"^Invalid detach keys \("):
                parse_detach_keys(bad)
        with pytest.raises(InvalidParameter, match=r"^Invalid escape keys \(x,y,\) provided$"):
            parse_detach_keys("x,y,", "escape")

    def test_scan_full_sequence(self) -> None:
        """The sequence is swallowed and reported, even split across reads."""
        s = DetachScanner(b"\x10\x11")
        assert s.feed(b"ab\x10") == (b"ab", False)
        assert s.feed(b"\x11rest") == (b"", True)

    def test_scan_partial_mismatch(self) -> None:
        """A partial match that fails passes the held bytes on unchanged."""
        s = DetachScanner(b"\x10\x11")
        assert s.feed(b"\x10x") == (b"\x10x", False)
        assert s.feed(b"\x10\x10") == (b"\x10\x10", False)


class _Sink:
    def __init__(self) -> None:
        self.out: list[tuple[int, bytes]] = []
        self.ended = False

    def output(self, stream: int, data: bytes) -> None:
        self.out.append((stream, data))

    def end(self) -> None:
        self.ended = True

    def register_producer(self, producer: object) -> None:
        self.producer = producer


class IOSessionTests:
    """Output routing of a session, without a socket."""

    def test_early_output_and_filtering(self) -> None:
        """Packets before bind are kept; unwanted streams are dropped; conmon pipe 3 is stderr."""
        io = IOSession(want_stdin=False, want_stdout=True, want_stderr=False)
        io._packet(b"\x02hello")
        io._packet(b"\x03err")
        sink = _Sink()
        io.bind(sink)
        io._packet(b"\x02more")
        assert sink.out == [(1, b"hello"), (1, b"more")]
        io._conmon_closed()
        assert sink.ended and io.done.called

    def test_detach_ends_session(self) -> None:
        """Typing the detach keys ends the session and marks it detached."""
        io = IOSession(want_stdin=True, want_stdout=True, want_stderr=True, detach_keys=b"\x10\x11")
        sink = _Sink()
        io.bind(sink)
        io.stdin(b"\x10\x11")
        assert io.detached and sink.ended


class _Replay:
    """A log of C{batches}, each read on request; records how far it was read."""

    def __init__(self, batches: list[list[tuple[int, bytes]]]) -> None:
        self.batches = batches
        self.read = 0
        self.closed = False

    async def next_batch(self) -> tuple[list[tuple[int, bytes]], bool]:
        batch = self.batches[self.read]
        self.read += 1
        return batch, self.read < len(self.batches)

    def close(self) -> None:
        self.closed = True


class ReplayTests:
    """C{attach?logs=1}: the log goes out batch by batch as the client takes it, before live
    output, and is never read ahead of a client that does not read."""

    def test_batches_wait_for_the_client(self) -> None:
        """While the client's transport is paused, no further batch is read; live output that
        arrives meanwhile follows the log; then the session goes on (C{then})."""
        io = IOSession(want_stdin=False, want_stdout=True, want_stderr=True)
        replay = _Replay([[(1, b"a")], [(2, b"b")], [(1, b"c")]])
        after: list[bool] = []
        io.replay_first(replay, lambda: after.append(True))
        sink = _Sink()
        sink.register_producer = lambda p: setattr(sink, "producer", p)  # type: ignore[method-assign]  # the test swaps the method for a scripted one
        # the client's buffer is full as soon as the first batch is written
        real_output = sink.output

        def output(stream: int, data: bytes) -> None:
            real_output(stream, data)
            sink.producer.pauseProducing()

        sink.output = output  # type: ignore[method-assign]  # the test swaps the method for a scripted one
        io.bind(sink)
        assert (sink.out, replay.read) == ([(1, b"a")], 1)
        io._packet(b"\x02live")  # live output while the log is still being sent: held
        sink.producer.resumeProducing()
        assert (sink.out, replay.read) == ([(1, b"a"), (2, b"b")], 2)
        sink.producer.resumeProducing()
        assert sink.out == [(1, b"a"), (2, b"b"), (1, b"c"), (1, b"live")]
        assert replay.closed and after == [True] and not sink.ended

    def test_client_gone_mid_replay(self) -> None:
        """The client goes while the replay waits for it: the replay stops, the log is closed."""
        io = IOSession(want_stdin=False, want_stdout=True, want_stderr=True)
        replay = _Replay([[(1, b"a")], [(1, b"b")]])
        io.replay_first(replay, io._finish)
        sink = _Sink()
        io.bind(sink)
        # the pause producer was registered; pause it as a full transport would
        assert replay.closed  # two batches, the client never paused: all sent
        assert sink.out == [(1, b"a"), (1, b"b")] and sink.ended
        io2 = IOSession(want_stdin=False, want_stdout=True, want_stderr=True)
        replay2 = _Replay([[(1, b"a")], [(1, b"b")]])
        io2.replay_first(replay2, io2._finish)
        sink2 = _Sink()
        real_register = sink2.register_producer

        def register(p: object) -> None:
            real_register(p)
            p.pauseProducing()  # type: ignore[attr-defined]  # the producer registered is the test's pausable one

        sink2.register_producer = register  # type: ignore[method-assign]  # the test swaps the method for a scripted one
        io2.bind(sink2)
        assert replay2.read == 1 and not replay2.closed
        io2.client_gone()
        assert replay2.closed and replay2.read == 1 and io2.done.called

    def test_output_ends_during_replay(self) -> None:
        """A container that starts, writes and exits while its log is still being sent (a
        pending attach with logs=1): its output follows the log, then the session ends."""
        io = IOSession(want_stdin=False, want_stdout=True, want_stderr=True)
        replay = _Replay([[(1, b"old")], [(1, b"older")]])
        io.replay_first(replay, lambda: None)
        sink = _Sink()
        real_register = sink.register_producer

        def register(p: object) -> None:
            real_register(p)
            p.pauseProducing()  # type: ignore[attr-defined]

        sink.register_producer = register  # type: ignore[method-assign]
        io.bind(sink)
        io._packet(b"\x02new")
        io._conmon_closed()
        assert not sink.ended and sink.out == [(1, b"old")]
        sink.producer.resumeProducing()  # type: ignore[attr-defined]
        assert sink.out == [(1, b"old"), (1, b"older"), (1, b"new")]
        assert sink.ended and io.done.called and replay.closed


class ExecEnvTests:
    """The exec's environment on top of the container's."""

    def test_merge(self) -> None:
        """Same-named entries are replaced, others appended, order kept."""
        assert merge_env(["A=1", "PATH=/bin"], ["PATH=/x", "B=2"]) == ["A=1", "PATH=/x", "B=2"]
