"""What a client must never read in an error message: a Python exception class name, errno text
in Python's form, a traceback, a host path (the daemon's data root, exec root, a temporary
directory). Shared by the API fuzz suite and the hostile-input message audit."""

from __future__ import annotations

import re
import tempfile

# What a client must never read in an error message.
LEAKS = [
    re.compile(p)
    for p in (
        r"\b[A-Z][A-Za-z]*(Error|Exception)\b(?!:? response)",
        r"\bErrno\b",
        r"Traceback",
        r"Error -?\d+ while",  # zlib's own text
        r"No such file or directory",
        r"Permission denied",
        r"Too many levels of symbolic links",
        r"Not a directory",
        r"Is a directory",
        r"File exists",
        r"Directory not empty",
        r"Invalid argument",
        r"Operation not permitted",
        r"NoneType",
        r"object has no attribute",
        r"not supported between instances",
        r"unhashable type",
        r"object is not (iterable|subscriptable|callable)",
        r"positional argument",
        r"invalid literal for int\(\)",
        r"index out of range",
        r"<(class|object|bound method|function) ",
        r"internal error",
        re.escape(tempfile.gettempdir().rstrip("/") + "/"),
        r"/var/lib/pyd",
        r"/run/pyd",
        r"sqlite",
        r"sqlalchemy",
    )
]


def leaks(message: str, host_paths: list[str]) -> list[str]:
    """The internals C{message} shows."""
    found = [p.pattern for p in LEAKS if p.search(message)]
    found += [p for p in host_paths if p in message]
    return found
