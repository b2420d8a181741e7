"""The built-in engine: one table row per way of finding an entity in text.

Each row has a gate, a pattern and usually a validator (validators.py). The gate is an RE2 pattern
for something every match needs nearby: the entity's rough shape or a keyword ("ssn", "cvv").
RE2 scans 4 KB in microseconds, while Python's `re` costs tens of nanoseconds per character per
pattern, so the precise Python pattern (look-arounds, back-references) runs only on windows
around the gate's matches; a window ends on whitespace, or spans a run of digits and separators,
so that it never cuts a candidate in two (a test checks window scans equal whole-text scans). Every
open-ended run in a pattern is anchored by a look-behind or bounded, so nothing backtracks badly.

Keyword rows check that the keyword stands within `window` characters before the match: a bare
nine-digit number is an SSN only after "SSN". Digit candidates are maximal runs of groups
("4111 1111 1111 1111 123"); when a run fails, runs of its groups are tried, so a neighbouring
number does not hide a card or a phone number.

Rows are in priority order: when two entities cover exactly the same span, the earlier row names
it (a Slack webhook is an `api_key` before it is a `url`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import re2
from stdnum.ca import sin
from stdnum.gb import nhs
from stdnum.in_ import aadhaar, pan
from stdnum.us import rtn

from bricksllm.domain.pii import validators as v
from bricksllm.domain.pii.validators import DIGIT_RUN, Validator

_SPACE = re.compile(r"[ \t\n\r\f\v]")


def _gate(source: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    return re2.compile(source, options)


@dataclass(frozen=True, slots=True)
class Detector:
    entity: str
    pattern: re.Pattern[str]
    gate: Any  # RE2 pattern every match needs nearby: a keyword or the entity's rough shape
    reach: int = 0  # a match may start up to this many chars after the gate's match ends
    group: int = 0  # the part of the match that is the entity (keywords stay readable)
    context: re.Pattern[str] | None = None  # must match within `window` chars before the span
    window: int = 48
    validate: Validator | None = None
    groups: tuple[int, int] | None = None  # on failure, try runs of separated digit groups
    trim: Callable[[str, int, int], int] | None = None  # a new end for the span (URL punctuation)
    run: frozenset[str] = frozenset()  # chars a candidate spans across spaces (digits, separators)
    shortest: int = 0  # candidates shorter than this are skipped before any validation

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        """The spans of this entity in `text`. Python's `re` costs tens of nanoseconds per
        character, so it runs only on windows around the gate's matches (RE2 scans a 4 KB
        text in microseconds); windows end on whitespace, so a window's edge never cuts a
        token that a look-around must see whole."""
        for lo, hi in self._windows(text):
            yield from self.scan(text, lo, hi)

    def scan(self, text: str, lo: int = 0, hi: int | None = None) -> Iterator[tuple[int, int]]:
        """The spans whose match lies in text[lo:hi] (the whole text by default)."""
        for match in self.pattern.finditer(text, lo, len(text) if hi is None else hi):
            start, end = match.span(self.group)
            if end - start < self.shortest:
                continue
            if self.trim is not None:
                end = self.trim(text, start, end)
            if self.context is not None and not self.context.search(text, max(0, start - self.window), start):
                continue
            if self.validate is None or self.validate(text[start:end]):
                yield start, end
            elif self.groups is not None:
                yield from _group_runs(text, start, end, self.validate, *self.groups)

    def _windows(self, text: str) -> list[tuple[int, int]]:
        windows: list[tuple[int, int]] = []
        for count, match in enumerate(self.gate.finditer(text)):
            lo = _token_start(text, _run_start(text, match.start(), self.run))
            if count == _MAX_WINDOWS:  # RE2's Python binding costs microseconds per match:
                windows.append((lo, len(text)))  # past a few, one `re` pass over the rest is cheaper
                return _merged(windows)
            hi = _token_end(text, _run_end(text, match.end() + self.reach, self.run))
            windows.append((lo, hi))
        return _merged(windows)


_MAX_WINDOWS = 3
_MAX_GROUPS = 6  # cards and phone numbers are printed in at most five or six groups


def _merged(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in windows:
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _run_start(text: str, i: int, run: frozenset[str]) -> int:
    while i > 0 and text[i - 1] in run:
        i -= 1
    return i


def _run_end(text: str, i: int, run: frozenset[str]) -> int:
    n = len(text)
    while i < n and text[i] in run:
        i += 1
    return min(i, n)


def _token_start(text: str, i: int) -> int:
    """The start of the token at i: after the last space, newline or tab in the 1 KB before it
    (a window may always start earlier than needed), else the start of the text."""
    lo = max(0, i - 1024)
    found = max(text.rfind(" ", lo, i), text.rfind("\n", lo, i), text.rfind("\t", lo, i))
    return found + 1 if found >= 0 else 0


def _token_end(text: str, i: int) -> int:
    if i >= len(text):
        return len(text)
    found = _SPACE.search(text, i)
    return found.start() if found else len(text)


def _group_runs(
    text: str, start: int, end: int, ok: Validator, lo: int, hi: int
) -> Iterator[tuple[int, int]]:
    """Runs of consecutive digit groups in text[start:end] with lo..hi digits that `ok` accepts,
    left to right, the longest at each start, not overlapping (groups are the digit runs
    between separators)."""
    groups = [m.span() for m in DIGIT_RUN.finditer(text, start, end)]
    n = len(groups)
    sizes = [e - s for s, e in groups]
    if n < 2 or sum(sizes) < lo:
        return
    i = 0
    while i < n:
        found = -1
        digits = 0
        first = start if i == 0 else groups[i][0]
        for j in range(i, min(n, i + _MAX_GROUPS)):
            digits += sizes[j]
            if digits > hi:
                break
            if digits >= lo and (i or j != n - 1) and ok(text[first : groups[j][1]]):
                found = j
        if found >= 0:
            yield first, groups[found][1]
            i = found + 1
        else:
            i += 1


# URLs often end a sentence: "see https://example.com/a." -> without the final "."
_URL_TAIL = ".,;:!?)]}'\""


def trim_url(text: str, start: int, end: int) -> int:
    """The end of a URL without trailing sentence punctuation (a ")" stays when it closes a "(")."""
    while end > start and text[end - 1] in _URL_TAIL:
        if text[end - 1] == ")" and text.count("(", start, end) >= text.count(")", start, end):
            break
        end -= 1
    return end


# --- patterns -----------------------------------------------------------------------------------
# Python patterns are ASCII-only, like RE2's classes, so a gate never misses what its pattern finds.
# Where it matters, a pattern starts with a character class and checks the character before it
# with a two-character look-behind (`\d(?<![\w.]\d)` rather than `(?<![\w.])\d`): `re` then skips
# to the next candidate character in C instead of trying the whole pattern at every position,
# which halves a pass over 4 KB.


def _re(source: str) -> re.Pattern[str]:
    return re.compile(source, re.ASCII)


def _words(words: str) -> tuple[Any, re.Pattern[str]]:
    """A keyword as an RE2 gate and as the Python context check."""
    source = rf"(?i)\b(?:{words})\b"
    return _gate(source), _re(source)


_SSN_GATE, _SSN_WORDS = _words(r"ssns?|social\s+security(?:\s+(?:number|no|#))?")
_ITIN_GATE, _ITIN_WORDS = _words(r"itin|individual\s+taxpayer|taxpayer\s+identification")
_ROUTING_GATE, _ROUTING_WORDS = _words(r"routing|aba|rtn|transit(?:\s+number)?")
_NHS_GATE, _NHS_WORDS = _words(r"nhs|national\s+health\s+service")
_AADHAAR_GATE, _AADHAAR_WORDS = _words(r"aadhaar|aadhar|uidai|uid")
_SIN_GATE, _SIN_WORDS = _words(r"sin|social\s+insurance(?:\s+number)?")
_SWIFT_GATE, _SWIFT_WORDS = _words(r"swift|bic")
_AWS_SECRET_SOURCE = r"(?i)(?:secret[ _\-]?(?:access[ _\-]?)?key|aws[ _\-]?secret)"
_AWS_SECRET_GATE, _AWS_SECRET_WORDS = _gate(_AWS_SECRET_SOURCE), _re(_AWS_SECRET_SOURCE)

_DIGITS_RUN = frozenset("0123456789 -")
_PHONE_RUN = frozenset("0123456789 .-()+")
_IBAN_RUN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ")
_REACH = 72  # a keyword's match starts at most `window` (48) chars after it, and is short

_NINE = _re(r"(?<![\w\-])\d{9}(?![\w\-])")
_TEN = _re(r"(?<![\w\-])\d{10}(?![\w\-])")
_SPACED_334 = _re(r"(?<![\w\-])\d{3}([ \-])\d{3}\1\d{4}(?![\w\-])")
_SPACED_333 = _re(r"(?<![\w\-])\d{3}([ \-])\d{3}\1\d{3}(?![\w\-])")
_SPACED_444 = _re(r"(?<![\w\-])\d{4}([ \-]?)\d{4}\1\d{4}(?![\w\-])")
_SPACED_324 = _re(r"(?<![\w\-])\d{3}([ \-])\d{2}\1\d{4}(?![\w\-])")

_BIC = _re(r"(?<![A-Za-z0-9])[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?(?![A-Za-z0-9])")
_HEX = "[0-9A-Fa-f]"


def _keyed(
    entity: str, pattern: re.Pattern[str], gate: Any, words: re.Pattern[str], check: Validator
) -> Detector:
    return Detector(entity, pattern, gate, reach=_REACH, context=words, validate=check)


DETECTORS: tuple[Detector, ...] = (
    Detector(
        "api_key",
        _re(
            r"(?<![\w\-])(?:sk-[A-Za-z0-9_\-]{20,300}|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_\w{22,255}"
            r"|xox[abposer]-[A-Za-z0-9\-]{10,250}|xapp-\d-[A-Za-z0-9\-]{10,250})(?![\w\-])"
        ),
        _gate(r"sk-[A-Za-z0-9_\-]{20}|gh[pousr]_[A-Za-z0-9]{36}|github_pat_|xox[abposer]-|xapp-\d-"),
        validate=v.mixed_token,
    ),
    Detector(
        "api_key",
        _re(r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/\-]{20,300}"),
        _gate(r"hooks\.slack\.com/"),
    ),
    Detector(
        "aws_access_key",
        _re(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        _gate(r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}"),
    ),
    Detector(
        "aws_secret_key",
        _re(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"),
        _AWS_SECRET_GATE,
        reach=_REACH,
        context=_AWS_SECRET_WORDS,
        validate=v.aws_secret,
    ),
    Detector(
        "email",
        _re(
            r"(?<![\w.%+\-])[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-])"
        ),
        _gate(r"[A-Za-z0-9_%+\-]@[A-Za-z0-9]"),
    ),
    Detector(
        "credit_debit_number",
        _re(r"\d(?<![\d\-.]\d)\d*(?:[ \-]\d+)*"),
        _gate(r"\d(?:[ \-]?\d){12}"),
        validate=v.card,
        groups=(13, 19),
        shortest=13,
        run=_DIGITS_RUN,
    ),
    Detector(
        "credit_debit_cvv",
        _re(
            r"(?i)\b(?:cvv2?|cvc2?|cvn|cid|csc|security\s+code|card\s+verification(?:\s+(?:code|value|number))?)"
            r"\b[^\w\n]{0,3}(?:(?:is|was|of|number|code|no)\b[^\w\n]{0,3}){0,2}(\d{3,4})(?!\d)"
        ),
        _gate(r"(?i)\b(?:cvv2?|cvc2?|cvn|cid|csc|security\s+code|card\s+verification)\b"),
        reach=_REACH,
        group=1,
    ),
    Detector(
        "credit_debit_expiry",
        _re(
            r"(?i)\b(?:exp(?:\.|iry|iration|ires|iring)?(?:\s+date)?|valid\s+(?:thru|through|until|till)"
            r"|good\s+(?:thru|through))(?:\b|(?<=\.))[^\w\n]{0,3}(?:(?:is|on|date|end)\b[^\w\n]{0,3}){0,2}"
            r"((?:0?[1-9]|1[0-2])\s?[/\-]\s?(?:20)?\d{2})(?![\d/])"
        ),
        _gate(
            r"(?i)\b(?:exp|expiry|expiration|expires|expiring|valid\s+(?:thru|through|until|till)"
            r"|good\s+(?:thru|through))\b"
        ),
        reach=_REACH,
        group=1,
    ),
    Detector("ssn", _SPACED_324, _gate(r"\d{3}[ \-]\d{2}[ \-]\d{4}"), validate=v.us_ssn),
    _keyed("ssn", _NINE, _SSN_GATE, _SSN_WORDS, v.us_ssn),
    Detector(
        "us_individual_tax_identification_number",
        _re(r"(?<![\w\-])9\d{2}([ \-])\d{2}\1\d{4}(?![\w\-])"),
        _gate(r"9\d{2}[ \-]\d{2}[ \-]\d{4}"),
        validate=v.us_itin,
    ),
    _keyed("us_individual_tax_identification_number", _NINE, _ITIN_GATE, _ITIN_WORDS, v.us_itin),
    Detector(
        "international_bank_account_number",
        _re(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])"),
        _gate(r"[A-Z]{2}\d{2} ?[A-Z0-9]{4}"),
        validate=v.iban_number,
        run=_IBAN_RUN,
    ),
    Detector("swift_code", _BIC, _gate(r"[A-Z]{6}[A-Z0-9]{2}"), validate=v.bic_with_digit),
    _keyed("swift_code", _BIC, _SWIFT_GATE, _SWIFT_WORDS, v.bic_code),
    _keyed("bank_routing", _NINE, _ROUTING_GATE, _ROUTING_WORDS, v.checksum(rtn)),
    Detector(
        "uk_national_insurance_number",
        _re(
            r"(?<![A-Za-z0-9])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
            r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])"
        ),
        _gate(r"[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]"),
    ),
    _keyed("uk_national_health_service_number", _SPACED_334, _NHS_GATE, _NHS_WORDS, v.checksum(nhs)),
    _keyed("uk_national_health_service_number", _TEN, _NHS_GATE, _NHS_WORDS, v.checksum(nhs)),
    _keyed("in_aadhaar", _SPACED_444, _AADHAAR_GATE, _AADHAAR_WORDS, v.checksum(aadhaar)),
    Detector(
        "in_permanent_account_number",
        _re(r"(?<![A-Za-z0-9])[A-Z]{3}[ABCFGHJLPT][A-Z]\d{4}[A-Z](?![A-Za-z0-9])"),
        _gate(r"[A-Z]{5}\d{4}[A-Z]"),
        validate=v.checksum(pan),
    ),
    _keyed("ca_social_insurance_number", _SPACED_333, _SIN_GATE, _SIN_WORDS, v.checksum(sin)),
    _keyed("ca_social_insurance_number", _NINE, _SIN_GATE, _SIN_WORDS, v.checksum(sin)),
    Detector(
        "password",
        _re(r"(?i)\b(?:password|passwd|pwd|passcode|passphrase)\s*[:=]\s*[\"'`]?([^\s\"'`]{3,128})"),
        _gate(r"(?i)pass(?:word|wd|code|phrase)|pwd"),
        reach=_REACH,
        group=1,
    ),
    Detector(
        "password",
        _re(r"(?i)\b(?:password|passwd|passcode|passphrase)\s+(?:is|was)\s+[\"'`]?([^\s\"'`]{4,128})"),
        _gate(r"(?i)pass(?:word|wd|code|phrase)"),
        reach=_REACH,
        group=1,
        validate=v.symbolic,
    ),
    Detector(
        "pin",
        _re(r"(?i)\bpin\b(?:\s*(?:code|number|no\.?|#))?\s*(?:[:=]|\bis\b|\bwas\b)?\s*(\d{4,8})(?!\d)"),
        _gate(r"(?i)\bpin\b"),
        reach=_REACH,
        group=1,
    ),
    Detector(
        "mac_address",
        _re(
            rf"(?<![\w:\-.])(?:{_HEX}{{2}}([:\-]){_HEX}{{2}}(?:\1{_HEX}{{2}}){{4}}"
            rf"|{_HEX}{{4}}\.{_HEX}{{4}}\.{_HEX}{{4}})(?![\w:\-]|\.\w)"
        ),
        _gate(rf"{_HEX}{{2}}[:\-]{_HEX}{{2}}[:\-]{_HEX}{{2}}|{_HEX}{{4}}\.{_HEX}{{4}}\.{_HEX}{{4}}"),
    ),
    Detector(
        "ip_address",
        _re(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)"),
        _gate(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"),
        validate=v.ipv4,
    ),
    Detector(
        "ip_address",
        _re(
            rf"(?<![\w:.])(?:{_HEX}{{0,4}}:){{2,7}}(?:{_HEX}{{1,4}}|(?:\d{{1,3}}\.){{3}}\d{{1,3}})?(?![\w:])"
        ),
        _gate(rf"{_HEX}{{0,4}}:{_HEX}{{0,4}}:"),
        validate=v.ipv6,
    ),
    Detector(
        "phone",
        _re(
            r"[+(\d](?<![\w+.\-/:][+(\d])(?:(?<=\+) ?(?:\(\d{1,4}\) ?)?\d|(?<=\()\d{1,4}\) ?\d|(?<=\d))"
            r"\d*(?:[ .\-]\d+)*"
        ),
        _gate(r"\d{3}\)?[ .\-]?\d{3}[ .\-]?\d{4}|\d{3} ?\d{7}|\+ ?\d"),
        validate=v.phone,
        groups=(8, 15),
        shortest=8,
        run=_PHONE_RUN,
    ),
    Detector(
        "url",
        _re(
            r"[hHfFwW](?<!\w[hHfFwW])(?:(?<=[hH])[tT][tT][pP][sS]?://|(?<=[fF])[tT][pP][sS]?://"
            r"|(?<=[wW])(?:[sS][sS]?://|[wW][wW]\.))[^\s<>\"'`{}|\\^\[\]]+"
        ),
        _gate(r"(?i)(?:https?|ftps?|wss?)://|www\."),
        validate=v.url,
        trim=trim_url,
    ),
)
