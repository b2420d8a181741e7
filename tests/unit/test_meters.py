"""Sans-I/O meters and the SSE splitter, fed recorded answers split at every byte.

Whatever the chunking, a meter must forward the same bytes (all of them, except the usage chunk
the gateway asked for on a client's behalf) and report the same usage."""

from __future__ import annotations

import json

import pytest

from bricksllm.domain.models import Usage
from bricksllm.domain.pricing import PriceTable
from bricksllm.providers import anthropic
from bricksllm.providers.base import Meter, Metered, Pricing, RequestView
from bricksllm.providers.custom import CustomStreamMeter, compile_location, text_at
from bricksllm.providers.meters import JsonMeter
from bricksllm.providers.openai_format import CHAT, OpenAIStreamMeter, read_usage, with_stream_usage
from bricksllm.providers.sse import EventSplitter, field


def splits(data: bytes) -> list[list[bytes]]:
    """The data whole, and cut in two at every byte."""
    return [[data]] + [[data[:i], data[i:]] for i in range(1, len(data))]


def run(meter: Meter, chunks: list[bytes]) -> tuple[bytes, Metered]:
    out = b"".join(meter.feed(c) for c in chunks)
    rest, metered = meter.finish()
    return out + rest, metered


OPENAI_USAGE = b'data: {"id":"c","model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}\n\n'  # noqa: E501
OPENAI_STREAM = (
    b'data: {"id":"c","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"role":"assistant"}}],"usage":null}\n\n'  # noqa: E501
    b'data: {"id":"c","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Hi \\"usage\\": {"}}],"usage":null}\r\n\r\n'  # noqa: E501
    + OPENAI_USAGE
    + b"data: [DONE]\n\n"
)


def test_the_splitter_keeps_every_byte_and_finds_the_same_events() -> None:
    whole = EventSplitter().split(OPENAI_STREAM)
    assert len(whole) == 4 and b"".join(whole) == OPENAI_STREAM
    for chunks in splits(OPENAI_STREAM):
        splitter = EventSplitter()
        events = [e for c in chunks for e in splitter.split(c)]
        assert events == whole and splitter.pending == b""


def test_sse_fields_join_data_lines() -> None:
    event = b'event: message\r\ndata: {"a":\ndata: 1}\r\n\r\n'
    assert (field(event, b"event"), field(event, b"data")) == (b"message", b'{"a":\n1}')


@pytest.mark.parametrize("withhold", [True, False])
def test_openai_stream_usage_at_any_chunking(withhold: bool) -> None:
    expected_out = OPENAI_STREAM.replace(OPENAI_USAGE, b"") if withhold else OPENAI_STREAM
    for chunks in splits(OPENAI_STREAM):
        out, metered = run(OpenAIStreamMeter(withhold_usage=withhold), chunks)
        assert out == expected_out
        assert metered.usage == Usage(prompt_tokens=9, completion_tokens=3, cached_prompt_tokens=4)
        assert metered.model == "gpt-4o-2024-08-06"


def test_openai_stream_without_usage_keeps_the_text_for_an_estimate() -> None:
    stream = OPENAI_STREAM.replace(OPENAI_USAGE, b"")
    for chunks in splits(stream)[::7]:
        out, metered = run(OpenAIStreamMeter(withhold_usage=True), chunks)
        assert out == stream and metered.usage is None and metered.text == 'Hi "usage": {'


RESPONSES_STREAM = (
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"Hel"}\n\n'
    b'event: response.completed\ndata: {"type":"response.completed","response":{"model":"gpt-4.1",'
    b'"usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":5},"output_tokens":8,'
    b'"output_tokens_details":{"reasoning_tokens":2}}}}\n\n'
)


def test_responses_stream_usage_comes_from_response_completed() -> None:
    for chunks in splits(RESPONSES_STREAM)[::5]:
        out, metered = run(OpenAIStreamMeter(withhold_usage=False), chunks)
        assert out == RESPONSES_STREAM
        assert metered.usage == Usage(20, 8, cached_prompt_tokens=5, reasoning_tokens=2)
        assert metered.model == "gpt-4.1"


ANTHROPIC_STREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,'
    b'"usage":{"input_tokens":25,"cache_creation_input_tokens":100,"cache_read_input_tokens":50,'
    b'"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: ping\ndata: {"type": "ping"}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hello"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":15}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def test_anthropic_stream_usage_is_split_across_start_and_delta() -> None:
    expected = Usage(prompt_tokens=175, completion_tokens=15, cached_prompt_tokens=50, cache_write_tokens=100)
    for chunks in splits(ANTHROPIC_STREAM)[::3]:
        out, metered = run(anthropic.MessagesStreamMeter(), chunks)
        assert out == ANTHROPIC_STREAM
        assert metered.usage == expected and metered.model == "claude-sonnet-4-5-20250929"


def test_anthropic_prices_cache_reads_and_writes_apart() -> None:
    usage = Usage(prompt_tokens=175, completion_tokens=15, cached_prompt_tokens=50, cache_write_tokens=100)
    micros, known = PriceTable.load("anthropic").cost("claude-sonnet-4-5-20250929", usage)
    # 25 fresh x $3 + 50 read x $0.30 + 100 written x $3.75 + 15 out x $15, per 1M tokens
    assert (micros, known) == (round(25 * 3 + 50 * 0.3 + 100 * 3.75 + 15 * 15), True)


def test_anthropic_message_delta_may_also_carry_input_usage() -> None:
    start = anthropic.read_usage({"input_tokens": 10, "output_tokens": 1})
    later = anthropic.read_usage(
        {"input_tokens": 12, "cache_read_input_tokens": 3, "output_tokens": 7}, start
    )
    assert later == Usage(prompt_tokens=15, completion_tokens=7, cached_prompt_tokens=3)


def test_legacy_anthropic_completion_stream_collects_text() -> None:
    stream = (
        b'event: completion\ndata: {"type":"completion","completion":" Hello","model":"claude-2.1"}\n\n'
        b'event: completion\ndata: {"type":"completion","completion":" world",'
        b'"stop_reason":"stop_sequence"}\n\n'
    )
    out, metered = run(anthropic.CompletionStreamMeter(), [stream[:40], stream[40:]])
    assert out == stream and metered.text == " Hello world" and metered.usage is None


def test_json_meter_reads_beyond_64_bit_integers_and_bounds_memory() -> None:
    body = b'{"model":"m","usage":{"prompt_tokens":100000000000000000000,"completion_tokens":2}}'
    _, metered = run(JsonMeter(lambda p: Metered(read_usage(p["usage"]))), splits(body)[10])
    assert metered.usage is not None and metered.usage.completion_tokens == 2
    assert metered.usage.prompt_tokens == 10**12  # clamped to the per-call maximum
    out, big = run(JsonMeter(lambda p: Metered(read_usage(p["usage"])), limit=20), [body])
    assert out == body and not big.parsed


def test_stream_usage_is_spliced_in_without_re_serialising() -> None:
    body = b'{ "model": "m", "stream": true, "seed": 123456789012345678901234567890 }'
    view = RequestView(body, json.loads(body), "m", True)
    prepared = with_stream_usage(view).body
    spliced = b'{"stream_options":{"include_usage":true}, "model": "m", "stream": true, "seed": '
    assert prepared == spliced + b"123456789012345678901234567890 }"
    merged = with_stream_usage(
        RequestView(
            b'{"stream":true,"stream_options":{"x":1},"n":99999999999999999999}', {"stream_options": {}}
        )
    ).body
    assert json.loads(merged) == {
        "stream": True,
        "stream_options": {"x": 1, "include_usage": True},
        "n": 99999999999999999999,
    }


def test_chat_kind_asks_for_stream_usage_only_when_the_client_did_not() -> None:
    asked = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    view = RequestView(json.dumps(asked).encode(), asked, "m", True)
    assert CHAT.prepare(view) is view
    plain = RequestView(b'{"model":"m"}', {"model": "m"}, "m", False)
    assert CHAT.prepare(plain) is plain


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("model", "m1"),
        ("messages.#.content", "ab"),
        ("messages.1.content", "b"),
        ("choices.0.delta.content", "x"),
        ("weird-key.inner", "w"),
        ("messages[?role=='user'].content", "b"),  # JMESPath as is
        ("missing.path", ""),
    ],
)
def test_custom_locations(location: str, expected: str) -> None:
    data = {
        "model": "m1",
        "messages": [{"role": "system", "content": "a"}, {"role": "user", "content": "b"}],
        "choices": [{"delta": {"content": "x"}}],
        "weird-key": {"inner": "w"},
    }
    assert text_at(location, data) == expected


def test_a_location_that_does_not_parse_is_refused() -> None:
    with pytest.raises(ValueError):
        compile_location("a[")


def test_custom_stream_stops_at_the_end_word_and_gives_up_on_empty_messages() -> None:
    from bricksllm.domain.models import RouteConfig

    config = RouteConfig(
        path="/chat", target_url="http://x", stream_location="stream", stream_end_word="[END]",
        stream_response_completion_location="choices.0.delta.content", stream_max_empty_messages=2,
    )  # fmt: skip
    stream = (
        b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n'
    )
    meter = CustomStreamMeter(config)
    out, metered = run(meter, [stream, b"data: [END]\n\n", b"data: after the end\n\n"])
    assert (
        out == stream + b"data: [END]\n\n" and meter.done and metered.text == "Hello" and not metered.failure
    )
    meter = CustomStreamMeter(config)
    out, metered = run(meter, [stream, b"data: \n\n", b"data:\n\n", b"data: more\n\n"])
    assert meter.done and metered.failure and out.endswith(b"data:\n\n")


def test_token_cost_prefers_a_setting_price_for_the_requested_name() -> None:
    from bricksllm.domain.models import ModelPrice
    from bricksllm.providers.openai_format import token_cost

    view = RequestView(b"", None, "my-llama")
    pricing = Pricing(PriceTable.load("none"), {"my-llama": ModelPrice(input=1.0, output=2.0)})
    assert token_cost(pricing, view, Usage(1000, 500), "served-name") == (2000, True)
    assert token_cost(Pricing(PriceTable.load("none")), view, Usage(1000, 500), "") == (0, False)


def test_stream_meters_know_when_the_answer_is_complete() -> None:
    tricky = b'data: {"choices":[{"index":0,"delta":{"content":"data: [DONE] is the end marker"}}]}\n\n'
    for chunks in splits(tricky + OPENAI_STREAM)[::11]:
        meter = OpenAIStreamMeter(withhold_usage=False)
        seen_done = []
        for chunk in chunks:
            meter.feed(chunk)
            seen_done.append(meter.done)
        assert seen_done[-1] and not any(seen_done[:-1])  # only the real terminator
    meter = OpenAIStreamMeter(withhold_usage=False)
    meter.feed(tricky)
    assert not meter.done
    meter = anthropic.MessagesStreamMeter()
    meter.feed(ANTHROPIC_STREAM.rsplit(b"event: message_stop", 1)[0])
    assert not meter.done
    meter.feed(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert meter.done
    meter = OpenAIStreamMeter(withhold_usage=False)
    meter.feed(RESPONSES_STREAM)
    assert meter.done  # response.completed ends a Responses stream
