"""The one failure -> API error mapping (issue 18: messages name no internals)."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from pyd.api.errors import INTERNAL_ERROR, public_message, write_error
from pyd.core import errors


class ErrorMappingTests(SynchronousTestCase):
    """Domain errors keep their text and status; anything else is a plain 500."""

    def test_unclassified_is_plain(self) -> None:
        """A Python exception (with errno text and a data-root path in it) becomes a 500 whose
        message names neither the class nor the text."""
        for exc in (
            TypeError("unhashable type: 'list'"),
            FileNotFoundError(2, "No such file or directory", "/var/lib/pyd/containers/x"),
            KeyError("linkname 'tmp/x'"),
            OSError(40, "Too many levels of symbolic links"),
        ):
            req = DummyRequest([b""])
            body = json.loads(write_error(req, exc))
            self.assertEqual(req.responseCode, 500)
            self.assertEqual(body, {"message": INTERNAL_ERROR})
            for leak in (type(exc).__name__, "Errno", "/var/lib", "No such file", "linkname"):
                self.assertNotIn(leak, body["message"])

    def test_error_has_its_length(self) -> None:
        """An error is a whole answer with Content-Length, never chunked (docker-py raises
        APIError for a failed build only on such an answer)."""
        req = DummyRequest([b""])
        body = write_error(req, errors.InvalidParameter("Cannot locate specified Dockerfile"))
        self.assertEqual(req.responseHeaders.getRawHeaders(b"content-length"), [b"%d" % len(body)])

    def test_domain_errors_keep_text_and_status(self) -> None:
        """dockerd's texts and statuses pass through unchanged."""
        cases = [
            (errors.NotFound("No such container: x"), 404),
            (errors.InvalidParameter("bad"), 400),
            (errors.Conflict("in use"), 409),
        ]
        for exc, code in cases:
            req = DummyRequest([b""])
            body = json.loads(write_error(req, exc))
            self.assertEqual((req.responseCode, body["message"]), (code, exc.message))
            self.assertEqual(public_message(exc), exc.message)
