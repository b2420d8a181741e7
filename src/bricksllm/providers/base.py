"""The provider plug-in interface.

A provider knows its routes (which client paths exist and what kind of call each is), how to
authenticate upstream with a provider setting, and how to read token usage from its responses.
Everything else (keys, limits, pricing, events, relaying bytes) is the gateway's and is shared.
Adding Anthropic, Azure or vLLM means adding one module that implements this and registering it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from bricksllm.domain.models import ProviderSetting, Usage


@dataclass(frozen=True, slots=True)
class Operation:
    """One route of a provider, matched from the client's method and path."""

    method: str
    pattern: str  # full route pattern, as used in allowedPaths, e.g. /api/providers/openai/v1/files/:file_id
    kind: str  # chat, completions, responses, embeddings, images, speech, transcription, upload, passthrough
    upstream_path: str  # concrete path on the upstream, e.g. /v1/files/file-abc


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: str  # relative to the provider prefix, with :params
    kind: str


class Provider(Protocol):
    name: str
    prefix: str  # e.g. /api/providers/openai
    default_base_url: str

    def match(self, method: str, path: str) -> Operation | None: ...
    def auth_headers(self, setting: ProviderSetting) -> dict[str, str]: ...
    def prepare_body(self, op: Operation, parsed: dict[str, Any]) -> bool:
        """Adjust a parsed JSON body in place before forwarding (e.g. ask for stream usage).
        Returns True when the body changed and must be re-serialised."""
        ...

    def usage(self, op: Operation, body: dict[str, Any]) -> Usage | None: ...
    def stream_usage(self, op: Operation, event: dict[str, Any]) -> Usage | None: ...
    def stream_text(self, op: Operation, event: dict[str, Any]) -> str: ...


class RouteTable:
    """Matches a method and a path against route patterns: static paths by dict, others by regex."""

    def __init__(self, prefix: str, routes: list[Route]) -> None:
        self._prefix = prefix
        self._static: dict[tuple[str, str], Route] = {}
        self._dynamic: list[tuple[str, re.Pattern[str], Route]] = []
        for r in routes:
            if ":" in r.pattern:
                regex = re.sub(r":[a-z_]+", r"[^/]+", r.pattern)
                self._dynamic.append((r.method, re.compile(f"^{regex}$"), r))
            else:
                self._static[(r.method, r.pattern)] = r

    def match(self, method: str, path: str) -> Route | None:
        """`path` is relative to the prefix (e.g. /v1/files/abc)."""
        route = self._static.get((method, path))
        if route is not None:
            return route
        for m, regex, r in self._dynamic:
            if m == method and regex.match(path):
                return r
        return None

    def paths(self) -> set[str]:
        return {r.pattern for r in self._static.values()} | {r.pattern for _, _, r in self._dynamic}
