"""What a finished call cost, per kind of operation, from the usage the upstream reported.

Token prices come from the domain price table (a per-setting override wins). Images, speech and
transcriptions are billed by the units OpenAI bills them in. When a stream ended without a
usage report (client went away, upstream cut off) the tokens are counted with tiktoken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bricksllm.domain import tokens
from bricksllm.domain.models import Usage
from bricksllm.domain.pricing import PriceTable

if TYPE_CHECKING:
    from bricksllm.services.proxy import Call


def cost_micros(
    table: PriceTable, call: Call, usage: Usage | None, response: dict[str, Any] | None
) -> tuple[int, bool]:
    """(cost in micro-dollars, whether the model was in the price table)."""
    assert call.op is not None and call.setting is not None
    kind = call.op.kind
    overrides = call.setting.prices
    response = response or {}
    resp_model = response.get("model")
    model = resp_model if isinstance(resp_model, str) and resp_model else call.model
    body = call.parsed or {}
    if kind in ("chat", "completions", "responses", "embeddings"):
        return table.cost(model, usage, overrides) if usage is not None else (0, True)
    if kind in ("images", "images_multipart"):
        details = response.get("usage")
        if isinstance(details, dict):
            inputs = details.get("input_tokens_details") or {}
            return table.image_token_cost_micros(
                model or "gpt-image-1",
                text_tokens=int(inputs.get("text_tokens") or 0),
                image_tokens=int(inputs.get("image_tokens") or 0),
                output_tokens=int(details.get("output_tokens") or 0),
            )
        data = response.get("data")
        n = len(data) if isinstance(data, list) else int(body.get("n") or 1)
        size, quality = body.get("size"), body.get("quality")
        return table.image_cost_micros(
            model or "dall-e-2",
            size if isinstance(size, str) else None,
            quality if isinstance(quality, str) else None,
            n,
        )
    if kind == "speech":
        text = body.get("input")
        return table.speech_cost_micros(model, len(text) if isinstance(text, str) else 0)
    if kind == "transcription":
        if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
            return table.cost(model, usage, overrides)
        seconds = _seconds(response)
        return table.audio_transcription_cost_micros(model, seconds) if seconds else (0, True)
    return 0, True


def _seconds(response: dict[str, Any]) -> float:
    duration = response.get("duration")
    if isinstance(duration, int | float):
        return float(duration)
    usage = response.get("usage")
    if isinstance(usage, dict) and usage.get("type") == "duration":
        seconds = usage.get("seconds")
        if isinstance(seconds, int | float):
            return float(seconds)
    return 0.0


def estimate_usage(call: Call, completion_text: str) -> Usage:
    """Token counts for a stream that ended without a usage report (tiktoken, offline)."""
    body = call.parsed or {}
    model = call.model
    if call.op is not None and call.op.kind == "responses":
        prompt = body.get("input")
        prompt_tokens = (
            tokens.count_text(model, prompt)
            if isinstance(prompt, str)
            else tokens.count_chat_prompt(model, prompt if isinstance(prompt, list) else [])
        )
    elif isinstance(body.get("messages"), list):
        tools = body.get("tools") or body.get("functions")
        prompt_tokens = tokens.count_chat_prompt(
            model, body["messages"], tools if isinstance(tools, list) else None
        )
    else:
        prompt = body.get("prompt")
        prompt_tokens = tokens.count_text(model, prompt if isinstance(prompt, str) else "")
    return Usage(
        prompt_tokens=prompt_tokens, completion_tokens=tokens.count_completion(model, completion_text)
    )


def multipart_field(body: bytes, content_type: str, name: str) -> str:
    """The value of a small text field of a multipart/form-data body ("" when absent)."""
    marker = "boundary="
    at = content_type.find(marker)
    if at < 0:
        return ""
    boundary = content_type[at + len(marker) :].split(";")[0].strip().strip('"').encode()
    needle = f'name="{name}"'.encode()
    for part in body.split(b"--" + boundary):
        head, sep, value = part.partition(b"\r\n\r\n")
        if sep and needle in head and b"filename=" not in head:
            return value.rstrip(b"\r\n").decode(errors="replace").strip()
    return ""
