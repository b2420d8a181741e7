"""The admin API's PII policies: request and response models, handlers and their operations.

A policy's rules (`config`, `regexConfig`, `customConfig`, `failOpen`, `scanResponses`) are taken
as JSON and validated by the domain, which names every bad field (`config.rules.nmae`,
`regexConfig.rules[0].definition`); the envelope (name, tags) is checked here.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from bricksllm.domain.models import PolicyRecord
from bricksllm.http.admin_io import json_response, multi, read_model
from bricksllm.http.admin_schemas import CamelRequest, CamelResponse, Deleted, NonEmpty
from bricksllm.http.openapi import Operation, Param
from bricksllm.services.admin_policies import RULE_FIELDS, PolicyAdmin

_RULES = Field(None, description="see the README's PII section")


class PolicyPatch(CamelRequest):
    name: str = ""
    tags: list[NonEmpty] = []
    config: dict[str, Any] | None = Field(None, description='{"rules": {"<entity>": "<action>"}}')
    regex_config: dict[str, Any] | None = Field(
        None, description='{"rules": [{"definition": "<RE2 pattern>", "action": "<action>"}]}'
    )
    custom_config: dict[str, Any] | None = _RULES
    fail_open: bool | None = Field(None, description="engine failure: forward (true) or 503 (false)")
    scan_responses: bool | None = Field(None, description="also screen non-streamed answers")

    def rules(self) -> dict[str, Any]:
        """The rule sections present in the request, by their JSON names."""
        data = self.model_dump(by_alias=True, exclude_unset=True)
        return {k: v for k, v in data.items() if k in RULE_FIELDS}


class PolicyCreate(PolicyPatch):
    name: NonEmpty


class PolicyOut(CamelResponse):
    id: str
    name: str
    tags: list[str]
    config: dict[str, Any]
    regex_config: dict[str, Any]
    custom_config: dict[str, Any]
    fail_open: bool
    scan_responses: bool
    created_at: int
    updated_at: int

    @classmethod
    def from_domain(cls, p: PolicyRecord) -> PolicyOut:
        d = p.document
        return cls(
            id=p.id, name=p.name, tags=list(p.tags), config=d["config"], regex_config=d["regexConfig"],
            custom_config=d["customConfig"], fail_open=d["failOpen"], scan_responses=d["scanResponses"],
            created_at=p.created_at, updated_at=p.updated_at,
        )  # fmt: skip


def policy_operations(admin: PolicyAdmin) -> list[Operation]:
    async def create(request: web.Request) -> web.Response:
        body = await read_model(request, PolicyCreate)
        return json_response(PolicyOut.from_domain(await admin.create(body.name, body.tags, body.rules())))

    async def update(request: web.Request) -> web.Response:
        body = await read_model(request, PolicyPatch)
        given = body.model_fields_set
        policy = await admin.update(
            request.match_info["id"],
            name=body.name if "name" in given else None,
            tags=body.tags if "tags" in given else None,
            rules=body.rules(),
        )
        return json_response(PolicyOut.from_domain(policy))

    async def get(request: web.Request) -> web.Response:
        return json_response(PolicyOut.from_domain(await admin.get(request.match_info["id"])))

    async def list_(request: web.Request) -> web.Response:
        found = await admin.list(tags=multi(request.query, "tags"), ids=multi(request.query, "ids"))
        return json_response([PolicyOut.from_domain(p) for p in found])

    async def delete(request: web.Request) -> web.Response:
        await admin.delete(request.match_info["id"])
        return json_response(Deleted())

    path, tag = "/api/policies", "policies"
    filters = (
        Param("tags", "policies carrying all these tags", repeated=True),
        Param("ids", "only these policies", repeated=True),
    )
    op = Operation
    # fmt: off
    return [
        op("POST", path, create, "Create a PII policy", tag, PolicyCreate, PolicyOut),
        op("GET", path, list_, "List policies: all, or those matching every filter", tag,
           response=PolicyOut, many=True, params=filters),
        op("GET", path + "/{id}", get, "A policy", tag, response=PolicyOut, errors=(404,)),
        op("PATCH", path + "/{id}", update, "Update a policy (rule sections present replace theirs)", tag,
           PolicyPatch, PolicyOut, errors=(400, 404)),
        op("DELETE", path + "/{id}", delete, "Delete a policy no key uses", tag,
           response=Deleted, errors=(404, 409)),
    ]
    # fmt: on
