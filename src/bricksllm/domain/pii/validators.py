"""Validators for the built-in detectors: a candidate that only looks like an entity is dropped.

Checksums and registries come from well-kept libraries rather than being rewritten here: Luhn,
mod-97 (IBAN), the SSA's SSN and ITIN rules, ABA routing, NHS, Aadhaar (Verhoeff), PAN and SIN
from `python-stdnum`; phone numbers from `phonenumbers` (libphonenumber's metadata); addresses
from `ipaddress`. Each takes the candidate text and answers yes or no, with no other state
than a bounded cache (chat clients resend the whole conversation every turn).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable

import phonenumbers
from stdnum import bic, iban, luhn
from stdnum.us import itin, ssn

Validator = Callable[[str], bool]

SEPARATOR = re.compile(r"[ .\-]+")
DIGIT_RUN = re.compile(r"\d+")


def only_digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def consistent_separators(value: str) -> bool:
    return len(set(SEPARATOR.findall(value))) <= 1


# --- validators ---------------------------------------------------------------------------------

_CARD_PREFIXES = ("2", "3", "4", "5", "6")


# How card numbers are printed: 4-4-4-4 (most), 4-6-5 (Amex), 4-6-4 (Diners), 4-4-4-4-3 (19 digits).
_CARD_GROUPS = frozenset(
    {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 1), (4, 4, 4, 2), (4, 4, 4, 3)}
)


@functools.lru_cache(maxsize=4096)
def card(value: str) -> bool:
    if len(value) > 23:  # 19 digits and 4 separators
        return False
    groups = tuple(len(g) for g in DIGIT_RUN.findall(value))
    digits = only_digits(value)
    return (
        (len(groups) == 1 or groups in _CARD_GROUPS)
        and 13 <= len(digits) <= 19
        and digits.startswith(_CARD_PREFIXES)
        and len(set(digits)) > 1
        and consistent_separators(value)
        and luhn.is_valid(digits)
    )


# How a number without a country code (read as US) may be grouped: 4155550132, 415-555-0132,
# (415) 555-0132, 1-415-555-0132, 14155550132.
_NANP_GROUPS = frozenset({(10,), (11,), (3, 3, 4), (1, 3, 3, 4), (3, 7)})


@functools.lru_cache(maxsize=4096)  # chat clients resend the whole conversation each turn
def phone(value: str) -> bool:
    if len(value) > 32:
        return False
    international = value.startswith("+")
    groups = tuple(len(g) for g in DIGIT_RUN.findall(value))
    digits = only_digits(value)
    if international:
        if not 8 <= len(digits) <= 15:
            return False
    elif groups not in _NANP_GROUPS or (len(digits) == 11 and digits[0] != "1"):
        return False
    try:
        number = phonenumbers.parse(value, None if international else "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


@functools.lru_cache(maxsize=4096)
def us_ssn(value: str) -> bool:
    return consistent_separators(value) and ssn.is_valid(only_digits(value))


@functools.lru_cache(maxsize=4096)
def us_itin(value: str) -> bool:
    return consistent_separators(value) and itin.is_valid(only_digits(value))


@functools.lru_cache(maxsize=4096)
def iban_number(value: str) -> bool:
    return iban.is_valid(value)


@functools.lru_cache(maxsize=4096)
def bic_code(value: str) -> bool:
    return bic.is_valid(value)


@functools.lru_cache(maxsize=4096)
def bic_with_digit(value: str) -> bool:
    """Without a keyword nearby, only codes whose location part has a digit (NWBKGB2L,
    CITIUS33): an all-letter code is indistinguishable from a shouted word (DOCUMENT)."""
    return any(c.isdigit() for c in value[6:8]) and bic.is_valid(value)


@functools.lru_cache(maxsize=4096)
def ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def ipv6(value: str) -> bool:
    if value.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def url(value: str) -> bool:
    rest = value.split("://", 1)[-1]
    return len(rest) > 3 and any(c.isalnum() for c in rest)


def mixed_token(value: str) -> bool:
    """A random-looking secret: letters and digits both present (keeps `sk-learn-...` out)."""
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def aws_secret(value: str) -> bool:
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() or c in "/+" for c in value)
    )


def symbolic(value: str) -> bool:
    return not value.isalpha()


_CHECKSUMS: list[Validator] = []


def checksum(module: object) -> Validator:
    check: Callable[[str], bool] = module.is_valid  # type: ignore[attr-defined]

    @functools.lru_cache(maxsize=4096)
    def validate(value: str) -> bool:
        return consistent_separators(value) and check(only_digits(value) if value[:1].isdigit() else value)

    _CHECKSUMS.append(validate)
    return validate


def clear_caches() -> None:
    """Forget every remembered answer (benchmarks of a first-seen text; tests)."""
    for value in list(globals().values()):
        clear = getattr(value, "cache_clear", None)
        if callable(clear):
            clear()
    for detector_check in _CHECKSUMS:
        detector_check.cache_clear()  # type: ignore[attr-defined]
