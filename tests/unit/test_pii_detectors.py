"""The built-in detectors, entity by entity: what they find, and the look-alikes they must not.

Each positive names the exact substring found; each near miss is a text that looks like the
entity but is not (bad checksum, invalid range, no keyword, part of a longer token).
"""

# ruff: noqa: E501  (tables of cases read best one case a line)
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bricksllm.domain.pii import BUILTIN_ENTITIES
from bricksllm.domain.pii.detectors import DETECTORS


def found(entity: str, text: str) -> list[str]:
    spans = {span for d in DETECTORS if d.entity == entity for span in d.find(text)}
    return [text[s:e] for s, e in sorted(spans)]


POSITIVES = [
    ("email", "write to john.doe+news@example.co.uk today", "john.doe+news@example.co.uk"),
    ("email", "(a_b@sub.example.org)", "a_b@sub.example.org"),
    ("phone", "call (415) 555-0132 now", "(415) 555-0132"),
    ("phone", "call 415-555-0132 3 times", "415-555-0132"),
    ("phone", "tel +44 20 7946 0958.", "+44 20 7946 0958"),
    ("phone", "+33 1 42 68 53 00", "+33 1 42 68 53 00"),
    ("phone", "1-650-253-0000", "1-650-253-0000"),
    ("credit_debit_number", "card 4111 1111 1111 1111 thanks", "4111 1111 1111 1111"),
    ("credit_debit_number", "card 4111-1111-1111-1111", "4111-1111-1111-1111"),
    ("credit_debit_number", "card 5500000000000004.", "5500000000000004"),
    ("credit_debit_number", "amex 3782 822463 10005", "3782 822463 10005"),
    ("credit_debit_number", "4111 1111 1111 1111 123 is the cvv", "4111 1111 1111 1111"),
    ("credit_debit_number", "order 12 4111 1111 1111 1111", "4111 1111 1111 1111"),
    ("credit_debit_cvv", "CVV: 123", "123"),
    ("credit_debit_cvv", "the security code is 4567", "4567"),
    ("credit_debit_expiry", "expiry 12/27", "12/27"),
    ("credit_debit_expiry", "exp. date: 01/2030", "01/2030"),
    ("credit_debit_expiry", "valid thru 9/26", "9/26"),
    ("ssn", "ssn 536-90-4399", "536-90-4399"),
    ("ssn", "my SSN is 536904399", "536904399"),
    ("ssn", "536 90 4399", "536 90 4399"),
    ("international_bank_account_number", "IBAN GB82 WEST 1234 5698 7654 32 ok", "GB82 WEST 1234 5698 7654 32"),
    ("international_bank_account_number", "to DE89370400440532013000.", "DE89370400440532013000"),
    ("swift_code", "BIC NWBKGB2L", "NWBKGB2L"),
    ("swift_code", "send via CITIUS33XXX", "CITIUS33XXX"),
    ("swift_code", "SWIFT code: DEUTDEFF", "DEUTDEFF"),
    ("ip_address", "host 192.168.1.10:8080", "192.168.1.10"),
    ("ip_address", "v6 2001:db8::1 up", "2001:db8::1"),
    ("ip_address", "loopback ::1", "::1"),
    ("ip_address", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("mac_address", "mac 00:1A:2B:3C:4D:5E", "00:1A:2B:3C:4D:5E"),
    ("mac_address", "mac 00-1a-2b-3c-4d-5e", "00-1a-2b-3c-4d-5e"),
    ("mac_address", "cisco 001a.2b3c.4d5e", "001a.2b3c.4d5e"),
    ("url", "see https://example.com/a?b=1.", "https://example.com/a?b=1"),
    ("url", "(https://example.org/x_(y))", "https://example.org/x_(y)"),
    ("url", "visit www.example.com today", "www.example.com"),
    ("aws_access_key", "key AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("api_key", "OPENAI_API_KEY=sk-proj-abc123DEF456ghi789JKL012mno", "sk-proj-abc123DEF456ghi789JKL012mno"),
    ("api_key", "sk-ant-api03-AbCdEf0123456789_xyz-ABCDEFGHIJKL", "sk-ant-api03-AbCdEf0123456789_xyz-ABCDEFGHIJKL"),
    ("api_key", "token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ("api_key", "slack xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij"),
    ("password", "password: hunter2", "hunter2"),
    ("password", "my password is s3cret!", "s3cret!"),
    ("pin", "PIN 1234", "1234"),
    ("bank_routing", "routing number 011000015", "011000015"),
    ("us_individual_tax_identification_number", "ITIN 912-70-1234", "912-70-1234"),
    ("uk_national_insurance_number", "NI number AB 12 34 56 C", "AB 12 34 56 C"),
    ("uk_national_health_service_number", "NHS number 943 476 5919", "943 476 5919"),
    ("in_aadhaar", "aadhaar 2345 6789 0124", "2345 6789 0124"),
    ("in_permanent_account_number", "PAN ABCPE1234F", "ABCPE1234F"),
    ("ca_social_insurance_number", "SIN 130 692 544", "130 692 544"),
]  # fmt: skip

NEAR_MISSES = [
    ("email", "not an address: user@localhost or @handle"),
    ("phone", "order 1234567890"),  # area code 123 does not exist
    ("phone", "on 2024-01-15 at 10:30"),
    ("phone", "version 1.2.3.4567890"),
    ("credit_debit_number", "card 4111 1111 1111 1112"),  # fails Luhn
    ("credit_debit_number", "0000 0000 0000 0000"),
    ("credit_debit_number", "id 41111111111111110"),  # 17 digits inside a longer number
    ("credit_debit_number", "4111 1111-1111 1111"),  # mixed separators
    ("credit_debit_cvv", "we have 123 apples"),
    ("credit_debit_expiry", "exported 12/27 items"),
    ("ssn", "000-12-3456"),
    ("ssn", "666-12-3456"),
    ("ssn", "900-12-3456"),
    ("ssn", "123-00-4567"),
    ("ssn", "123-45-0000"),
    ("ssn", "078-05-1120"),  # the Woolworth wallet number
    ("ssn", "invoice 536904399"),  # nine digits without the keyword
    ("ssn", "536-90 4399"),
    ("international_bank_account_number", "GB82 WEST 1234 5698 7654 33"),  # bad mod-97
    ("international_bank_account_number", "XX82WEST12345698765432"),  # no such country
    ("swift_code", "this DOCUMENT is IMPORTANT"),  # letters only, no keyword
    ("ip_address", "256.1.1.1 and 1.2.3.4.5 and 12:30:45"),
    ("ip_address", "std::vector"),
    ("mac_address", "00:1A:2B:3C:4D"),
    ("url", "file.txt and example.com"),
    ("aws_access_key", "AKIAIOSFODNN7EXAMPL"),
    ("aws_secret_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),  # no keyword
    ("api_key", "use sk-learn-compatible-estimators-here"),  # no digits: a word, not a key
    ("password", "reset your password by clicking"),
    ("password", "the password is required"),
    ("pin", "pin 2 of the connector"),
    ("bank_routing", "routing number 011000016"),  # bad checksum
    ("uk_national_insurance_number", "QQ 12 34 56 C"),  # QQ is not a valid prefix
    ("uk_national_health_service_number", "NHS number 943 476 5918"),  # bad mod-11
    ("in_aadhaar", "aadhaar 2345 6789 0125"),  # bad Verhoeff
    ("ca_social_insurance_number", "SIN 130 692 545"),  # fails Luhn
    ("us_individual_tax_identification_number", "ITIN 912-30-1234"),  # group 30 is not an ITIN
]


@pytest.mark.parametrize(("entity", "text", "expected"), POSITIVES)
def test_finds(entity: str, text: str, expected: str) -> None:
    assert expected in found(entity, text)


@pytest.mark.parametrize(("entity", "text"), NEAR_MISSES)
def test_near_miss_is_not_found(entity: str, text: str) -> None:
    assert found(entity, text) == []


def test_every_builtin_entity_has_a_detector_and_a_positive_case() -> None:
    assert {d.entity for d in DETECTORS} == BUILTIN_ENTITIES
    assert {entity for entity, _, _ in POSITIVES} == BUILTIN_ENTITIES


FRAGMENTS = [text for _, text, _ in POSITIVES] + [text for _, text in NEAR_MISSES] + [
    "4111 1111 1111 1111", "(415) 555-0132", "+44 20 7946 0958", "536904399", "2001:db8::1", "ssn",
    "word", "-", ".", ":", "/", "(", ")", "+", "é", "0", "42", "AB", "ff", "\n", "\t", "\r",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(FRAGMENTS), st.sampled_from(["", " ", "\n", "-", ".", ":"])), max_size=12
    )
)
def test_window_scan_equals_whole_text_scan(parts: list[tuple[str, str]]) -> None:
    """The RE2 gates and windows are an optimisation only: they find exactly what the Python
    patterns find over the whole text."""
    text = "".join(a + b for a, b in parts)
    for detector in DETECTORS:
        assert list(detector.find(text)) == list(detector.scan(text)), (detector.entity, text)


def test_long_hostile_inputs_stay_linear() -> None:
    """Long runs of the characters the patterns repeat finish (a catastrophic backtrack would
    not); the benchmark measures the time, this only proves termination on 100 KB."""
    fillers = ("1" * 100_000, "1 " * 50_000, "a" * 100_000, "a." * 50_000, ":" * 100_000, "0-" * 50_000,
               "(1) " * 25_000, "+1 " * 33_000, "ssn " * 25_000)  # fmt: skip
    for filler in fillers:
        text = filler + "@x"
        for detector in DETECTORS:
            list(detector.find(text))
