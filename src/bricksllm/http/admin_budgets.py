"""The admin API's tag budgets: `PUT/GET/DELETE /api/tags/{tag}/budget`, `GET /api/tag-budgets`.

A budget's body is the limit lists a key takes (`rateLimits`, `costLimits`, `tokenLimits`);
every key carrying the tag shares it.
"""

from __future__ import annotations

from aiohttp import web

from bricksllm.domain.models import Limit
from bricksllm.http.admin_io import json_response, read_model
from bricksllm.http.admin_limits import LimitsIn, LimitsOut
from bricksllm.http.admin_schemas import Deleted
from bricksllm.http.openapi import Operation
from bricksllm.services.admin_budgets import BudgetAdmin


class BudgetOut(LimitsOut):
    tag: str

    @classmethod
    def from_domain(cls, tag: str, limits: tuple[Limit, ...]) -> BudgetOut:
        return cls(tag=tag, **LimitsOut.of(limits).model_dump())


def budget_operations(admin: BudgetAdmin) -> list[Operation]:
    async def put(request: web.Request) -> web.Response:
        body = await read_model(request, LimitsIn)
        tag = request.match_info["tag"]
        return json_response(BudgetOut.from_domain(tag, await admin.put(tag, body.to_domain())))

    async def get(request: web.Request) -> web.Response:
        tag = request.match_info["tag"]
        return json_response(BudgetOut.from_domain(tag, await admin.get(tag)))

    async def list_(request: web.Request) -> web.Response:
        return json_response([BudgetOut.from_domain(t, ls) for t, ls in (await admin.list()).items()])

    async def delete(request: web.Request) -> web.Response:
        await admin.delete(request.match_info["tag"])
        return json_response(Deleted())

    path, tag = "/api/tags/{tag}/budget", "budgets"
    op = Operation
    # fmt: off
    return [
        op("PUT", path, put, "Set (create or replace) the budget shared by every key with this tag", tag,
           LimitsIn, BudgetOut, errors=(400,)),
        op("GET", path, get, "A tag's budget", tag, response=BudgetOut, errors=(404,)),
        op("DELETE", path, delete, "Remove a tag's budget", tag, response=Deleted, errors=(404,)),
        op("GET", "/api/tag-budgets", list_, "Every tag budget", tag, response=BudgetOut, many=True),
    ]
    # fmt: on
