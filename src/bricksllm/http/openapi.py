"""The admin API's route table type and the OpenAPI 3.1 document and docs page built from it.

`admin_app` declares its endpoints once, as `Operation`s; the same list registers the aiohttp
routes and produces `/openapi.json` (schemas straight from the Pydantic models, so the document
cannot drift from what the handlers accept) and `/docs`, a self-contained HTML page (no CDN,
no script) listing the operations and the schemas.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bricksllm.http.admin_schemas import Problem
from bricksllm.http.problems import Handler

REF = "#/components/schemas/{model}"


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    description: str
    where: Literal["query", "path"] = "query"
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    repeated: bool = False  # may be given several times (and comma-separated)


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    many: bool = False  # the response is an array of `response`
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = (400,)
    public: bool = False  # reachable without X-API-KEY
    headers: tuple[tuple[str, str], ...] = ()  # (response header, description)
    document: bool = True  # listed in the OpenAPI document

    @property
    def operation_id(self) -> str:
        words = re.findall(r"[a-z0-9]+", f"{self.method.lower()} {self.path.lower()}")
        return "_".join(words)


_STATUS_TEXT = {
    400: "Invalid request",
    401: "Missing or wrong X-API-KEY",
    404: "Not found",
    413: "Body too large",
}


def _schemas(operations: Sequence[Operation]) -> tuple[dict[Any, Any], dict[str, Any]]:
    """(model, mode) -> its $ref, and every component schema."""
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Problem, "serialization"): None}
    for op in operations:
        if op.body is not None:
            wanted[(op.body, "validation")] = None
        if op.response is not None:
            wanted[(op.response, "serialization")] = None
    refs, defs = models_json_schema(list(wanted), ref_template=REF)
    return dict(refs), defs.get("$defs", {})


def build_document(operations: Sequence[Operation], *, title: str, version: str) -> dict[str, Any]:
    refs, components = _schemas(operations)
    problem = {"application/problem+json": {"schema": refs[(Problem, "serialization")]}}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        if not op.document:
            continue
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", op.path)
        ]
        for p in op.params:
            schema = {"type": "array", "items": p.schema} if p.repeated else p.schema
            params.append(
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.where == "path",
                    "description": p.description,
                    "schema": schema,
                    "explode": True,
                }
            )
        ok: dict[str, Any] = {"description": "OK"}
        if op.response is not None:
            schema = refs[(op.response, "serialization")]
            ok["content"] = {
                "application/json": {"schema": {"type": "array", "items": schema} if op.many else schema}
            }
        if op.headers:
            ok["headers"] = {
                name: {"description": text, "schema": {"type": "integer"}} for name, text in op.headers
            }
        responses: dict[str, Any] = {"200": ok}
        statuses = set(op.errors) | ({413} if op.body else set()) | (set() if op.public else {401})
        for status in sorted(statuses):
            responses[str(status)] = {"description": _STATUS_TEXT.get(status, "Error"), "content": problem}
        responses["default"] = {"description": "Unexpected error", "content": problem}
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "responses": responses,
        }
        if params:
            entry["parameters"] = params
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        if op.public:
            entry["security"] = []
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Configuration and reporting API of the bricksllm gateway. When ADMIN_PASS is "
            "set, every request except /api/health must carry it in the X-API-KEY header. Errors are "
            "application/problem+json.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"adminPass": {"type": "apiKey", "in": "header", "name": "X-API-KEY"}},
        },
        "security": [{"adminPass": []}],
    }


def _ref_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"[{_ref_name(schema.get('items', {}))}]"
    return str(schema.get("type", ""))


def render_docs(document: dict[str, Any]) -> str:
    """A self-contained HTML page: one table of operations, then every schema as JSON."""
    e = html.escape
    rows = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            ok = op["responses"]["200"].get("content", {}).get("application/json", {}).get("schema")
            params = ", ".join(p["name"] for p in op.get("parameters", []) if p["in"] == "query")
            rows.append(
                f"<tr><td><code>{e(method.upper())}</code></td><td><code>{e(path)}</code></td>"
                f"<td>{e(op['summary'])}</td><td>{e(params)}</td>"
                f"<td>{e(_ref_name(body)) if body else ''}</td><td>{e(_ref_name(ok)) if ok else ''}</td></tr>"
            )
    schemas = "".join(
        f'<h3 id="{e(name)}">{e(name)}</h3><pre>{e(json.dumps(schema, indent=2))}</pre>'
        for name, schema in document["components"]["schemas"].items()
    )
    info = document["info"]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{e(info['title'])}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
        "pre{background:#f6f6f6;padding:.6em;overflow:auto}</style></head><body>"
        f"<h1>{e(info['title'])} {e(info['version'])}</h1><p>{e(info['description'])}</p>"
        '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>'
        "<h2>Operations</h2><table><tr><th>Method</th><th>Path</th><th>Summary</th><th>Query</th>"
        f"<th>Request body</th><th>Response</th></tr>{''.join(rows)}</table>"
        f"<h2>Schemas</h2>{schemas}</body></html>"
    )
