"""The admin API (port 8001): keys, provider settings, custom providers, events and reporting,
and the dashboard (`http/ui.py`) that is built on nothing but this API.

Handlers are thin: read and validate the request with the models of `admin_schemas`, call
`AdminService`, serialise the result. The endpoints are declared once in `_operations`, which
both registers the aiohttp routes and feeds the OpenAPI document. Errors are raised, never
rendered here: `ProblemMiddleware` answers them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import MultiMapping

from bricksllm import __version__
from bricksllm.domain.models import micros_to_usd
from bricksllm.errors import Invalid
from bricksllm.http.admin_access_log import AccessLogMiddleware
from bricksllm.http.admin_auth import AdminAuthMiddleware
from bricksllm.http.admin_guard import AdminGuard
from bricksllm.http.admin_input import StorableInputMiddleware
from bricksllm.http.admin_io import integer, json_response, multi, read_model
from bricksllm.http.admin_metrics import METRICS_PATH, Exposition, metrics_handler
from bricksllm.http.admin_schemas import (
    Deleted,
    EventOut,
    HealthOut,
    KeyCreate,
    KeyOut,
    KeyPatch,
    SettingCreate,
    SettingOut,
    SettingPatch,
)
from bricksllm.http.admin_schemas_custom import CustomProviderCreate, CustomProviderOut, CustomProviderPatch
from bricksllm.http.admin_schemas_reports import KeySpendOut, KeyUsageOut, ReportOut, ReportRequest
from bricksllm.http.openapi import Operation, Param, build_document, render_docs
from bricksllm.http.problems import ProblemMiddleware
from bricksllm.http.ui import add_ui_routes
from bricksllm.ports import EventQuery, Metrics, ReportQuery
from bricksllm.services.admin import AdminService

MAX_BODY_BYTES = 1024 * 1024
TOTAL_COUNT = "X-Total-Count"

_STATUS = re.compile(r"([1-5])(?:xx|XX)|([1-5]\d\d)")


def status_ranges(query: MultiMapping[str], name: str) -> tuple[tuple[int, int], ...]:
    """`status=429&status=5xx` -> ((429, 430), (500, 600)): exact codes and classes."""
    ranges = []
    for value in multi(query, name):
        match = _STATUS.fullmatch(value)
        if match is None:
            raise Invalid(f"{name}: {value!r} is not a code (e.g. 429) or a class (e.g. 5xx)", fields=[name])
        if match.group(1):
            low = int(match.group(1)) * 100
            ranges.append((low, low + 100))
        else:
            ranges.append((int(value), int(value) + 1))
    return tuple(ranges)


def flag(query: MultiMapping[str], name: str) -> bool:
    raw = query.get(name, "").strip().lower()
    if raw not in {"", "true", "false", "1", "0"}:
        raise Invalid(f"{name}: must be true or false", fields=[name])
    return raw in {"true", "1"}


class AdminHandlers:
    def __init__(self, service: AdminService) -> None:
        self.service = service

    async def health(self, request: web.Request) -> web.Response:
        return json_response(HealthOut(status="ok"))

    # keys
    async def create_key(self, request: web.Request) -> web.Response:
        body = await read_model(request, KeyCreate)
        return json_response(KeyOut.from_domain(await self.service.create_key(body.key, body.to_fields())))

    async def update_key(self, request: web.Request) -> web.Response:
        body = await read_model(request, KeyPatch)
        key = await self.service.update_key(request.match_info["keyId"], body.to_fields())
        return json_response(KeyOut.from_domain(key))

    async def delete_key(self, request: web.Request) -> web.Response:
        await self.service.delete_key(request.match_info["keyId"])
        return json_response(Deleted())

    async def list_keys(self, request: web.Request) -> web.Response:
        q = request.query
        keys = await self.service.list_keys(
            tags=tuple(dict.fromkeys(multi(q, "tag") + multi(q, "tags"))),
            key_ids=multi(q, "keyIds"),
            provider=q.get("provider", "").strip(),
        )
        return json_response([KeyOut.from_domain(k) for k in keys])

    # provider settings
    async def create_setting(self, request: web.Request) -> web.Response:
        body = await read_model(request, SettingCreate)
        created = await self.service.create_setting(
            body.provider,
            body.setting,
            name=body.name,
            allowed_models=body.allowed_models,
            prices=body.domain_prices(),
        )
        return json_response(SettingOut.from_domain(created))

    async def update_setting(self, request: web.Request) -> web.Response:
        body = await read_model(request, SettingPatch)
        given = body.model_fields_set
        updated = await self.service.update_setting(
            request.match_info["id"],
            setting=body.setting if "setting" in given else None,
            name=body.name if "name" in given else None,
            allowed_models=body.allowed_models if "allowed_models" in given else None,
            prices=body.domain_prices() if "prices" in given else None,
        )
        return json_response(SettingOut.from_domain(updated))

    async def list_settings(self, request: web.Request) -> web.Response:
        settings = await self.service.list_settings(multi(request.query, "ids"))
        return json_response([SettingOut.from_domain(s) for s in settings])

    # custom providers
    async def create_custom_provider(self, request: web.Request) -> web.Response:
        body = await read_model(request, CustomProviderCreate)
        created = await self.service.create_custom_provider(
            body.provider, [rc.to_domain() for rc in body.route_configs], body.authentication_param
        )
        return json_response(CustomProviderOut.from_domain(created))

    async def update_custom_provider(self, request: web.Request) -> web.Response:
        body = await read_model(request, CustomProviderPatch)
        given = body.model_fields_set
        updated = await self.service.update_custom_provider(
            request.match_info["id"],
            route_configs=[rc.present_fields() for rc in body.route_configs],
            authentication_param=body.authentication_param if "authentication_param" in given else None,
        )
        return json_response(CustomProviderOut.from_domain(updated))

    async def list_custom_providers(self, request: web.Request) -> web.Response:
        providers = await self.service.list_custom_providers()
        return json_response([CustomProviderOut.from_domain(p) for p in providers])

    # events and reporting
    async def list_events(self, request: web.Request) -> web.Response:
        q = request.query
        limit, offset = integer(q, "limit"), integer(q, "offset")
        query = EventQuery(
            key_ids=multi(q, "keyIds"),
            tags=multi(q, "tags"),
            custom_id=q.get("customId", "").strip(),
            start=integer(q, "start"),
            end=integer(q, "end"),
            models=multi(q, "model"),
            statuses=status_ranges(q, "status"),
            limit=100 if limit is None else limit,
            offset=offset or 0,
            correlation_id=q.get("correlationId", "").strip(),
            include_bodies=flag(q, "includeBodies"),
        )
        count = flag(q, "returnCount")
        events = await self.service.list_events(query)
        response = json_response([EventOut.from_domain(e, bodies=query.include_bodies) for e in events])
        if count:
            response.headers[TOTAL_COUNT] = str(await self.service.count_events(query))
        return response

    async def report(self, request: web.Request) -> web.Response:
        body = await read_model(request, ReportRequest)
        report = await self.service.report(
            ReportQuery(
                start=body.start,
                end=body.end,
                increment=body.increment,
                key_ids=tuple(body.key_ids),
                tags=tuple(body.tags),
                custom_ids=tuple(body.custom_ids),
            )
        )
        return json_response(ReportOut.from_domain(report))

    async def key_spend(self, request: web.Request) -> web.Response:
        key_id = request.match_info["keyId"]
        micros = await self.service.key_spend(key_id)
        return json_response(
            KeySpendOut(id=key_id, cost_in_micro_dollars=micros, cost_in_usd=micros_to_usd(micros))
        )

    async def key_usages(self, request: web.Request) -> web.Response:
        usages = await self.service.key_usages(multi(request.query, "keyIds"))
        return json_response([KeyUsageOut.from_domain(u) for u in usages])


_KEYS, _SETTINGS, _CUSTOM, _EVENTS = "keys", "provider settings", "custom providers", "events"
_TS = {"type": "integer", "description": "unix seconds"}
_KEY_FILTERS = (
    Param("tag", "keys carrying this tag"),
    Param("tags", "keys carrying all these tags", repeated=True),
    Param("keyIds", "keys with these ids", repeated=True),
    Param("provider", "keys with a setting of this provider"),
)
_SETTING_FILTERS = (Param("ids", "only these settings", repeated=True),)
_EVENT_FILTERS = (
    Param("customId", "the X-CUSTOM-EVENT-ID of the request"),
    Param("keyIds", "events of these keys", repeated=True),
    Param("tags", "events carrying all these tags", repeated=True),
    Param("start", "from (inclusive)", schema=_TS),
    Param("end", "until (exclusive)", schema=_TS),
    Param("model", "events of these models", repeated=True),
    Param("status", "events with these statuses: a code (429) or a class (5xx)", repeated=True),
    Param(
        "returnCount",
        "also answer the number of matching events in X-Total-Count",
        schema={"type": "boolean", "default": False},
    ),
    Param("correlationId", "the x-bricksllm-request-id of the request"),
    Param(
        "includeBodies",
        "also answer the captured request and response bodies",
        schema={"type": "boolean", "default": False},
    ),
    Param("limit", "page size", schema={"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
    Param("offset", "events to skip", schema={"type": "integer", "minimum": 0, "default": 0}),
)


def _operations(h: AdminHandlers) -> list[Operation]:
    keys, settings, custom = "/api/key-management/keys", "/api/provider-settings", "/api/custom/providers"
    op = Operation
    # fmt: off
    return [
        op("GET", "/api/health", h.health, "Liveness probe", "health",
           response=HealthOut, errors=(), public=True),
        op("PUT", keys, h.create_key, "Create a key", _KEYS, KeyCreate, KeyOut),
        op("POST", keys, h.create_key, "Create a key (same as PUT)", _KEYS, KeyCreate, KeyOut),
        op("GET", keys, h.list_keys, "List keys: all, or those matching every filter", _KEYS,
           response=KeyOut, many=True, params=_KEY_FILTERS),
        op("PATCH", keys + "/{keyId}", h.update_key, "Update a key", _KEYS,
           KeyPatch, KeyOut, errors=(400, 404)),
        op("DELETE", keys + "/{keyId}", h.delete_key, "Delete a key", _KEYS, response=Deleted, errors=(404,)),
        op("PUT", settings, h.create_setting, "Create a provider setting", _SETTINGS,
           SettingCreate, SettingOut),
        op("POST", settings, h.create_setting, "Create a provider setting (same as PUT)", _SETTINGS,
           SettingCreate, SettingOut),
        op("GET", settings, h.list_settings, "List provider settings: all, or by id", _SETTINGS,
           response=SettingOut, many=True, errors=(404,), params=_SETTING_FILTERS),
        op("PATCH", settings + "/{id}", h.update_setting, "Update a provider setting", _SETTINGS,
           SettingPatch, SettingOut, errors=(400, 404)),
        op("POST", custom, h.create_custom_provider, "Create a custom provider", _CUSTOM,
           CustomProviderCreate, CustomProviderOut),
        op("GET", custom, h.list_custom_providers, "List custom providers", _CUSTOM,
           response=CustomProviderOut, many=True, errors=()),
        op("PATCH", custom + "/{id}", h.update_custom_provider, "Update a custom provider", _CUSTOM,
           CustomProviderPatch, CustomProviderOut, errors=(400, 404)),
        op("GET", "/api/events", h.list_events, "List events, newest first", _EVENTS,
           response=EventOut, many=True, params=_EVENT_FILTERS,
           headers=((TOTAL_COUNT, "events matching the filters (with returnCount=true)"),)),
        op("POST", "/api/reporting/events", h.report, "Time-bucketed request metrics", _EVENTS,
           ReportRequest, ReportOut),
        op("GET", "/api/reporting/keys/{keyId}", h.key_spend, "A key's all-time spend", _EVENTS,
           response=KeySpendOut, errors=(404,)),
        op("GET", "/api/reporting/keys", h.key_usages,
           "Every key's spend: all time and in its current costLimitInUsdUnit window", _EVENTS,
           response=KeyUsageOut, many=True, errors=(404,),
           params=(Param("keyIds", "only these keys", repeated=True),)),
    ]
    # fmt: on


def create_admin_app(
    service: AdminService,
    *,
    admin_pass: str,
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
    more: Sequence[Operation] = (),
    metrics: Metrics | None = None,
    exposition: Exposition | None = None,
) -> web.Application:
    """The admin aiohttp application; the caller runs it (and chooses host and port). `more`:
    the operations of other admin resources (policies, routes), declared in their own modules."""
    guard = AdminGuard(
        loopback_only=not admin_pass, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins
    )
    middlewares: list[Middleware] = [
        AccessLogMiddleware(metrics),  # outermost: it sees the status of problem responses too
        ProblemMiddleware(),
        guard,
        AdminAuthMiddleware(admin_pass),
        StorableInputMiddleware(),
    ]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    operations = [*_operations(AdminHandlers(service)), *more]
    document = build_document(operations, title="bricksllm admin API", version=__version__)
    document_text = json.dumps(document)
    docs_html = render_docs(document)

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(text=document_text, content_type="application/json")

    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=docs_html, content_type="text/html")

    for op in operations:
        app.router.add_route(op.method, op.path, op.handler)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/docs", docs)
    if exposition is not None:  # Prometheus scrape, behind ADMIN_PASS like everything else here
        app.router.add_get(METRICS_PATH, metrics_handler(exposition))
    add_ui_routes(app)
    return app
