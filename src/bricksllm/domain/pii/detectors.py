"""The built-in engine: one table row per way of finding an entity in text.

Each row is a candidate pattern (Python `re`, written so that it cannot backtrack badly: every
open-ended run is anchored by a look-behind, so a long run is tried from its start only), an
optional cheap gate that skips the row when the text cannot contain a match, an optional keyword
that must appear just before the match, and an optional validator that turns a look-alike into a
finding: Luhn for cards, mod-97 for IBANs, the SSA's rules for SSNs, libphonenumber's metadata for
phone numbers, ISO country codes for BICs. Validators come from well-kept libraries
(`python-stdnum`, `phonenumbers`, `ipaddress`) rather than being rewritten here.

When a candidate fails its validator and is made of separated groups of digits ("4111 1111 1111
1111 123"), runs of its groups are tried too, longest first, so that a neighbouring number does
not hide a card or a phone number.

Rows are in priority order: when two entities cover exactly the same span, the earlier row names
it (a Slack webhook is an `api_key` before it is a `url`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import phonenumbers
from stdnum import bic, iban, luhn
from stdnum.ca import sin
from stdnum.gb import nhs
from stdnum.in_ import aadhaar, pan
from stdnum.us import itin, rtn, ssn

Validator = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Detector:
    entity: str
    pattern: re.Pattern[str]
    group: int = 0  # the part of the match that is the entity (keywords stay readable)
    gate: str | re.Pattern[str] | None = None  # substring or pattern the text must contain
    context: re.Pattern[str] | None = None  # must match within `window` chars before the span
    window: int = 48
    validate: Validator | None = None
    groups: tuple[int, int] | None = None  # on failure, try runs of separated digit groups
    trim: Callable[[str, int, int], int] | None = None  # a new end for the span (URL punctuation)

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        gate = self.gate
        if gate is not None:
            if isinstance(gate, str):
                if gate not in text:
                    return
            elif gate.search(text) is None:
                return
        for match in self.pattern.finditer(text):
            start, end = match.span(self.group)
            if self.trim is not None:
                end = self.trim(text, start, end)
            if self.context is not None and not self.context.search(text, max(0, start - self.window), start):
                continue
            if self.validate is None or self.validate(text[start:end]):
                yield start, end
            elif self.groups is not None:
                found = _group_run(text, start, end, self.validate, *self.groups)
                if found is not None:
                    yield found


_SEPARATOR = re.compile(r"[ .\-]+")
_DIGIT_RUN = re.compile(r"\d+")


def _group_run(text: str, start: int, end: int, ok: Validator, lo: int, hi: int) -> tuple[int, int] | None:
    """The longest run of consecutive digit groups in text[start:end] with lo..hi digits that
    `ok` accepts (groups are the digit runs between separators)."""
    groups = [m.span() for m in _DIGIT_RUN.finditer(text, start, end)]
    best: tuple[int, int] | None = None
    best_len = 0
    n = len(groups)
    for i in range(n):
        digits = 0
        for j in range(i, n):
            digits += groups[j][1] - groups[j][0]
            if digits > hi:
                break
            span_len = groups[j][1] - groups[i][0]
            if digits >= lo and (i, j) != (0, n - 1) and span_len > best_len:
                candidate = text[groups[i][0] : groups[j][1]]
                if ok(candidate):
                    best, best_len = (groups[i][0], groups[j][1]), span_len
    return best


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def _consistent_separators(value: str) -> bool:
    return len(set(_SEPARATOR.findall(value))) <= 1


# --- validators ---------------------------------------------------------------------------------

_CARD_PREFIXES = ("2", "3", "4", "5", "6")


def _card(value: str) -> bool:
    digits = _digits(value)
    return (
        13 <= len(digits) <= 19
        and digits.startswith(_CARD_PREFIXES)
        and len(set(digits)) > 1
        and _consistent_separators(value)
        and luhn.is_valid(digits)
    )


def _nanp(digits: str) -> bool:
    """A cheap shape check for a number written without a country code (region US): ten
    digits (or eleven with a leading 1) whose area code and exchange do not start with 0 or 1."""
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return len(digits) == 10 and digits[0] not in "01" and digits[3] not in "01"


def _phone(value: str) -> bool:
    digits = _digits(value)
    international = value.lstrip().startswith("+")
    if not (8 <= len(digits) <= 15 if international else _nanp(digits)):
        return False
    try:
        number = phonenumbers.parse(value, None if international else "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def _ssn(value: str) -> bool:
    return _consistent_separators(value) and ssn.is_valid(_digits(value))


def _itin(value: str) -> bool:
    return _consistent_separators(value) and itin.is_valid(_digits(value))


def _iban(value: str) -> bool:
    return iban.is_valid(value)


def _bic(value: str) -> bool:
    return bic.is_valid(value)


def _bic_with_digit(value: str) -> bool:
    """Without a keyword nearby, only codes whose location part has a digit (NWBKGB2L,
    CITIUS33): an all-letter code is indistinguishable from a shouted word (DOCUMENT)."""
    return any(c.isdigit() for c in value[6:8]) and bic.is_valid(value)


def _ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _ipv6(value: str) -> bool:
    if value.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _url(value: str) -> bool:
    rest = value.split("://", 1)[-1]
    return len(rest) > 3 and any(c.isalnum() for c in rest)


def _mixed_token(value: str) -> bool:
    """A random-looking secret: letters and digits both present (keeps `sk-learn-...` out)."""
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def _aws_secret(value: str) -> bool:
    return any(c.isupper() for c in value) and any(c.islower() for c in value) and any(
        c.isdigit() or c in "/+" for c in value
    )


def _symbolic(value: str) -> bool:
    return not value.isalpha()


def _stdnum(module: object) -> Validator:
    check: Callable[[str], bool] = module.is_valid  # type: ignore[attr-defined]

    def validate(value: str) -> bool:
        return _consistent_separators(value) and check(_digits(value) if value[:1].isdigit() else value)

    return validate


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


def _keyword(words: str) -> re.Pattern[str]:
    return re.compile(rf"(?i)\b(?:{words})\b")


_SSN_WORDS = _keyword(r"ssn|ssns|social\s+security(?:\s+(?:number|no|#))?")
_ITIN_WORDS = _keyword(r"itin|individual\s+taxpayer|taxpayer\s+identification")
_ROUTING_WORDS = _keyword(r"routing|aba|rtn|transit(?:\s+number)?")
_NHS_WORDS = _keyword(r"nhs|national\s+health\s+service")
_AADHAAR_WORDS = _keyword(r"aadhaar|aadhar|uidai|uid")
_SIN_WORDS = _keyword(r"sin|social\s+insurance(?:\s+number)?")
_SWIFT_WORDS = _keyword(r"swift|bic|swift/bic|bic/swift")
_AWS_SECRET_WORDS = re.compile(r"(?i)(?:secret[ _\-]?(?:access[ _\-]?)?key|aws[ _\-]?secret)")

_NINE = re.compile(r"(?<![\w\-])\d{9}(?![\w\-])")
_TEN = re.compile(r"(?<![\w\-])\d{10}(?![\w\-])")
_SPACED_334 = re.compile(r"(?<![\w\-])\d{3}([ \-])\d{3}\1\d{4}(?![\w\-])")
_SPACED_333 = re.compile(r"(?<![\w\-])\d{3}([ \-])\d{3}\1\d{3}(?![\w\-])")
_SPACED_444 = re.compile(r"(?<![\w\-])\d{4}([ \-]?)\d{4}\1\d{4}(?![\w\-])")
_SPACED_324 = re.compile(r"(?<![\w\-])\d{3}([ \-])\d{2}\1\d{4}(?![\w\-])")

_BIC = re.compile(r"(?<![A-Za-z0-9])[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?(?![A-Za-z0-9])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_HEX = "[0-9A-Fa-f]"

DETECTORS: tuple[Detector, ...] = (
    Detector(
        "api_key",
        re.compile(
            r"(?<![\w\-])(?:sk-[A-Za-z0-9_\-]{20,300}|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_\w{22,255}"
            r"|xox[abposer]-[A-Za-z0-9\-]{10,250}|xapp-\d-[A-Za-z0-9\-]{10,250})(?![\w\-])"
        ),
        validate=_mixed_token,
    ),
    Detector(
        "api_key",
        re.compile(r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/\-]{20,300}"),
        gate="hooks.slack.com",
    ),
    Detector("aws_access_key", re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])")),
    Detector(
        "aws_secret_key",
        re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"),
        gate=_AWS_SECRET_WORDS,
        context=_AWS_SECRET_WORDS,
        validate=_aws_secret,
    ),
    Detector(
        "email",
        re.compile(
            r"(?<![\w.%+\-])[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-])"
        ),
        gate="@",
    ),
    Detector(
        "credit_debit_number",
        re.compile(r"(?<![\d\-.])\d(?:[ \-]?\d){12,18}(?![\d])"),
        validate=_card,
        groups=(13, 19),
    ),
    Detector(
        "credit_debit_cvv",
        re.compile(
            r"(?i)\b(?:cvv2?|cvc2?|cvn|cid|csc|security\s+code|card\s+verification(?:\s+(?:code|value|number))?)"
            r"\b[^\w\n]{0,3}(?:(?:is|was|of|number|code|no)\b[^\w\n]{0,3}){0,2}(\d{3,4})(?!\d)"
        ),
        group=1,
    ),
    Detector(
        "credit_debit_expiry",
        re.compile(
            r"(?i)\b(?:exp(?:\.|iry|iration|ires|iring)?(?:\s+date)?|valid\s+(?:thru|through|until|till)"
            r"|good\s+(?:thru|through))(?:\b|(?<=\.))[^\w\n]{0,3}(?:(?:is|on|date|end)\b[^\w\n]{0,3}){0,2}"
            r"((?:0?[1-9]|1[0-2])\s?[/\-]\s?(?:20)?\d{2})(?![\d/])"
        ),
        group=1,
    ),
    Detector("ssn", _SPACED_324, validate=_ssn),
    Detector("ssn", _NINE, gate=_SSN_WORDS, context=_SSN_WORDS, validate=_ssn),
    Detector("us_individual_tax_identification_number", re.compile(
        r"(?<![\w\-])9\d{2}([ \-])\d{2}\1\d{4}(?![\w\-])"), validate=_itin),  # fmt: skip
    Detector("us_individual_tax_identification_number", _NINE, gate=_ITIN_WORDS, context=_ITIN_WORDS,
             validate=_itin),  # fmt: skip
    Detector(
        "international_bank_account_number",
        re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])"),
        validate=_iban,
    ),
    Detector("swift_code", _BIC, validate=_bic_with_digit),
    Detector("swift_code", _BIC, gate=_SWIFT_WORDS, context=_SWIFT_WORDS, validate=_bic),
    Detector("bank_routing", _NINE, gate=_ROUTING_WORDS, context=_ROUTING_WORDS, validate=_stdnum(rtn)),
    Detector(
        "uk_national_insurance_number",
        re.compile(
            r"(?<![A-Za-z0-9])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
            r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])"
        ),
    ),
    Detector("uk_national_health_service_number", _SPACED_334, gate=_NHS_WORDS, context=_NHS_WORDS,
             validate=_stdnum(nhs)),  # fmt: skip
    Detector("uk_national_health_service_number", _TEN, gate=_NHS_WORDS, context=_NHS_WORDS,
             validate=_stdnum(nhs)),  # fmt: skip
    Detector("in_aadhaar", _SPACED_444, gate=_AADHAAR_WORDS, context=_AADHAAR_WORDS,
             validate=_stdnum(aadhaar)),  # fmt: skip
    Detector(
        "in_permanent_account_number",
        re.compile(r"(?<![A-Za-z0-9])[A-Z]{3}[ABCFGHJLPT][A-Z]\d{4}[A-Z](?![A-Za-z0-9])"),
        validate=_stdnum(pan),
    ),
    Detector("ca_social_insurance_number", _SPACED_333, gate=_SIN_WORDS, context=_SIN_WORDS,
             validate=_stdnum(sin)),  # fmt: skip
    Detector("ca_social_insurance_number", _NINE, gate=_SIN_WORDS, context=_SIN_WORDS,
             validate=_stdnum(sin)),  # fmt: skip
    Detector(
        "password",
        re.compile(r"(?i)\b(?:password|passwd|pwd|passcode|passphrase)\s*[:=]\s*[\"'`]?([^\s\"'`]{3,128})"),
        group=1,
    ),
    Detector(
        "password",
        re.compile(r"(?i)\b(?:password|passwd|passcode|passphrase)\s+(?:is|was)\s+[\"'`]?([^\s\"'`]{4,128})"),
        group=1,
        validate=_symbolic,
    ),
    Detector(
        "pin",
        re.compile(r"(?i)\bpin(?:\s*(?:code|number|no\.?|#))?\s*(?:[:=]|\bis\b|\bwas\b)?\s*(\d{4,8})(?!\d)"),
        group=1,
    ),
    Detector(
        "mac_address",
        re.compile(
            rf"(?<![\w:\-.])(?:{_HEX}{{2}}([:\-]){_HEX}{{2}}(?:\1{_HEX}{{2}}){{4}}"
            rf"|{_HEX}{{4}}\.{_HEX}{{4}}\.{_HEX}{{4}})(?![\w:\-]|\.\w)"
        ),
    ),
    Detector(
        "ip_address",
        re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w]|\.\d)"),
        gate=".",
        validate=_ipv4,
    ),
    Detector(
        "ip_address",
        re.compile(rf"(?<![\w:.])(?:{_HEX}{{0,4}}:){{2,7}}(?:{_HEX}{{1,4}}|(?:\d{{1,3}}\.){{3}}\d{{1,3}})?(?![\w:])"),
        gate=":",
        validate=_ipv6,
    ),
    Detector(
        "phone",
        re.compile(r"(?<![\w+.\-/])(?:\+ ?)?(?:\(\d{1,4}\) ?)?\d(?:[ .\-]?\d){5,16}(?![\w]|[.\-/]\d)"),
        validate=_phone,
        groups=(8, 15),
    ),
    Detector(
        "url",
        re.compile(r"(?i)\b(?:(?:https?|ftps?|wss?)://|www\.)[^\s<>\"'`{}|\\^\[\]]+"),
        gate=re.compile(r"(?i)://|www\."),
        validate=_url,
        trim=trim_url,
    ),
)
