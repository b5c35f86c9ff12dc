"""Domain errors (layer: core).

Every layer raises these; L{pyd.api.errors} maps each class to one HTTP status. Messages carry
dockerd's exact text because the CLI prints them verbatim.
"""

from __future__ import annotations


class PydError(Exception):
    """Base class of the errors a client may see."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(PydError):
    """The named object does not exist (404)."""


class InvalidParameter(PydError):
    """The request is malformed or a value is out of range (400)."""


class Conflict(PydError):
    """The request conflicts with the current state: name in use, object in use (409)."""


class NotModified(PydError):
    """Nothing to do: already started, already stopped (304, no body)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)


class Unauthorized(PydError):
    """Credentials were refused, e.g. by a registry during login (401)."""


class Forbidden(PydError):
    """The caller's role does not allow the request (403)."""


class Unavailable(PydError):
    """A backing service cannot be reached right now (503)."""


class Unsupported(PydError):
    """pyd does not implement this (501)."""


class SystemError_(PydError):
    """An operation failed in the kernel or a helper for a reason we can describe (500)."""


def no_such_container(ref: str) -> NotFound:
    """dockerd's message for an unknown container reference."""
    return NotFound(f"No such container: {ref}")


def no_such_image(ref: str) -> NotFound:
    """dockerd's message for an unknown image reference."""
    return NotFound(f"No such image: {ref}")
