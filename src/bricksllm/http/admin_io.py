"""Reading and writing admin API bodies and query parameters, shared by its handler modules.

Bodies must be a JSON object whose strings every database can store (lone surrogates and NUL are
refused here, naming the field) before a Pydantic model validates them; responses are the
models' JSON. Query parameters may repeat and hold comma-separated values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TypeVar

from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel

from bricksllm.domain.text import is_storable
from bricksllm.errors import Invalid
from bricksllm.http.admin_schemas import MAX_COUNT
from bricksllm.http.problems import BadJson

M = TypeVar("M", bound=BaseModel)
_INTEGER = re.compile(r"-?\d{1,16}")


async def read_model(request: web.Request, model: type[M]) -> M:
    raw = await request.read()  # raises HTTPRequestEntityTooLarge beyond client_max_size
    if not raw.strip():
        raise BadJson("the request body is empty: send a JSON object")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        where = (
            f" ({exc.msg} at line {exc.lineno} column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise BadJson(f"the request body is not valid JSON{where}") from None
    if not isinstance(data, dict):
        raise BadJson("the request body must be a JSON object")
    bad = list(unstorable_fields(data))
    if bad:
        raise Invalid(
            f"{', '.join(bad)}: text must be valid Unicode without NUL characters",
            fields=list(dict.fromkeys(bad)),
        )
    return model.model_validate(data)


def unstorable_fields(value: object, name: str = "") -> Iterator[str]:
    """The names (JSON paths, as in validation errors) of strings no database can store: lone
    surrogates (JSON `\\ud800` escapes) and NUL. A bad object key is reported on its object."""
    if isinstance(value, str):
        if not is_storable(value):
            yield name or "body"
    elif isinstance(value, dict):
        for key, item in value.items():
            if not is_storable(key):
                yield name or "body"
                continue
            yield from unstorable_fields(item, f"{name}.{key}" if name else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from unstorable_fields(item, f"{name}[{i}]")


def json_response(data: BaseModel | list[BaseModel]) -> web.Response:
    if isinstance(data, list):
        text = "[" + ",".join(item.model_dump_json() for item in data) + "]"
    else:
        text = data.model_dump_json()
    return web.Response(text=text, content_type="application/json")


def multi(query: MultiMapping[str], name: str) -> tuple[str, ...]:
    """All values of a repeatable query parameter, comma-separated values split, duplicates dropped."""
    values = [v.strip() for raw in query.getall(name, []) for v in raw.split(",")]
    return tuple(dict.fromkeys(v for v in values if v))


def integer(query: MultiMapping[str], name: str) -> int | None:
    raw = query.get(name, "").strip()
    if not raw:
        return None
    if not _INTEGER.fullmatch(raw) or abs(int(raw)) > MAX_COUNT:
        raise Invalid(f"{name}: must be a whole number", fields=[name])
    return int(raw)
