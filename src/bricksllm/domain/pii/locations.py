"""Where the client's text sits in each kind of request (and the model's text in a response),
and how to write redacted text back without touching anything else.

`request_texts(kind, body)` lists every text field with its path in the parsed JSON body; shapes it
does not recognise are skipped, never guessed at. `rebuild(body, {path: text})` returns a new body
in which only those strings differ: containers on a replaced path are copied (dicts keep their key
order), every other value - tools, `response_format`, fields added by providers next year, numbers -
is the very same object as before. The original body is never mutated.

Custom providers name their prompt with gjson-style paths (`messages.#.content`): keys separated
by dots, `#` for every element of an array, a number for one element, `\\.` for a dot inside a key.
That subset is parsed here rather than taken from a JSON-path library because redaction needs the
location of each string to write it back, not only its value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Slot:
    path: Path
    text: str


class RequestKind(StrEnum):
    CHAT = "chat"  # messages[].content: OpenAI, Azure, vLLM, Deepinfra chat, routes
    RESPONSES = "responses"  # instructions, input (string or items)
    COMPLETIONS = "completions"  # prompt (string or list): legacy completions, Anthropic complete
    EMBEDDINGS = "embeddings"  # input (string or list of strings)
    ANTHROPIC_MESSAGES = "anthropic_messages"  # system + messages[].content (string or blocks)
    ASSISTANT = "assistant"  # instructions (create / modify an assistant)
    THREAD = "thread"  # messages[].content (create a thread)
    THREAD_AND_RUN = "thread_and_run"  # instructions, additional_instructions, thread.messages
    MESSAGE = "message"  # content (add a message to a thread)
    RUN = "run"  # instructions, additional_instructions, additional_messages[].content
    CUSTOM = "custom"  # the custom provider's request_prompt_location paths


class ResponseKind(StrEnum):
    CHAT = "chat"  # choices[].message.content
    COMPLETIONS = "completions"  # choices[].text
    RESPONSES = "responses"  # output[].content[].text
    ANTHROPIC_MESSAGES = "anthropic_messages"  # content[].text
    ANTHROPIC_COMPLETE = "anthropic_complete"  # completion
    CUSTOM = "custom"  # the custom provider's response_completion_location paths


_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


def _string(node: Any, path: Path, out: list[Slot]) -> None:
    if isinstance(node, str):
        out.append(Slot(path, node))


def _strings(node: Any, path: Path, out: list[Slot]) -> None:
    """A string, or a list whose string elements are texts (embeddings input, prompt lists)."""
    if isinstance(node, str):
        out.append(Slot(path, node))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, str):
                out.append(Slot((*path, i), item))


def _content(node: Any, path: Path, out: list[Slot]) -> None:
    """A message content: a string or a list of parts whose text parts carry `text`; Anthropic
    tool results nest a content of their own."""
    if isinstance(node, str):
        out.append(Slot(path, node))
        return
    if not isinstance(node, list):
        return
    for i, part in enumerate(node):
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in _TEXT_PART_TYPES:
            _string(part.get("text"), (*path, i, "text"), out)
        elif kind == "tool_result":
            _content(part.get("content"), (*path, i, "content"), out)


def _messages(node: Any, path: Path, out: list[Slot]) -> None:
    if isinstance(node, list):
        for i, message in enumerate(node):
            if isinstance(message, dict):
                _content(message.get("content"), (*path, i, "content"), out)


def _responses_input(node: Any, path: Path, out: list[Slot]) -> None:
    if isinstance(node, str):
        out.append(Slot(path, node))
        return
    if not isinstance(node, list):
        return
    for i, item in enumerate(node):
        if not isinstance(item, dict):
            continue
        if "content" in item:
            _content(item["content"], (*path, i, "content"), out)
        elif item.get("type") == "function_call_output":
            _string(item.get("output"), (*path, i, "output"), out)


def _top(body: Mapping[str, Any], key: str, out: list[Slot]) -> None:
    _string(body.get(key), (key,), out)


def request_texts(kind: RequestKind, body: Any, custom_paths: Sequence[str] = ()) -> list[Slot]:
    """Every text the client sent in a request of this kind, in document order."""
    out: list[Slot] = []
    if not isinstance(body, dict):
        return out
    if kind is RequestKind.CHAT or kind is RequestKind.THREAD:
        _messages(body.get("messages"), ("messages",), out)
    elif kind is RequestKind.RESPONSES:
        _top(body, "instructions", out)
        _responses_input(body.get("input"), ("input",), out)
    elif kind is RequestKind.COMPLETIONS:
        _strings(body.get("prompt"), ("prompt",), out)
    elif kind is RequestKind.EMBEDDINGS:
        _strings(body.get("input"), ("input",), out)
    elif kind is RequestKind.ANTHROPIC_MESSAGES:
        _content(body.get("system"), ("system",), out)
        _messages(body.get("messages"), ("messages",), out)
    elif kind is RequestKind.ASSISTANT:
        _top(body, "instructions", out)
    elif kind is RequestKind.THREAD_AND_RUN:
        _top(body, "instructions", out)
        _top(body, "additional_instructions", out)
        thread = body.get("thread")
        if isinstance(thread, dict):
            _messages(thread.get("messages"), ("thread", "messages"), out)
    elif kind is RequestKind.MESSAGE:
        _content(body.get("content"), ("content",), out)
    elif kind is RequestKind.RUN:
        _top(body, "instructions", out)
        _top(body, "additional_instructions", out)
        _messages(body.get("additional_messages"), ("additional_messages",), out)
    elif kind is RequestKind.CUSTOM:
        _custom(body, custom_paths, out)
    return out


def response_texts(kind: ResponseKind, body: Any, custom_paths: Sequence[str] = ()) -> list[Slot]:
    """The model's text in a non-streamed response of this kind."""
    out: list[Slot] = []
    if not isinstance(body, dict):
        return out
    if kind is ResponseKind.CHAT or kind is ResponseKind.COMPLETIONS:
        choices = body.get("choices")
        for i, choice in enumerate(choices if isinstance(choices, list) else ()):
            if not isinstance(choice, dict):
                continue
            if kind is ResponseKind.COMPLETIONS:
                _string(choice.get("text"), ("choices", i, "text"), out)
            elif isinstance(message := choice.get("message"), dict):
                _content(message.get("content"), ("choices", i, "message", "content"), out)
    elif kind is ResponseKind.RESPONSES:
        output = body.get("output")
        for i, item in enumerate(output if isinstance(output, list) else ()):
            if isinstance(item, dict):
                _content(item.get("content"), ("output", i, "content"), out)
    elif kind is ResponseKind.ANTHROPIC_MESSAGES:
        _content(body.get("content"), ("content",), out)
    elif kind is ResponseKind.ANTHROPIC_COMPLETE:
        _top(body, "completion", out)
    elif kind is ResponseKind.CUSTOM:
        _custom(body, custom_paths, out)
    return out


# --- custom providers' paths --------------------------------------------------------------------

EVERY = -1  # the `#` step: every element of an array


def parse_path(path: str) -> tuple[str | int, ...]:
    """`messages.#.content` -> ("messages", EVERY, "content"); `ValueError` for gjson features
    other than keys, indices and `#` (queries, modifiers, wildcards, multipaths)."""
    if not path:
        raise ValueError("empty path")
    steps: list[str | int] = []
    current: list[str] = []
    escaped = False
    for char in path:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            steps.append(_step("".join(current)))
            current = []
        elif char in "*?|@()[]{},!=<>%":
            raise ValueError(f"unsupported path syntax {char!r}: use keys, indices and #")
        else:
            current.append(char)
    if escaped:
        raise ValueError("path ends with a lone backslash")
    steps.append(_step("".join(current)))
    return tuple(steps)


def _step(text: str) -> str | int:
    if not text:
        raise ValueError("empty path segment")
    if text == "#":
        return EVERY
    return int(text) if text.isdigit() else text


def _walk(node: Any, steps: tuple[str | int, ...], path: Path) -> Iterator[tuple[Path, Any]]:
    if not steps:
        yield path, node
        return
    step, rest = steps[0], steps[1:]
    if step == EVERY and isinstance(step, int):
        if isinstance(node, list):
            for i, item in enumerate(node):
                yield from _walk(item, rest, (*path, i))
    elif isinstance(node, list) and isinstance(step, int):
        if 0 <= step < len(node):
            yield from _walk(node[step], rest, (*path, step))
    elif isinstance(node, dict):
        key = str(step)
        if key in node:
            yield from _walk(node[key], rest, (*path, key))


def _custom(body: Any, paths: Sequence[str], out: list[Slot]) -> None:
    seen: set[Path] = set()
    for raw in paths:
        try:
            steps = parse_path(raw)
        except ValueError:
            continue  # refused when the provider was saved; an old bad path finds nothing
        for path, node in _walk(body, steps, ()):
            found: list[Slot] = []
            if isinstance(node, list) and any(isinstance(x, dict) for x in node):
                _content(node, path, found)
            _strings(node, path, found)
            for slot in found:
                if slot.path not in seen:
                    seen.add(slot.path)
                    out.append(slot)


# --- writing back -------------------------------------------------------------------------------


def rebuild(body: Any, replacements: Mapping[Path, str]) -> Any:
    """A copy of `body` with the strings at the given paths replaced; untouched subtrees are
    shared, not copied, and `body` itself is left as it was."""
    if not replacements:
        return body
    tree: dict[Any, Any] = {}
    for path, text in replacements.items():
        node = tree
        for step in path[:-1]:
            node = node.setdefault(step, {})
        node[path[-1]] = _Leaf(text)
    return _apply(body, tree)


class _Leaf:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _apply(node: Any, tree: Mapping[Any, Any]) -> Any:
    if isinstance(node, dict):
        copy = dict(node)
        for key, sub in tree.items():
            if key in copy:
                copy[key] = sub.text if isinstance(sub, _Leaf) else _apply(copy[key], sub)
        return copy
    if isinstance(node, list):
        items = list(node)
        for index, sub in tree.items():
            if isinstance(index, int) and 0 <= index < len(items):
                items[index] = sub.text if isinstance(sub, _Leaf) else _apply(items[index], sub)
        return items
    return node
