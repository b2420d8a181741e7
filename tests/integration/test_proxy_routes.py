"""Every OpenAI route family through the official SDK: bodies (JSON, multipart, binary), query
strings, methods and status codes pass through unchanged, and billable calls are priced."""

from __future__ import annotations

import openai
import pytest

from tests.integration.conftest import Running
from tests.integration.mock_openai import MockOpenAI
from tests.integration.test_proxy_quickstart import sdk


@pytest.fixture
async def client(gateway: Running, mock_openai: MockOpenAI) -> openai.AsyncOpenAI:
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    return sdk(gateway)


async def _costs(gw: Running) -> dict[str, float]:
    await gw.flush_events()
    _, events = await gw.admin("GET", "/api/events?tags=t1&limit=1000")
    return {e["path"].split("/v1/", 1)[1]: e["cost_in_usd"] for e in events}


async def test_models_and_moderations(client: openai.AsyncOpenAI, mock_openai: MockOpenAI) -> None:
    models = await client.models.list()
    assert [m.id async for m in models] == ["gpt-4o-mini"]
    assert (await client.models.retrieve("gpt-4o")).id == "gpt-4o"
    result = await client.moderations.create(input="hello")
    assert result.results[0].flagged is False


async def test_embeddings_base64_default_is_priced(
    client: openai.AsyncOpenAI, gateway: Running, mock_openai: MockOpenAI
) -> None:
    result = await client.embeddings.create(model="text-embedding-3-small", input=["text"] * 100)
    assert len(result.data) == 100 and result.data[0].embedding == [1.0, 2.0, 3.0]
    assert mock_openai.last("/embeddings").json()["encoding_format"] == "base64"
    costs = await _costs(gateway)
    assert costs["embeddings"] == pytest.approx(500 * 0.02 / 1e6)  # 500 tokens at $0.02 / 1M


async def test_legacy_completions(client: openai.AsyncOpenAI) -> None:
    result = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say ok")
    assert result.choices[0].text == "ok"


async def test_responses_non_stream(client: openai.AsyncOpenAI, gateway: Running) -> None:
    result = await client.responses.create(model="gpt-4.1-mini", input="hi")
    assert result.output_text == "Hello!"
    costs = await _costs(gateway)
    assert costs["responses"] == pytest.approx(round(8 * 0.4 + 3 * 0.1 + 7 * 1.6) / 1e6)


async def test_files_upload_list_content_delete(client: openai.AsyncOpenAI, mock_openai: MockOpenAI) -> None:
    payload = b'{"prompt": "x"}\n' * 1000
    created = await client.files.create(file=("data.jsonl", payload), purpose="batch")
    assert created.bytes == len(payload) and created.filename == "data.jsonl"
    assert mock_openai.file_contents[created.id] == payload
    listed = await client.files.list(purpose="batch")
    assert [f.id async for f in listed] == [created.id]
    assert mock_openai.last("/v1/files").query == "purpose=batch"
    content = await client.files.content(created.id)
    assert content.content == payload
    deleted = await client.files.delete(created.id)
    assert deleted.deleted is True


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks the Assistants API deprecated
async def test_assistants_threads_messages_runs(client: openai.AsyncOpenAI, mock_openai: MockOpenAI) -> None:
    beta = client.beta
    await beta.assistants.create(model="gpt-4o", instructions="be nice")
    await beta.assistants.list(limit=5)
    assert mock_openai.last("/v1/assistants").query == "limit=5"
    await beta.threads.create()
    await beta.threads.messages.create("thread_1", role="user", content="hi")
    await beta.threads.runs.create("thread_1", assistant_id="asst_1")
    await beta.threads.runs.cancel("run_1", thread_id="thread_1")
    await beta.threads.runs.submit_tool_outputs("run_1", thread_id="thread_1", tool_outputs=[])
    await beta.threads.runs.steps.list("run_1", thread_id="thread_1")
    await beta.threads.delete("thread_1")
    paths = [(r.method, r.path) for r in mock_openai.requests]
    assert ("POST", "/v1/threads/thread_1/runs/run_1/cancel") in paths
    assert ("POST", "/v1/threads/thread_1/runs/run_1/submit_tool_outputs") in paths
    assert ("GET", "/v1/threads/thread_1/runs/run_1/steps") in paths
    assert ("DELETE", "/v1/threads/thread_1") in paths
    beta_header = {k.lower(): v for k, v in mock_openai.last("/v1/assistants").headers.items()}["openai-beta"]
    assert beta_header == "assistants=v2"
    assert "content-type" not in {
        k.lower() for k in mock_openai.last("/v1/assistants").headers
    }  # GET: no body


async def test_batches_and_vector_stores_keep_query_strings(
    client: openai.AsyncOpenAI, mock_openai: MockOpenAI
) -> None:
    await client.batches.create(
        input_file_id="file-1", endpoint="/v1/chat/completions", completion_window="24h"
    )
    await client.batches.list(limit=2, after="batch_1")
    assert mock_openai.last("/v1/batches").query == "after=batch_1&limit=2"
    await client.vector_stores.create(name="docs")
    await client.vector_stores.list(limit=3, order="asc")
    assert mock_openai.last("/v1/vector_stores").query == "limit=3&order=asc"
    await client.vector_stores.files.list("vs_1", limit=1)
    assert mock_openai.last("/v1/vector_stores/vs_1/files").query == "limit=1"


async def test_images_and_audio(
    client: openai.AsyncOpenAI, gateway: Running, mock_openai: MockOpenAI
) -> None:
    images = await client.images.generate(model="dall-e-3", prompt="a cat", n=1, size="1024x1024")
    assert images.data[0].url == "https://img.example/0.png"
    speech = await client.audio.speech.create(model="tts-1", voice="alloy", input="x" * 1000)
    assert speech.content == b"ID3\x00fake-mp3-bytes"
    text = await client.audio.transcriptions.create(
        model="whisper-1", file=("a.mp3", b"RIFF" + b"0" * 2048), response_format="verbose_json"
    )
    assert text.text == "hello world"
    costs = await _costs(gateway)
    assert costs["images/generations"] == pytest.approx(0.04)  # dall-e-3 standard 1024x1024
    assert costs["audio/speech"] == pytest.approx(1000 * 15 / 1e6)  # tts-1: $15 / 1M characters
    assert costs["audio/transcriptions"] == pytest.approx(1.5 * 0.006)  # 90 s of whisper-1 at $0.006 / min
