"""Go and containerd parsers the conformance suite found pyd needed: their texts."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import InvalidParameter
from pyd.engine.spec.gojson import go_syntax_error
from pyd.engine.spec.rules import format_platform, parse_platform


def _syntax(raw: str) -> str:
    try:
        json.loads(raw)
    except ValueError as e:
        return go_syntax_error(raw, e)
    raise AssertionError(f"{raw!r} parsed")


class PlatformTests(SynchronousTestCase):
    """containerd's platforms.Parse and Format."""

    def test_components_and_aliases(self) -> None:
        """An OS alone takes the host's architecture, an architecture alone linux; aliases are
        normalised (arm64/v8 has no variant, arm defaults to v7)."""
        self.assertEqual(parse_platform("linux"), ("linux", "amd64", ""))
        self.assertEqual(parse_platform("aarch64"), ("linux", "arm64", ""))
        self.assertEqual(parse_platform("linux/x86_64"), ("linux", "amd64", ""))
        self.assertEqual(parse_platform("linux/arm64/v8"), ("linux", "arm64", ""))
        self.assertEqual(parse_platform("linux/arm"), ("linux", "arm", "v7"))
        self.assertEqual(format_platform("linux", "arm", "v7"), "linux/arm/v7")

    def test_refused(self) -> None:
        """What does not parse is containerd's invalid argument."""
        with self.assertRaises(InvalidParameter) as cm:
            parse_platform("nope")
        self.assertEqual(
            cm.exception.message,
            '"nope": unknown operating system or architecture: invalid argument',
        )
        self.assertRaises(InvalidParameter, parse_platform, "linux//amd64")


class SyntaxErrorTests(SynchronousTestCase):
    """Go's encoding/json syntax error texts for the common cases."""

    def test_texts(self) -> None:
        """Each decoder state has its wording; a truncated input is the end of input."""
        self.assertEqual(_syntax("x"), "invalid character 'x' looking for beginning of value")
        self.assertEqual(
            _syntax("{nope"), "invalid character 'n' looking for beginning of object key string"
        )
        self.assertEqual(_syntax('{"a" 1}'), "invalid character '1' after object key")
        self.assertEqual(_syntax('{"a":1 2}'), "invalid character '2' after object key:value pair")
        self.assertEqual(_syntax("[1 2]"), "invalid character '2' after array element")
        self.assertEqual(_syntax("1 2"), "invalid character '2' after top-level value")
        self.assertEqual(_syntax('{"a":'), "unexpected end of JSON input")
