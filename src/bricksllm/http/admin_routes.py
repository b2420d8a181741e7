"""The admin API's routes: request and response models, handlers and their operations.

The shape of each field is checked here (strict types, no unknown fields); durations, keys,
settings, providers and the path's uniqueness by `services.admin_routes`, on the merged route.
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from bricksllm.domain.routes import MAX_RETRIES, Route, RouteStep
from bricksllm.http.admin_io import json_response, read_model
from bricksllm.http.admin_schemas import CamelRequest, CamelResponse, Deleted, NonEmpty
from bricksllm.http.openapi import Operation
from bricksllm.services.admin_routes import RouteAdmin, StepInput

_DURATION = "a duration: seconds or a number with a unit ms, s, m, h, d (e.g. 500ms, 2s)"


class StepIn(CamelRequest):
    provider: NonEmpty = Field(description="openai, azure, vllm or deepinfra")
    model: NonEmpty = Field(description="replaces the body's model (Azure: the deployment)")
    setting_id: str = Field("", description='the provider setting to use; "" = the key\'s for the provider')
    retries: Annotated[int, Field(ge=0, le=MAX_RETRIES)] = Field(0, description="attempts after the first")
    retry_interval: str = Field("", description=f"wait between attempts, {_DURATION}; '' = none")
    timeout: str = Field("", description=f"per attempt, {_DURATION}; '' = PROXY_TIMEOUT")
    params: dict[str, Any] = Field({}, description="merged into the request body (the step's values win)")

    def to_input(self) -> StepInput:
        return StepInput(
            self.provider, self.model, self.setting_id, self.retries, self.retry_interval, self.timeout,
            self.params,
        )  # fmt: skip


class CacheConfigIn(CamelRequest):
    enabled: bool = False
    ttl: str = Field("", description=f"how long an answer is kept, {_DURATION}, at most 30d; '' = 1h")


class RoutePatch(CamelRequest):
    name: NonEmpty = ""
    path: str = Field("", description="served at POST /api/routes{path}; starts with /, unique")
    key_ids: list[NonEmpty] = Field([], description="the keys allowed to call the route")
    steps: list[StepIn] = Field([], description="tried in order until one answers")
    retry_strategy: str = Field("constant", description="constant or exponential (the interval doubles)")
    cache_config: CacheConfigIn | None = None

    def changes(self) -> dict[str, Any]:
        given = self.model_fields_set
        out: dict[str, Any] = {
            f: getattr(self, f) for f in ("name", "path", "key_ids", "retry_strategy") if f in given
        }
        if "steps" in given:
            out["steps"] = [s.to_input() for s in self.steps]
        if self.cache_config is not None:
            out["cache_enabled"] = self.cache_config.enabled
            out["cache_ttl_text"] = self.cache_config.ttl
        return out


class RouteCreate(RoutePatch):
    name: NonEmpty
    path: str
    key_ids: list[NonEmpty]
    steps: list[StepIn]


class StepOut(CamelResponse):
    provider: str
    model: str
    setting_id: str
    retries: int
    retry_interval: str
    timeout: str
    params: dict[str, Any]

    @classmethod
    def from_domain(cls, s: RouteStep) -> StepOut:
        return cls(
            provider=s.provider, model=s.model, setting_id=s.setting_id, retries=s.retries,
            retry_interval=s.retry_interval, timeout=s.timeout, params=s.params,
        )  # fmt: skip


class CacheConfigOut(CamelResponse):
    enabled: bool
    ttl: str


class RouteOut(CamelResponse):
    id: str
    name: str
    path: str
    key_ids: list[str]
    steps: list[StepOut]
    retry_strategy: str
    cache_config: CacheConfigOut
    created_at: int
    updated_at: int

    @classmethod
    def from_domain(cls, r: Route) -> RouteOut:
        return cls(
            id=r.id, name=r.name, path=r.path, key_ids=list(r.key_ids),
            steps=[StepOut.from_domain(s) for s in r.steps], retry_strategy=r.retry_strategy,
            cache_config=CacheConfigOut(enabled=r.cache_enabled, ttl=r.cache_ttl),
            created_at=r.created_at, updated_at=r.updated_at,
        )  # fmt: skip


def route_operations(admin: RouteAdmin) -> list[Operation]:
    async def create(request: web.Request) -> web.Response:
        body = await read_model(request, RouteCreate)
        cache = body.cache_config or CacheConfigIn.model_validate({})
        route = await admin.create(
            name=body.name, path=body.path, key_ids=body.key_ids, steps=[s.to_input() for s in body.steps],
            retry_strategy=body.retry_strategy, cache_enabled=cache.enabled, cache_ttl_text=cache.ttl,
        )  # fmt: skip
        return json_response(RouteOut.from_domain(route))

    async def update(request: web.Request) -> web.Response:
        body = await read_model(request, RoutePatch)
        return json_response(
            RouteOut.from_domain(await admin.update(request.match_info["id"], body.changes()))
        )

    async def get(request: web.Request) -> web.Response:
        return json_response(RouteOut.from_domain(await admin.get(request.match_info["id"])))

    async def list_(request: web.Request) -> web.Response:
        return json_response([RouteOut.from_domain(r) for r in await admin.list()])

    async def delete(request: web.Request) -> web.Response:
        await admin.delete(request.match_info["id"])
        return json_response(Deleted())

    path, tag = "/api/routes", "routes"
    op = Operation
    # fmt: off
    return [
        op("POST", path, create, "Create a route (retries, failover, cache)", tag, RouteCreate, RouteOut,
           errors=(400, 409)),
        op("GET", path, list_, "List routes", tag, response=RouteOut, many=True, errors=()),
        op("GET", path + "/{id}", get, "A route", tag, response=RouteOut, errors=(404,)),
        op("PATCH", path + "/{id}", update, "Update a route (fields present replace theirs)", tag,
           RoutePatch, RouteOut, errors=(400, 404, 409)),
        op("DELETE", path + "/{id}", delete, "Delete a route", tag, response=Deleted, errors=(404,)),
    ]
    # fmt: on
