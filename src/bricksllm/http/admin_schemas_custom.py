"""Pydantic models of the custom-provider endpoints (snake_case JSON, as in the reference).

A custom provider is data, not code: a name and route configs telling the proxy where to send a
path and where in the JSON to find the model, the prompt and the completion. The whole-object
rules (unique paths, stream fields together, http(s) targets) live in `services.admin_rules` so
they also hold after a PATCH merge.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from bricksllm.domain.models import CustomProvider, RouteConfig
from bricksllm.http.admin_schemas import Count, NonEmpty, Request, Response

_PATH = Field(description="path under /api/custom/providers/{provider}; starts with /, unique per provider")


class RouteConfigPatch(Request):
    """A route config in a PATCH: `path` selects the config to change (or to append); the other
    fields present replace the stored ones."""

    path: NonEmpty = _PATH
    target_url: str = Field("", description="http(s) URL requests on this path are sent to")
    model_location: str = Field("", description="JSON path of the model in the request, e.g. model")
    request_prompt_location: str = Field("", description="JSON path of the prompt, e.g. messages.#.content")
    response_completion_location: str = Field(
        "", description="JSON path of the completion in the response, e.g. choices.#.message.content"
    )
    stream_location: str = Field("", description="JSON path of the stream flag in the request, e.g. stream")
    stream_end_word: str = Field("", description="data line that ends a stream, e.g. [DONE]")
    stream_response_completion_location: str = Field(
        "", description="JSON path of the completion in a stream chunk, e.g. choices.#.delta.content"
    )
    stream_max_empty_messages: Count = 0

    def present_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set | {"path"}}


class RouteConfigIn(RouteConfigPatch):
    target_url: NonEmpty = Field(description="http(s) URL requests on this path are sent to")
    model_location: NonEmpty
    request_prompt_location: NonEmpty
    response_completion_location: NonEmpty

    def to_domain(self) -> RouteConfig:
        return RouteConfig(**self.model_dump())


class CustomProviderPatch(Request):
    route_configs: list[RouteConfigPatch] = []
    authentication_param: str = ""


class CustomProviderCreate(Request):
    provider: Annotated[NonEmpty, AfterValidator(str.lower)] = Field(
        description="unique name, no whitespace, stored lower-case; not a built-in provider's name"
    )
    route_configs: list[RouteConfigIn] = Field(min_length=1)
    authentication_param: str = Field(
        "", description="the setting entry holding the credential for this provider, e.g. apikey"
    )


class RouteConfigOut(Response):
    path: str
    target_url: str
    model_location: str
    request_prompt_location: str
    response_completion_location: str
    stream_location: str
    stream_end_word: str
    stream_response_completion_location: str
    stream_max_empty_messages: int


class CustomProviderOut(Response):
    id: str
    created_at: int
    updated_at: int
    provider: str
    route_configs: list[RouteConfigOut]
    authentication_param: str

    @classmethod
    def from_domain(cls, p: CustomProvider) -> CustomProviderOut:
        return cls(
            id=p.id,
            created_at=p.created_at,
            updated_at=p.updated_at,
            provider=p.provider,
            route_configs=[RouteConfigOut.model_validate(rc, from_attributes=True) for rc in p.route_configs],
            authentication_param=p.authentication_param,
        )
