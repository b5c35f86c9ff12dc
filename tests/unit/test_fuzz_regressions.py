"""What the API fuzz suite (tests/component/test_fuzz_api.py) found, one test per class of bug:
each input was a 500 (an exception past the engine's door) or read wrongly, and is now the 400
dockerd's rules give."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pyd.api.wire import qint
from pyd.core.errors import InvalidParameter
from pyd.core.reference import parse_normalized, valid_domain
from pyd.engine.distribution.search import IndexOps, _login_host
from pyd.engine.spec.rules import parse_signal
from tests.helpers.sync import run_sync


class _Request:
    def __init__(self, **args: str) -> None:
        self.args = {k.encode(): [v.encode()] for k, v in args.items()}


class NonAsciiDigitTests(SynchronousTestCase):
    """C{str.isdigit()} admits superscripts and other scripts' digits; Go's parsers do not."""

    def test_signal(self) -> None:
        """C{stop?signal=¹} (and kill, restart) is dockerd's 400 C{Invalid signal}, not a 500
        from C{int('¹')}; real-time signal offsets are checked as moby's map has them."""
        for bad in ("¹", "\u0661", "SIGRTMIN+¹", "SIGRTMIN+x", "RTMIN+16", "RTMAX-15", "RTMIN+"):
            with self.assertRaises(InvalidParameter, msg=bad) as cm:
                parse_signal(bad)
            self.assertEqual(str(cm.exception), f"Invalid signal: {bad}")
        self.assertEqual(parse_signal("9"), 9)
        self.assertEqual(parse_signal("RTMIN+1") - parse_signal("RTMIN"), 1)
        self.assertEqual(parse_signal("SIGRTMAX-14") + 14, parse_signal("SIGRTMAX"))

    def test_query_integers(self) -> None:
        """An integer query parameter is read as Go's C{strconv.Atoi} reads it: C{¹}, Arabic
        digits (which Python's int() reads as 12), C{1_0} and out-of-int64 values are 400s
        with Go's texts."""
        cases: dict[str, str] = {
            "¹": 'strconv.Atoi: parsing "¹": invalid syntax',
            "١٢": 'strconv.Atoi: parsing "١٢": invalid syntax',
            "1_0": 'strconv.Atoi: parsing "1_0": invalid syntax',
            " 1": 'strconv.Atoi: parsing " 1": invalid syntax',
            "9" * 20: f'strconv.Atoi: parsing "{"9" * 20}": value out of range',
        }
        for raw, text in cases.items():
            with self.assertRaises(InvalidParameter, msg=raw) as cm:
                qint(_Request(t=raw), "t")  # type: ignore[arg-type]
            self.assertEqual(str(cm.exception), text)
        req: Any = _Request(t="-5")
        self.assertEqual(qint(req, "t"), -5)
        self.assertEqual(qint(_Request(t="+7"), "t"), 7)  # type: ignore[arg-type]

    def test_reference_tag(self) -> None:
        """A tag of another script's letters or digits is an invalid reference (Go's C{\\w} is
        ASCII), not a name that later fails to become a URL."""
        for bad in ("busybox:١٢", "busybox:é", "busybox:tag\u0660"):
            with self.assertRaises(InvalidParameter, msg=bad):
                parse_normalized(bad)
        self.assertEqual(parse_normalized("busybox:v1_2").path, "library/busybox")


class RegistryHostTests(SynchronousTestCase):
    """A login's server address names a host before anything is sent."""

    def test_login_host(self) -> None:
        """C{POST /auth} with a server address that is no host name (other scripts' digits,
        spaces) is a 400 C{unable to parse server address}, not a 500 from the URL encoder."""
        for bad in ("١٢", "a b", "exa mple.com/x", "https://\u202e/", "host:port"):
            with self.assertRaises(InvalidParameter, msg=bad) as cm:
                _login_host(bad)
            self.assertTrue(str(cm.exception).startswith("unable to parse server address"))
        self.assertEqual(_login_host("https://r.example:5000/v2/"), "r.example:5000")
        self.assertEqual(_login_host(""), "docker.io")
        self.assertTrue(valid_domain("[::1]:5000"))

    def test_search_index(self) -> None:
        """C{GET /images/search?term=../..} (an index name no host has) is a 400 before
        anything is sent, not a 500 from the URL encoder; dockerd's hyphen rule stays."""
        ops = IndexOps.__new__(IndexOps)
        for term, text in (
            ("../..", "invalid index name (..)"),
            ("١٢.x/busybox", "invalid index name (١٢.x)"),
            ("-a.io/x", "invalid index name (-a.io). Cannot begin or end with a hyphen"),
        ):
            e = self.assertRaises(InvalidParameter, run_sync, ops._index_client(term, None))
            self.assertEqual(str(e), text)
