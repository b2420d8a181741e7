"""How a route holds answers: streams stored only once complete, cached answers encoded and
replayed event by event."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from bricksllm.services.route_answers import CachedAnswer, replay, tee

QUOTED = b'data: {"choices":[{"delta":{"content":"data: [DONE]"}}]}\n\n'
END = b"data: [DONE]\n\n"


async def stream(*chunks: bytes) -> AsyncGenerator[bytes, None]:
    for chunk in chunks:
        yield chunk


async def relayed(chunks: tuple[bytes, ...], limit: int = 1 << 20) -> tuple[bytes, list[bytes]]:
    stored: list[bytes] = []

    async def store(body: bytes) -> None:
        stored.append(body)

    sent = b"".join([c async for c in tee(stream(*chunks), limit, store)])
    return sent, stored


async def test_a_complete_stream_is_stored_once_whole() -> None:
    chunks = (b"data: {}\n\n", QUOTED, END)
    sent, stored = await relayed(chunks)
    assert sent == b"".join(chunks) and stored == [sent]


async def test_a_broken_or_oversized_stream_is_not_stored() -> None:
    assert (await relayed((b"data: {}\n\n", QUOTED)))[1] == []
    assert (await relayed((b"x" * 100, END), limit=50))[1] == []


async def test_cached_answers_round_trip_and_replay_event_by_event() -> None:
    answer = CachedAnswer(2, "text/event-stream; charset=utf-8", QUOTED + END)
    decoded = CachedAnswer.decode(answer.encode())
    assert decoded == answer and decoded.streamed
    assert [e async for e in replay(decoded.body)] == [QUOTED, END]
    assert CachedAnswer.decode(b"garbage") is None
    assert not CachedAnswer(0, "application/json", b"{}").streamed
