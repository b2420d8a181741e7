"""What text the gateway can store, send as a header value, or take as a request path.

Clients can put anything in a header, a query string, a JSON string or a path: a lone UTF-16
surrogate (JSON `"\\ud800"`, or a header byte that is not UTF-8), NUL, CR/LF, percent-encoded
dot segments. Neither database stores all of that (PostgreSQL refuses NUL and any driver
refuses surrogates), a header value with CR/LF cannot be sent, and a path that a proxy or an
upstream may read two ways must not be matched one way and forwarded another. These rules are
checked at the edges: the admin API refuses such values (400 naming the field), the proxy
refuses such paths, and what a proxied call must record regardless of its headers is stored
escaped (`storable`).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes

MAX_INT64 = 2**63 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PCHAR_SAFE = "!$&'()*+,;=:@-._~"  # RFC 3986 pchar besides unreserved letters and digits
# A path made only of these, with no dot segment, decodes to itself: nothing to check.
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9_\-~!$&'()*+,;=:@]+(?:\.+[A-Za-z0-9_\-~!$&'()*+,;=:@]+)*)+")


class PathRefused(ValueError):
    """The request path can be read in more than one way; the message says why."""


def is_storable(text: str) -> bool:
    """True when every database can store `text` as is: valid UTF-8 and no NUL."""
    if text.isascii():
        return "\x00" not in text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def storable(text: str) -> str:
    """`text` unchanged when storable, else with surrogates and NUL written as escapes
    (`\\udcff`, `\\x00`), so a value that must be recorded is kept recognisable."""
    if is_storable(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def has_control_chars(text: str) -> bool:
    """CR, LF, NUL and the other C0 controls (and DEL): never valid in a header value."""
    return bool(_CONTROL.search(text))


def clamp_int64(value: int) -> int:
    return max(-MAX_INT64 - 1, min(value, MAX_INT64))


def canonical_path(raw: str) -> str:
    """The decoded path of a request target as received (`raw`, percent-encoded, no query).

    Refused (PathRefused) rather than guessed at: dot segments (`..`, `%2e%2e`), encoded
    separators (`%2f`, `%5c`) and `?`, `#`, backslashes or control characters inside a segment,
    empty segments, malformed percent-encoding and bytes that are not UTF-8. What is matched is
    this decoded path; what is forwarded is `encode_path` of it, so the two cannot disagree.
    """
    if not raw.startswith("/"):
        raise PathRefused("the path must start with /")
    if raw == "/" or _PLAIN_PATH.fullmatch(raw):
        return raw
    segments = raw.split("/")[1:]
    decoded: list[str] = []
    for i, segment in enumerate(segments):
        if not segment:
            if i == len(segments) - 1 and i > 0:  # a trailing slash: kept, it matches no route
                decoded.append("")
                continue
            raise PathRefused("empty path segments are not allowed")
        lowered = segment.lower()
        if "%2f" in lowered or "%5c" in lowered:
            raise PathRefused("encoded slashes are not allowed in a path")
        if "%" in segment and not re.fullmatch(r"(?:[^%]|%[0-9A-Fa-f]{2})*", segment):
            raise PathRefused("malformed percent-encoding in the path")
        try:
            text = unquote_to_bytes(segment).decode("utf-8")
        except UnicodeDecodeError:
            raise PathRefused("the path is not valid UTF-8") from None
        if text in (".", ".."):
            raise PathRefused("dot segments are not allowed in a path")
        if has_control_chars(text) or any(c in text for c in "?#\\"):
            raise PathRefused("the path contains ?, #, a backslash or a control character")
        decoded.append(text)
    return "/" + "/".join(decoded)


def encode_path(path: str) -> str:
    """Percent-encode a path decoded by `canonical_path`, segment by segment."""
    if _PLAIN_PATH.fullmatch(path):
        return path
    return "/".join(quote(segment, safe=_PCHAR_SAFE) for segment in path.split("/"))
