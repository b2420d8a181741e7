"""The admin API's request/response models and whole-object rules, without HTTP or storage."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from bricksllm.domain.models import (
    CustomProvider,
    Key,
    ModelPrice,
    PathConfig,
    ProviderSetting,
    RouteConfig,
    hash_secret,
)
from bricksllm.http.admin_schemas import (
    EventOut,
    KeyCreate,
    KeyOut,
    KeyPatch,
    SettingCreate,
    SettingOut,
    SettingPatch,
)
from bricksllm.http.admin_schemas_custom import CustomProviderOut, RouteConfigIn, RouteConfigPatch
from bricksllm.http.admin_schemas_reports import DataPointOut, ReportOut
from bricksllm.http.problems import _field_name
from bricksllm.ports import DataPoint, Report
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.admin_rules import (
    custom_provider_problems,
    key_problems,
    setting_problems,
    url_problem,
)

KEY = Key(key_id="k1", name="n", key_hash="h", created_at=1, updated_at=2, setting_id="s1")


def errors_of(model: type[BaseModel], data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [_field_name(tuple(e["loc"])) for e in info.value.errors()]


def test_key_create_converts_to_domain_units() -> None:
    body = KeyCreate.model_validate(
        {
            "name": "n",
            "key": "s",
            "tags": ["a"],
            "settingIds": ["x", "y"],
            "costLimitInUsd": 1,
            "costLimitInUsdOverTime": 0.000001,
            "costLimitInUsdUnit": "mo",
            "rateLimitOverTime": 3,
            "rateLimitUnit": "s",
            "ttl": "2d",
            "allowedPaths": [{"path": "/v1/x", "method": "post"}],
        }
    )
    fields = body.to_fields()
    assert fields["cost_limit_micros"] == 1_000_000 and fields["cost_limit_over_time_micros"] == 1
    assert fields["tags"] == ("a",) and fields["setting_ids"] == ("x", "y") and fields["setting_id"] == ""
    assert fields["allowed_paths"] == (PathConfig("/v1/x", "POST"),)
    assert (fields["rate_limit_over_time"], fields["rate_limit_unit"], fields["ttl"]) == (3, "s", "2d")
    assert "key=" not in repr(body)  # the secret is kept out of reprs (and so out of logs)


def test_key_patch_reports_only_present_fields_and_null_means_absent() -> None:
    patch = KeyPatch.model_validate(
        {"name": "x", "revoked": True, "revokedReason": None, "rateLimitUnit": ""}
    )
    assert patch.to_fields() == {"name": "x", "revoked": True, "rate_limit_unit": ""}
    assert KeyPatch.model_validate({}).to_fields() == {}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"rateLimitOverTime": "2"}, "rateLimitOverTime"),
        ({"rateLimitOverTime": 2.0}, "rateLimitOverTime"),
        ({"rateLimitOverTime": True}, "rateLimitOverTime"),
        ({"costLimitInUsd": math.nan}, "costLimitInUsd"),
        ({"costLimitInUsd": math.inf}, "costLimitInUsd"),
        ({"costLimitInUsd": "0.5"}, "costLimitInUsd"),
        ({"revoked": "true"}, "revoked"),
        ({"revoked": 1}, "revoked"),
        ({"tags": ["a", 1]}, "tags[1]"),
        ({"ttl": "3w"}, "ttl"),
        ({"costLimitInUsdUnit": "y"}, "costLimitInUsdUnit"),
        ({"rateLimitUnit": "mo"}, "rateLimitUnit"),
        ({"allowedPaths": [{"path": "/x", "method": " "}]}, "allowedPaths[0].method"),
        ({"key": "new"}, "key"),
        ({"cost_limit_in_usd": 1}, "cost_limit_in_usd"),  # requests take the JSON names only
    ],
)
def test_key_patch_field_rules(data: dict[str, Any], field: str) -> None:
    assert field in errors_of(KeyPatch, data)


def test_int_is_accepted_where_a_float_is_expected() -> None:
    assert KeyPatch.model_validate({"costLimitInUsd": 2}).cost_limit_in_usd == 2.0


# The key fields every key endpoint answers with: the reference's names, and no secret.
KEY_FIELDS = {
    "keyId", "name", "tags", "settingId", "settingIds", "revoked", "revokedReason", "costLimitInUsd",
    "costLimitInUsdOverTime", "costLimitInUsdUnit", "rateLimitOverTime", "rateLimitUnit", "ttl",
    "allowedPaths", "createdAt", "updatedAt", "expiresAt", "policyId", "shouldLogRequest",
    "shouldLogResponse",
    "rateLimits", "costLimits", "tokenLimits", "modelLimits",  # the limits as lists (shorthand included)
}  # fmt: skip


def test_key_out_names_and_no_secret() -> None:
    key = Key(
        key_id="k1",
        name="n",
        key_hash="deadbeef",
        created_at=1,
        updated_at=2,
        cost_limit_micros=250_000,
        allowed_paths=(PathConfig("/a", "GET"),),
    )
    out = KeyOut.from_domain(key).model_dump(mode="json")
    assert set(out) == KEY_FIELDS
    assert out["costLimitInUsd"] == 0.25 and out["allowedPaths"] == [{"path": "/a", "method": "GET"}]
    assert out["costLimits"] == [{"usd": 0.25, "unit": "total"}] and out["rateLimits"] == []
    assert "deadbeef" not in str(out)


def test_setting_out_shows_only_public_entries() -> None:
    s = ProviderSetting(
        id="s",
        provider="azure",
        created_at=1,
        updated_at=1,
        setting={"apikey": "SECRET", "resourceName": "r", "url": "https://u", "token": "T0KEN"},
        prices={"m": ModelPrice(1.0, 2.0)},
    )
    out = SettingOut.from_domain(s).model_dump(mode="json")
    assert out["setting"] == {"url": "https://u", "resourceName": "r"}
    assert out["settingKeys"] == ["apikey", "resourceName", "token", "url"]
    assert out["prices"] == {"m": {"input": 1.0, "output": 2.0, "cachedInput": None, "cacheWrite": None}}
    assert "SECRET" not in str(out) and "T0KEN" not in str(out)


def test_setting_models() -> None:
    created = SettingCreate.model_validate(
        {
            "provider": "Anthropic",
            "setting": {"apikey": "k"},
            "prices": {"claude": {"input": 3, "output": 15, "cachedInput": 0.3}},
        }
    )
    assert created.provider == "anthropic"
    assert created.domain_prices() == {"claude": ModelPrice(3.0, 15.0, 0.3)}
    assert "provider" in errors_of(SettingPatch, {"provider": "openai"})
    assert "setting" in errors_of(SettingCreate, {"provider": "openai"})
    assert "prices.m.input" in errors_of(SettingPatch, {"prices": {"m": {"input": -1, "output": 0}}})


def test_reporting_names_and_mean_latency() -> None:
    report = Report([DataPoint(60, 4, 1_500_000, 1000, 7, 9, 3, 240.0, 310.5), DataPoint(120)], 12.5, 99.0)
    out = ReportOut.from_domain(report).model_dump(mode="json")
    assert out == {
        "dataPoints": [
            {
                "timeStamp": 60,
                "numberOfRequests": 4,
                "costInUsd": 1.5,
                "latencyInMs": 250.0,
                "promptTokenCount": 7,
                "completionTokenCount": 9,
                "successCount": 3,
                "latencyInMsMedian": 240.0,
                "latencyInMs99th": 310.5,
            },
            {
                "timeStamp": 120,
                "numberOfRequests": 0,
                "costInUsd": 0.0,
                "latencyInMs": 0.0,
                "promptTokenCount": 0,
                "completionTokenCount": 0,
                "successCount": 0,
                "latencyInMsMedian": 0.0,
                "latencyInMs99th": 0.0,
            },
        ],
        "latencyInMsMedian": 12.5,
        "latencyInMs99th": 99.0,
    }
    assert DataPointOut.from_domain(DataPoint(0, 3, latency_sum_ms=10)).latency_in_ms == pytest.approx(10 / 3)


def test_event_and_custom_provider_are_snake_case() -> None:
    from bricksllm.domain.models import Event

    e = Event(
        id="e",
        created_at=1,
        key_id="k",
        provider="openai",
        model="m",
        status=200,
        path="/p",
        method="POST",
        cost_micros=2_500_000,
    )
    assert EventOut.from_domain(e).model_dump()["cost_in_usd"] == 2.5
    p = CustomProvider(
        id="c", provider="x", created_at=1, updated_at=2, route_configs=(RouteConfig("/a", "http://u"),)
    )
    out = CustomProviderOut.from_domain(p).model_dump()
    assert set(out) == {"id", "created_at", "updated_at", "provider", "route_configs", "authentication_param"}
    assert out["route_configs"][0]["target_url"] == "http://u"


def test_route_config_models() -> None:
    assert set(errors_of(RouteConfigIn, {"path": "/a"})) == {
        "target_url",
        "model_location",
        "request_prompt_location",
        "response_completion_location",
    }
    patch = RouteConfigPatch.model_validate({"path": "/a", "stream_max_empty_messages": 2})
    assert patch.present_fields() == {"path": "/a", "stream_max_empty_messages": 2}
    assert "stream_max_empty_messages" in errors_of(
        RouteConfigPatch, {"path": "/a", "stream_max_empty_messages": -1}
    )


def test_field_names_in_problems() -> None:
    assert _field_name(("allowedPaths", 0, "path")) == "allowedPaths[0].path"
    assert _field_name(("prices", "gpt-4o", "input")) == "prices.gpt-4o.input"
    assert _field_name(()) == "body"


# ------------------------------------------------------------------ whole-object rules


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": " "}, "name"),
        ({"setting_id": ""}, "settingId"),
        ({"setting_ids": ("",)}, "settingIds"),
        ({"tags": ("",)}, "tags"),
        ({"cost_limit_micros": -1}, "costLimitInUsd"),
        ({"cost_limit_unit": "d"}, "costLimitInUsdOverTime"),
        ({"cost_limit_over_time_micros": 5}, "costLimitInUsdUnit"),
        ({"cost_limit_over_time_micros": 5, "cost_limit_unit": "s"}, "costLimitInUsdUnit"),
        ({"rate_limit_unit": "m"}, "rateLimitOverTime"),
        ({"rate_limit_over_time": 5}, "rateLimitUnit"),
        ({"rate_limit_over_time": 5, "rate_limit_unit": "mo"}, "rateLimitUnit"),
        ({"rate_limit_over_time": -5, "rate_limit_unit": "m"}, "rateLimitOverTime"),
        ({"allowed_paths": (PathConfig("x", "GET"),)}, "allowedPaths[0].path"),
        ({"allowed_paths": (PathConfig("/x", ""),)}, "allowedPaths[0].method"),
    ],
)
def test_key_problems(changes: dict[str, Any], field: str) -> None:
    import dataclasses

    assert field in [f for f, _ in key_problems(dataclasses.replace(KEY, **changes))]


def test_valid_keys_have_no_problems() -> None:
    import dataclasses

    assert key_problems(KEY) == []
    assert (
        key_problems(
            dataclasses.replace(
                KEY,
                setting_id="",
                setting_ids=("a",),
                rate_limit_over_time=1,
                rate_limit_unit="d",
                cost_limit_over_time_micros=1,
                cost_limit_unit="mo",
            )
        )
        == []
    )


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://127.0.0.1:8000", True),
        ("https://api.example/v1", True),
        ("ftp://x", False),
        ("x", False),
        ("http://", False),
        ("https://a b", False),
        ("", False),
        ("http://[::1", False),
        ("http://x:0/", False),
        ("https://user:secret@api.example/v1", False),
        ("https://token@api.example/v1", False),
    ],
)
def test_url_problem(url: str, ok: bool) -> None:
    assert (url_problem(url) == "") is ok


def test_credentials_in_a_url_are_refused_with_a_reason() -> None:
    assert "credentials" in url_problem("https://user:secret@api.example")


def test_setting_problems() -> None:
    assert setting_problems("azure", {"apikey": "k"}, ("apikey", "resourceName")) == [
        ("setting.resourceName", "is required for provider azure")
    ]
    assert [f for f, _ in setting_problems("openai", {"apikey": "k", "url": "nope"}, ("apikey",))] == [
        "setting.url"
    ]


ROUTE = RouteConfig("/a", "https://x.example/a", "model", "prompt", "completion")


@pytest.mark.parametrize(
    ("provider", "taken", "field"),
    [
        (CustomProvider("i", "", 1, 1, (ROUTE,)), [], "provider"),
        (CustomProvider("i", "a b", 1, 1, (ROUTE,)), [], "provider"),
        (CustomProvider("i", "azure", 1, 1, (ROUTE,)), [], "provider"),
        (CustomProvider("i", "x", 1, 1, (ROUTE,)), ["x"], "provider"),
        (CustomProvider("i", "x", 1, 1, ()), [], "route_configs"),
        (CustomProvider("i", "x", 1, 1, (ROUTE, ROUTE)), [], "route_configs[1].path"),
        (CustomProvider("i", "x", 1, 1, (ROUTE,), "a b"), [], "authentication_param"),
    ],
)
def test_custom_provider_problems(provider: CustomProvider, taken: list[str], field: str) -> None:
    assert field in [
        f for f, _ in custom_provider_problems(provider, taken, ProviderRegistry().builtin_names)
    ]


def test_secrets_are_hashed_with_sha256() -> None:
    assert hash_secret("my-secret-key") == hashlib.sha256(b"my-secret-key").hexdigest()
