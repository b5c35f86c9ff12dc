"""Image references, parsed and normalised like dockerd's (layer: core).

C{busybox} -> C{docker.io/library/busybox:latest}; C{my/img:v1} -> C{docker.io/my/img:v1};
C{127.0.0.1:5000/img@sha256:...} keeps its registry. The store keeps normalised strings; the API
shows the familiar form (C{busybox:latest}, C{my/img:v1}, C{127.0.0.1:5000/img:latest}).
The grammar is the one of the distribution reference library (docker/distribution reference).
"""

from __future__ import annotations

import functools
import re

import attrs

from pyd.core.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

# re.ASCII: Go's \w is [0-9A-Za-z_]; Python's would admit other scripts' letters and digits.
_REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$", re.ASCII)
_ANCHORED_NAME_RE = re.compile(rf"^(?:({_DOMAIN})/)?({_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)$")
_TAG_RE = re.compile(rf"^{_TAG}$", re.ASCII)
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$", re.ASCII)
_DIGEST_RE = re.compile(rf"^{_DIGEST}$")
_HEX64_RE = re.compile(r"^[a-f0-9]{64}$")
_SHA256_RE = re.compile(r"^sha256:[a-f0-9]{64}$")

INVALID = "invalid reference format"


@attrs.frozen
class Reference:
    """A normalised reference: C{domain/path} plus an optional tag and/or digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name, e.g. C{docker.io/library/busybox}."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as users write it, e.g. C{busybox} or C{my/img}."""
        if self.domain == DEFAULT_DOMAIN:
            p = self.path
            if p.startswith(OFFICIAL_REPO_PREFIX) and p.count("/") == 1:
                return p[len(OFFICIAL_REPO_PREFIX) :]
            return p
        return self.name

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def familiar(self) -> str:
        """The familiar string (C{busybox:latest}, C{busybox@sha256:...})."""
        out = self.familiar_name
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def with_default_tag(self) -> Reference:
        """Add C{:latest} when the reference has neither tag nor digest (TagNameOnly)."""
        if self.tag is None and self.digest is None:
            return attrs.evolve(self, tag=DEFAULT_TAG)
        return self

    def name_only(self) -> Reference:
        """The repository alone."""
        return Reference(self.domain, self.path)


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    if i == -1 or (
        not any(c in name[:i] for c in ".:")
        and name[:i] != "localhost"
        and name[:i].lower() == name[:i]
    ):
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain, rest = name[:i], name[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = OFFICIAL_REPO_PREFIX + rest
    return domain, rest


def parse_normalized(ref: str) -> Reference:
    """Parse a reference as users type it (ParseNormalizedNamed); no default tag added.

    @raise InvalidParameter: dockerd's messages for malformed references.
    """
    if _HEX64_RE.match(ref):
        raise InvalidParameter(
            f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_domain(ref)
    tag_sep = remainder.find(":")
    remote = remainder[:tag_sep] if tag_sep > -1 else remainder
    at = remote.find("@")
    if at > -1:
        remote = remote[:at]
    if remote.lower() != remote:
        raise InvalidParameter(
            f"invalid reference format: repository name ({remote}) must be lowercase"
        )
    m = _REFERENCE_RE.match(f"{domain}/{remainder}")
    if not m:
        raise InvalidParameter(INVALID)
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidParameter(
            "invalid reference format: repository name must not be more than 255 characters"
        )
    nm = _ANCHORED_NAME_RE.match(name)
    if not nm:
        raise InvalidParameter(INVALID)
    if digest is not None and not digest.startswith("sha256:"):
        raise InvalidParameter("invalid reference format: unsupported digest algorithm")
    if digest is not None and not _SHA256_RE.match(digest):
        raise InvalidParameter("invalid reference format: invalid checksum digest length")
    return Reference(nm.group(1) or domain, nm.group(2), tag, digest)


def parse_with_tag(ref: str) -> Reference:
    """Parse and add C{:latest} when there is neither tag nor digest."""
    return parse_normalized(ref).with_default_tag()


def parse_repository(repo: str, tag: str | None) -> Reference:
    """A C{repo} + C{tag} pair as the tag/commit/import endpoints receive them.

    @raise InvalidParameter: bad repository or tag.
    """
    r = parse_normalized(repo)
    if r.tag is not None or r.digest is not None:
        if tag:
            raise InvalidParameter(INVALID)
        return r
    if tag:
        if _DIGEST_RE.match(tag):
            return attrs.evolve(r, digest=tag)
        if not _TAG_RE.match(tag):
            raise InvalidParameter("invalid tag format")
        return attrs.evolve(r, tag=tag)
    return r.with_default_tag()


def is_digest(value: str) -> bool:
    """Whether C{value} is a C{sha256:<64hex>} digest."""
    return bool(_SHA256_RE.match(value))


def valid_domain(host: str) -> bool:
    """Whether C{host} is a registry host as a reference names it (C{name[:port]},
    C{[v6]:port}): ASCII letters, digits, dots and dashes."""
    return bool(_DOMAIN_RE.match(host))


def valid_tag(tag: str) -> bool:
    """Whether C{tag} is a valid tag."""
    return bool(_TAG_RE.match(tag))


@functools.lru_cache(maxsize=4096)
def familiar(normalized: str) -> str:
    """The familiar form of a stored, normalised reference string (remembered: every image
    listing turns each stored reference into it again, ~30 % of a C{docker images})."""
    try:
        return parse_normalized(normalized).familiar()
    except InvalidParameter:
        return normalized
