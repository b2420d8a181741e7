"""The entity names a policy can name, and which engine can find each.

Names are the original gateway's (the lower-case AWS Comprehend PII types), so policies written
for it keep working; `api_key` is ours (OpenAI, Anthropic, GitHub and Slack tokens), and `iban`
is accepted as a short alias of `international_bank_account_number`. `all` is not an entity but
the default action for every entity the running engines can find.

An entity is *built-in* when a pattern plus a checksum, a format rule or a nearby keyword finds
it reliably; the others (names, addresses, ages, dates...) need a language model, so a policy may
name them only when an engine that finds them (Presidio, AWS Comprehend) is configured.
"""

from __future__ import annotations

import functools

ALL = "all"

# Every entity of the original gateway, in its order, plus `api_key`.
ENTITIES: frozenset[str] = frozenset(
    {
        "address",
        "age",
        "aws_access_key",
        "aws_secret_key",
        "bank_account_number",
        "bank_routing",
        "ca_health_number",
        "ca_social_insurance_number",
        "credit_debit_cvv",
        "credit_debit_expiry",
        "credit_debit_number",
        "date_time",
        "driver_id",
        "email",
        "in_aadhaar",
        "in_nrega",
        "in_permanent_account_number",
        "in_voter_number",
        "international_bank_account_number",
        "ip_address",
        "license_plate",
        "mac_address",
        "name",
        "passport_number",
        "password",
        "phone",
        "pin",
        "ssn",
        "swift_code",
        "uk_national_health_service_number",
        "uk_national_insurance_number",
        "uk_unique_taxpayer_reference_number",
        "url",
        "us_individual_tax_identification_number",
        "username",
        "vehicle_identification_number",
        "api_key",
    }
)

ALIASES: dict[str, str] = {"iban": "international_bank_account_number"}

# What the in-process pattern engine finds (see detectors.py for how, entity by entity).
BUILTIN_ENTITIES: frozenset[str] = frozenset(
    {
        "email",
        "phone",
        "credit_debit_number",
        "credit_debit_cvv",
        "credit_debit_expiry",
        "ssn",
        "international_bank_account_number",
        "swift_code",
        "ip_address",
        "mac_address",
        "url",
        "aws_access_key",
        "aws_secret_key",
        "api_key",
        "password",
        "pin",
        "bank_routing",
        "us_individual_tax_identification_number",
        "uk_national_insurance_number",
        "uk_national_health_service_number",
        "in_aadhaar",
        "in_permanent_account_number",
        "ca_social_insurance_number",
    }
)

NLP_ENTITIES: frozenset[str] = ENTITIES - BUILTIN_ENTITIES

NLP_ENGINE_HINT = (
    "install an engine that finds it: `pip install 'bricksllm[presidio]'` plus a spaCy English "
    "model (e.g. `pip install en_core_web_lg` from spaCy's releases), or `pip install "
    "'bricksllm[comprehend]'` for AWS Comprehend, and configure it as the gateway's PII engine"
)


def canonical(name: str) -> str:
    """The entity a (possibly aliased) rule name stands for; unknown names come back unchanged."""
    return ALIASES.get(name, name)


@functools.cache  # labels are entity names and regex[i]: a small set
def placeholder(label: str) -> str:
    """What replaces a redacted span: `[EMAIL]`, `[CREDIT_DEBIT_NUMBER]`; regex rules get
    `[REDACTED]` (their label is `regex[i]`, which says nothing to the model)."""
    if label.startswith("regex["):
        return "[REDACTED]"
    return f"[{label.upper()}]"
