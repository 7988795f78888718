"""A local HTTP server that speaks the OpenAI API with scripted replies, for tests and benchmarks.

The real `openai` client and the real Agents SDK talk to it over loopback:

    with OpenAIServer(script=[tool_call("lookup", {"order": 42}), json({"answer": "shipped"})]) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="test")
        ...
        assert server.requests[1].tool_results[0].output == "..."

Endpoints: `POST /v1/chat/completions` and `POST /v1/responses` (plain JSON, or SSE when the body
has `"stream": true`), `GET /v1/models`, `GET /v1/models/{id}`, and the Evals API the client's
`evals.create / retrieve` and `evals.runs.create / retrieve` call (`POST /v1/evals`, `GET
/v1/evals/{id}`, `POST /v1/evals/{id}/runs`, `GET /v1/evals/{id}/runs/{run_id}`): request bodies
are validated against the `openai` package's own parameter types (`valid_params`), a run's rows
against the eval's item schema, and the answers have the documented shapes (kept in
`server.evals` and `server.eval_runs`). Anything else answers 404 in the OpenAI error format.
Every request is recorded (`server.requests`).

What each model call answers is a `Step`, chosen by the server's responder:
- `script=[...]`: one FIFO list for the whole server;
- `script={key: [...]}` (or `Script({...}, key=...)`): one FIFO list per conversation key (by
  default the first user message, which stays in every request of an agent run), so concurrent
  independent runs each get their own sequence;
- `responder=fn`: `fn(request: RecordedRequest) -> Step` (or an awaitable of one), computed from
  the request: its last user message, tool results, tools, requested JSON schema.

Delays are `asyncio.sleep` on the server's own event loop (a background thread), so hundreds of
slow replies can be in flight at once; a delayed or hanging reply ends early when the client
disconnects or the server closes.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json as jsonlib
import logging
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# `json` (the structured-output step) is left out of `__all__` so that `import *` cannot shadow
# the standard library module; import it by name.
__all__ = [
    "ApiError",
    "valid_params",
    "OpenAIServer",
    "RecordedRequest",
    "Responder",
    "Script",
    "ScriptExhausted",
    "Step",
    "ToolCall",
    "ToolResult",
    "Message",
    "delay",
    "error",
    "first_user_message",
    "hang",
    "text",
    "tool_call",
    "tool_calls",
]

logger = logging.getLogger(__name__)

Api = Literal["chat", "responses", "models", "other"]


# --- steps ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToolCall:
    """One function call the scripted model makes. `arguments` may be a raw string (e.g. broken
    JSON, to test how the client copes)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    call_id: str | None = None

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return jsonlib.dumps(_plain(self.arguments))


@dataclass(frozen=True)
class ApiError:
    status: int
    message: str
    type: str
    code: str | None
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": None, "code": self.code}}


@dataclass(frozen=True)
class Step:
    """One scripted model reply. Build it with `text`, `json`, `tool_call`, `tool_calls`, `error`,
    `hang`; `.after(seconds)` delays it, `.with_usage(input, output)` fixes its token counts."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    error: ApiError | None = None
    hang: bool = False
    delay: float = 0.0
    usage: tuple[int, int] | None = None          # (input/prompt tokens, output/completion tokens)

    @property
    def kind(self) -> Literal["text", "tool_calls", "error", "hang"]:
        if self.hang:
            return "hang"
        if self.error is not None:
            return "error"
        return "tool_calls" if self.tool_calls else "text"

    def after(self, seconds: float) -> Step:
        """The same reply, sent `seconds` later (the client's read timeout runs meanwhile)."""
        return replace(self, delay=seconds)

    def with_usage(self, input_tokens: int, output_tokens: int) -> Step:
        return replace(self, usage=(input_tokens, output_tokens))


def text(content: str, *, delay: float = 0.0) -> Step:
    """An assistant message (finish_reason "stop")."""
    return Step(content=content, delay=delay)


def json(obj: Any, *, delay: float = 0.0) -> Step:
    """Structured output: `obj` (dict, list, pydantic model) as the JSON text of the message,
    which is what an `Agent(output_type=...)` parses."""
    return Step(content=jsonlib.dumps(_plain(obj)), delay=delay)


def tool_call(name: str, arguments: Mapping[str, Any] | str | None = None, call_id: str | None = None,
              *, delay: float = 0.0) -> Step:
    """One function call (finish_reason "tool_calls"); the call id is generated when omitted."""
    return Step(tool_calls=(ToolCall(name, {} if arguments is None else arguments, call_id),), delay=delay)


def tool_calls(*calls: Step | ToolCall, content: str | None = None, delay: float = 0.0) -> Step:
    """Several function calls in one reply (parallel tool calls), optionally with message text:
    `tool_calls(tool_call("a", {...}), tool_call("b", {...}))`."""
    merged: list[ToolCall] = []
    for call in calls:
        merged.extend(call.tool_calls if isinstance(call, Step) else (call,))
    return Step(content=content, tool_calls=tuple(merged), delay=delay)


_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "service_unavailable"),
}


def error(status: int, message: str = "scripted error", *, type: str | None = None, code: str | None = None,
          headers: Mapping[str, str] | None = None, delay: float = 0.0) -> Step:
    """An HTTP error with the OpenAI error body `{"error": {"message", "type", "param", "code"}}`.
    `headers` may carry `retry-after` / `x-should-retry` to steer the client's retries."""
    fallback = ("server_error" if status >= 500 else "invalid_request_error", None)
    default_type, default_code = _ERROR_TYPES.get(status, fallback)
    api_error = ApiError(status, message, type or default_type, code or default_code, dict(headers or {}))
    return Step(error=api_error, delay=delay)


def delay(seconds: float, step: Step) -> Step:
    """`step`, answered `seconds` later."""
    return step.after(seconds)


def hang() -> Step:
    """Never answer: the request stays open until the client gives up or the server closes."""
    return Step(hang=True)


# --- recorded requests ----------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    """A message of the request's conversation, the same shape for both APIs."""

    role: str                                   # system, developer, user, assistant, tool
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()       # calls an assistant message made
    call_id: str | None = None                  # for role "tool": the call it answers


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    output: str
    name: str | None = None                     # the called function, found in the history


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the server received it, with views of the conversation that work for
    Chat Completions and Responses alike."""

    index: int
    method: str
    path: str
    headers: Mapping[str, str]                  # lower-case names
    body: Any                                   # the decoded JSON body (None without one)
    received_at: float

    @property
    def api(self) -> Api:
        if self.path.endswith("/chat/completions"):
            return "chat"
        if self.path.endswith("/responses"):
            return "responses"
        if "/models" in self.path:
            return "models"
        return "other"

    @property
    def json(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}

    @property
    def model(self) -> str | None:
        return self.json.get("model")

    @property
    def stream(self) -> bool:
        return bool(self.json.get("stream"))

    @property
    def api_key(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None

    @property
    def messages(self) -> list[Message]:
        if self.api == "chat":
            return [_chat_message(m) for m in self.json.get("messages") or [] if isinstance(m, dict)]
        if self.api == "responses":
            items = self.json.get("input")
            if isinstance(items, str):
                return [Message("user", items)]
            return _responses_messages(items or [])
        return []

    @property
    def system_prompt(self) -> str:
        """Instructions plus every system/developer message, joined by blank lines."""
        parts = [self.json["instructions"]] if isinstance(self.json.get("instructions"), str) else []
        parts += [m.text for m in self.messages if m.role in ("system", "developer")]
        return "\n\n".join(parts)

    @property
    def user_messages(self) -> list[str]:
        return [m.text for m in self.messages if m.role == "user"]

    @property
    def first_user_message(self) -> str | None:
        users = self.user_messages
        return users[0] if users else None

    @property
    def last_user_message(self) -> str | None:
        users = self.user_messages
        return users[-1] if users else None

    @property
    def last_message(self) -> Message | None:
        messages = self.messages
        return messages[-1] if messages else None

    @property
    def history_tool_calls(self) -> list[ToolCall]:
        """Tool calls the model made earlier in this conversation (sent back by the client)."""
        return [call for m in self.messages for call in m.tool_calls]

    @property
    def tool_results(self) -> list[ToolResult]:
        """Tool outputs the client sent back, oldest first."""
        names = {call.call_id: call.name for call in self.history_tool_calls}
        return [ToolResult(m.call_id or "", m.text, names.get(m.call_id))
                for m in self.messages if m.role == "tool"]

    @property
    def tool_names(self) -> list[str]:
        """Names of the function tools the request offers."""
        names: list[str] = []
        for tool in self.json.get("tools") or []:
            function = tool.get("function") if isinstance(tool.get("function"), dict) else tool
            if isinstance(function.get("name"), str):
                names.append(function["name"])
        return names

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The structured-output JSON schema requested (`response_format` or `text.format`)."""
        if self.api == "chat":
            response_format = self.json.get("response_format") or {}
            if response_format.get("type") == "json_schema":
                return (response_format.get("json_schema") or {}).get("schema")
            return None
        text_format = (self.json.get("text") or {}).get("format") or {}
        return text_format.get("schema") if text_format.get("type") == "json_schema" else None


def _text_of(content: Any) -> str:
    """Text of a message content: a string, or a list of parts with `text` (any part type)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_of(part.get("text") if isinstance(part, dict) else part) for part in content)
    return str(content)


def _chat_message(message: dict[str, Any]) -> Message:
    calls = tuple(
        ToolCall(c["function"].get("name", ""), c["function"].get("arguments", ""), c.get("id"))
        for c in message.get("tool_calls") or [] if isinstance(c.get("function"), dict)
    )
    return Message(message.get("role", ""), _text_of(message.get("content")), calls, message.get("tool_call_id"))


def _responses_messages(items: Iterable[Any]) -> list[Message]:
    messages: list[Message] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type") or "message"
        if kind == "message":
            messages.append(Message(item.get("role", "user"), _text_of(item.get("content"))))
        elif kind == "function_call":
            call = ToolCall(item.get("name", ""), item.get("arguments", ""), item.get("call_id"))
            if messages and messages[-1].role == "assistant":     # one assistant turn, like chat
                last = messages.pop()
                messages.append(replace(last, tool_calls=last.tool_calls + (call,)))
            else:
                messages.append(Message("assistant", "", (call,)))
        elif kind == "function_call_output":
            messages.append(Message("tool", _text_of(item.get("output")), call_id=item.get("call_id")))
    return messages


# --- responders and scripts -----------------------------------------------------------------

Responder = Callable[[RecordedRequest], Step | Awaitable[Step]]


class ScriptExhausted(LookupError):
    """A model call arrived and the script had no step left for it."""


def first_user_message(request: RecordedRequest) -> str:
    """The default conversation key: an agent run resends its first user message every turn."""
    return request.first_user_message or ""


class Script:
    """Scripted steps consumed in order: one FIFO for the whole server (built from a list), or one
    FIFO per conversation (built from a mapping; `key(request)` names the conversation of a
    request). A Script is a responder; steps may be added while the server runs."""

    def __init__(self, steps: Sequence[Step] | Mapping[str, Sequence[Step]] = (), *,
                 key: Callable[[RecordedRequest], str] = first_user_message) -> None:
        self.keyed = isinstance(steps, Mapping)
        self._key = key
        self._queues: dict[str | None, deque[Step]] = {} if self.keyed else {None: deque()}
        self._lock = threading.Lock()
        if isinstance(steps, Mapping):
            for name, sequence in steps.items():
                self.add(*sequence, key=name)
        else:
            self.add(*steps)

    def add(self, *steps: Step, key: str | None = None) -> Script:
        """Append steps: to the FIFO, or to the queue of conversation `key` in a keyed script."""
        if self.keyed != (key is not None):
            raise ValueError("a keyed script needs a key, a FIFO script takes none")
        with self._lock:
            self._queues.setdefault(key, deque()).extend(steps)
        return self

    @property
    def remaining(self) -> int:
        """Steps not consumed yet (all conversations together)."""
        with self._lock:
            return sum(len(queue) for queue in self._queues.values())

    def __call__(self, request: RecordedRequest) -> Step:
        key = self._key(request) if self.keyed else None
        with self._lock:
            queue = self._queues.get(key)
            if queue:
                return queue.popleft()
        where = f" for conversation key {key!r}" if self.keyed else ""
        raise ScriptExhausted(f"no scripted step left{where} (request #{request.index} {request.path})")


# --- rendering ------------------------------------------------------------------------------

def _plain(obj: Any) -> Any:
    """Pydantic models (and lists/dicts of them) as plain JSON-able data."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


@dataclass(frozen=True)
class _Reply:
    """A step ready to send: call ids fixed, token counts known."""

    model: str
    content: str | None
    calls: list[tuple[str, str, str]]          # (call_id, name, arguments JSON)
    input_tokens: int
    output_tokens: int
    created: int

    @classmethod
    def of(cls, step: Step, request: RecordedRequest) -> _Reply:
        calls = [(c.call_id or _new_id("call_"), c.name, c.arguments_json) for c in step.tool_calls]
        if step.usage is not None:
            input_tokens, output_tokens = step.usage
        else:
            prompt = {k: request.json.get(k) for k in ("messages", "input", "instructions", "tools")}
            input_tokens = _tokens(jsonlib.dumps(prompt))
            output_tokens = _tokens((step.content or "") + "".join(name + args for _, name, args in calls))
        return cls(request.model or "gpt-test", step.content, calls, input_tokens, output_tokens, int(time.time()))

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.calls else "stop"


# Chat Completions

def _chat_usage(reply: _Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _chat_completion(reply: _Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None, "annotations": []}
    if reply.calls:
        message["tool_calls"] = [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
                                 for call_id, name, args in reply.calls]
    elif message["content"] is None:
        message["content"] = ""
    return {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": _chat_usage(reply),
        "service_tier": "default",
        "system_fingerprint": "fp_scripted",
    }


def _chat_chunks(reply: _Reply, chunk_size: int, include_usage: bool) -> Iterator[dict[str, Any]]:
    base = {"id": _new_id("chatcmpl-"), "object": "chat.completion.chunk", "created": reply.created,
            "model": reply.model, "service_tier": "default", "system_fingerprint": "fp_scripted"}
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice], **extra}

    yield chunk({"role": "assistant", "content": "" if reply.content is not None or not reply.calls else None,
                 "refusal": None})
    for piece in _pieces(reply.content or "", chunk_size):
        yield chunk({"content": piece})
    for index, (call_id, name, args) in enumerate(reply.calls):
        yield chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                     "function": {"name": name, "arguments": ""}}]})
        for piece in _pieces(args, chunk_size):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, reply.finish_reason)
    if include_usage:
        yield {**base, "choices": [], "usage": _chat_usage(reply)}


# Responses

def _response_usage(reply: _Reply) -> dict[str, Any]:
    return {
        "input_tokens": reply.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": reply.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, content: str | None, status: str) -> dict[str, Any]:
    parts = [] if content is None else [_output_text(content)]
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": parts}


def _function_call_item(item_id: str, call: tuple[str, str, str], arguments: str, status: str) -> dict[str, Any]:
    call_id, name, _ = call
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}


def _response_object(reply: _Reply, request: RecordedRequest, response_id: str, status: str,
                     output: list[dict[str, Any]]) -> dict[str, Any]:
    body = request.json
    completed = status == "completed"
    return {
        "id": response_id,
        "object": "response",
        "created_at": reply.created,
        "completed_at": int(time.time()) if completed else None,
        "status": status,
        "model": reply.model,
        "output": output,
        "instructions": body.get("instructions"),
        "tools": body.get("tools") or [],
        "tool_choice": body.get("tool_choice") or "auto",
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "max_output_tokens": body.get("max_output_tokens"),
        "previous_response_id": body.get("previous_response_id"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "truncation": body.get("truncation") or "disabled",
        "metadata": body.get("metadata") or {},
        "store": body.get("store", True),
        "background": False,
        "error": None,
        "incomplete_details": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "usage": _response_usage(reply) if completed else None,
    }


def _response_output(reply: _Reply) -> list[tuple[str, dict[str, Any]]]:
    """(item id, finished item) for each output item: the message first, then the calls."""
    items: list[tuple[str, dict[str, Any]]] = []
    if reply.content is not None or not reply.calls:
        item_id = _new_id("msg_")
        items.append((item_id, _message_item(item_id, reply.content or "", "completed")))
    for call in reply.calls:
        item_id = _new_id("fc_")
        items.append((item_id, _function_call_item(item_id, call, call[2], "completed")))
    return items


def _response(reply: _Reply, request: RecordedRequest) -> dict[str, Any]:
    output = [item for _, item in _response_output(reply)]
    return _response_object(reply, request, _new_id("resp_"), "completed", output)


def _response_events(reply: _Reply, request: RecordedRequest, chunk_size: int) -> Iterator[dict[str, Any]]:
    """The SSE events of a streamed response, in the order the Responses API sends them."""
    response_id = _new_id("resp_")
    sequence = itertools.count()

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "sequence_number": next(sequence), **fields}

    in_progress = _response_object(reply, request, response_id, "in_progress", [])
    yield event("response.created", response=in_progress)
    yield event("response.in_progress", response=in_progress)

    output = _response_output(reply)
    for index, (item_id, item) in enumerate(output):
        where = {"item_id": item_id, "output_index": index}
        if item["type"] == "message":
            full_text = item["content"][0]["text"]
            yield event("response.output_item.added", output_index=index,
                        item=_message_item(item_id, None, "in_progress"))
            yield event("response.content_part.added", **where, content_index=0, part=_output_text(""))
            for piece in _pieces(full_text, chunk_size):
                yield event("response.output_text.delta", **where, content_index=0, delta=piece, logprobs=[])
            yield event("response.output_text.done", **where, content_index=0, text=full_text, logprobs=[])
            yield event("response.content_part.done", **where, content_index=0, part=_output_text(full_text))
        else:
            call = (item["call_id"], item["name"], item["arguments"])
            yield event("response.output_item.added", output_index=index,
                        item=_function_call_item(item_id, call, "", "in_progress"))
            for piece in _pieces(item["arguments"], chunk_size):
                yield event("response.function_call_arguments.delta", **where, delta=piece)
            yield event("response.function_call_arguments.done", **where, name=item["name"],
                        arguments=item["arguments"])
        yield event("response.output_item.done", output_index=index, item=item)

    done = _response_object(reply, request, response_id, "completed", [item for _, item in output])
    yield event("response.completed", response=done)


def _error_response(api_error: ApiError) -> JSONResponse:
    return JSONResponse(api_error.body(), status_code=api_error.status, headers=dict(api_error.headers))


def _harness_error(message: str, status: int = 500) -> JSONResponse:
    """A problem of the test setup, not a scripted error: tell the client not to retry."""
    return _error_response(ApiError(status, f"openai_server: {message}", "server_error", "harness_error",
                                    {"x-should-retry": "false"}))


# --- the Evals API ---------------------------------------------------------------------------

def _materialize(value: Any) -> Any:
    """pydantic validates `Iterable[...]` fields lazily: walk them so every item is validated."""
    if isinstance(value, Mapping):
        return {k: _materialize(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, Iterable):
        return [_materialize(v) for v in value]
    return value


def valid_params(params_type: Any, body: Any) -> list[str]:
    """What is wrong with a request body for an `openai` parameter type (a TypedDict such as
    `openai.types.EvalCreateParams`), as the client's own types define it; [] when it is valid."""
    from pydantic import TypeAdapter, ValidationError

    try:
        _materialize(TypeAdapter(params_type).validate_python(body))
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    return []


_JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list}


def _schema_problems(schema: Mapping[str, Any], item: Any) -> list[str]:
    """The slice of JSON Schema an item schema uses: required keys and property types."""
    if not isinstance(item, dict):
        return ["the item is not an object"]
    problems = [f"missing {key!r}" for key in schema.get("required", []) if key not in item]
    for key, spec in (schema.get("properties") or {}).items():
        expected = _JSON_TYPES.get(spec.get("type", ""))
        if key in item and expected and not isinstance(item[key], expected):
            problems.append(f"{key!r} is not of type {spec['type']}")
    return problems


# --- the server -----------------------------------------------------------------------------

def _responder(script: Script | Sequence[Step] | Mapping[str, Sequence[Step]] | None,
               responder: Responder | None) -> Responder:
    if script is not None and responder is not None:
        raise ValueError("give either a script or a responder")
    if responder is not None:
        return responder
    return script if isinstance(script, Script) else Script(script or ())


class _Uvicorn(uvicorn.Server):
    """uvicorn polls `should_exit` every 100 ms; this one stops at once, and its `stopping` event
    also ends the replies still sleeping or hanging."""

    loop: asyncio.AbstractEventLoop
    stopping: asyncio.Event

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        await super().serve(sockets)

    async def main_loop(self) -> None:
        await self.on_tick(0)           # sets the default headers
        await self.stopping.wait()

    def stop(self) -> None:
        """Callable from any thread."""
        self.should_exit = True
        try:
            self.loop.call_soon_threadsafe(self.stopping.set)
        except (AttributeError, RuntimeError):     # never served, or the loop is already gone
            pass


class OpenAIServer:
    """The scripted OpenAI API on 127.0.0.1, served by uvicorn from a background thread.

    `script`: a list of steps (one FIFO), a mapping key -> steps (one FIFO per conversation, keyed
    by `first_user_message` unless a `Script(..., key=...)` is given), or a `Script`.
    `responder`: a function of the `RecordedRequest` returning a `Step` (sync or async), instead.
    `chunk_size`: characters per streamed delta; `chunk_delay`: seconds between streamed events.
    """

    def __init__(self, script: Script | Sequence[Step] | Mapping[str, Sequence[Step]] | None = None, *,
                 responder: Responder | None = None, models: Sequence[str] = ("gpt-test",),
                 chunk_size: int = 8, chunk_delay: float = 0.0) -> None:
        self.responder: Responder = _responder(script, responder)
        self.models = list(models)
        self.chunk_size = max(1, chunk_size)
        self.chunk_delay = chunk_delay
        self.errors: list[str] = []                 # harness problems (script exhausted, responder raised)
        self.evals: dict[str, dict[str, Any]] = {}          # created evals, by id
        self.eval_runs: dict[str, dict[str, Any]] = {}      # created eval runs, by id
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._uvicorn: _Uvicorn | None = None
        self.port = 0

    # lifecycle

    def start(self) -> OpenAIServer:
        if self._thread is not None:
            raise RuntimeError("server already started")
        # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
        # and without it every reply written in two parts waits ~40 ms for a delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(2048)      # clients may connect at once; uvicorn accepts from the backlog
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(self._app(), loop="asyncio", http="h11", ws="none", lifespan="off",
                                log_config=None, log_level="warning", access_log=False, timeout_keep_alive=30,
                                timeout_graceful_shutdown=2)
        self._uvicorn = _Uvicorn(config)      # not the main thread: uvicorn installs no signal handlers
        server, sockets = self._uvicorn, [self._socket]
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets)),
                                        name=f"openai-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the scripted OpenAI server did not start")
            time.sleep(0.002)
        return self

    def close(self) -> None:
        """Stop: pending delays and hangs end at once, then uvicorn shuts down."""
        if self._thread is None or self._uvicorn is None:
            return
        self._uvicorn.stop()
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            logger.warning("the scripted OpenAI server on port %d did not stop in time", self.port)
        self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # inspection

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def model_requests(self) -> list[RecordedRequest]:
        """Only the chat completion and responses calls."""
        return [r for r in self.requests if r.api in ("chat", "responses")]

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            return self._requests[-1]

    @property
    def script(self) -> Script:
        if not isinstance(self.responder, Script):
            raise TypeError("this server runs a responder function, not a Script")
        return self.responder

    def reset(self, script: Script | Sequence[Step] | Mapping[str, Sequence[Step]] | None = None, *,
              responder: Responder | None = None) -> OpenAIServer:
        """Forget recorded requests and errors; with a script or responder, also answer with it
        from now on (one running server can then serve many scenarios)."""
        if script is not None or responder is not None:
            self.responder = _responder(script, responder)
        with self._lock:
            self._requests.clear()
            self.errors.clear()
        return self

    # HTTP

    def _app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/chat/completions", self._model_call, methods=["POST"]),
            Route("/v1/responses", self._model_call, methods=["POST"]),
            Route("/v1/models", self._list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", self._get_model, methods=["GET"]),
            Route("/v1/evals", self._create_eval, methods=["POST"]),
            Route("/v1/evals/{eval_id}", self._get_eval, methods=["GET"]),
            Route("/v1/evals/{eval_id}/runs", self._create_eval_run, methods=["POST"]),
            Route("/v1/evals/{eval_id}/runs/{run_id}", self._get_eval_run, methods=["GET"]),
            Route("/{path:path}", self._not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ])

    async def _record(self, request: Request) -> RecordedRequest | Response:
        raw = await request.body()
        try:
            body = jsonlib.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            recorded = RecordedRequest(
                index=len(self._requests), method=request.method, path=request.url.path,
                headers={k.lower(): v for k, v in request.headers.items()}, body=body, received_at=time.time(),
            )
            self._requests.append(recorded)
        if raw and not isinstance(body, (dict, list)):
            return _error_response(ApiError(400, "We could not parse the JSON body of your request.",
                                            "invalid_request_error", None))
        return recorded

    async def _model_call(self, request: Request) -> Response:
        recorded = await self._record(request)
        if isinstance(recorded, Response):
            return recorded
        try:
            step = self.responder(recorded)
            if inspect.isawaitable(step):
                step = await step
            if not isinstance(step, Step):
                raise TypeError(f"the responder returned {step!r}, not a Step")
        except Exception as exc:           # a broken test setup: report it to the client and the test
            message = f"{type(exc).__name__}: {exc}"
            self.errors.append(message)
            logger.warning("scripted OpenAI server: %s", message)
            return _harness_error(message)

        if step.delay > 0 and not await self._wait(request, step.delay):
            return _harness_error("client disconnected or server closing", 503)
        if step.hang:
            await self._wait(request, None)
            return _harness_error("server closing", 503)
        if step.error is not None:
            return _error_response(step.error)

        reply = _Reply.of(step, recorded)
        headers = {"x-request-id": _new_id("req_"), "openai-processing-ms": str(int(step.delay * 1000))}
        if recorded.api == "chat":
            if not recorded.stream:
                return JSONResponse(_chat_completion(reply), headers=headers)
            include_usage = bool((recorded.json.get("stream_options") or {}).get("include_usage"))
            events = ((None, chunk) for chunk in _chat_chunks(reply, self.chunk_size, include_usage))
            return self._sse(events, headers, done_marker=True)
        if not recorded.stream:
            return JSONResponse(_response(reply, recorded), headers=headers)
        events = ((e["type"], e) for e in _response_events(reply, recorded, self.chunk_size))
        return self._sse(events, headers, done_marker=False)

    def _sse(self, events: Iterable[tuple[str | None, dict[str, Any]]], headers: dict[str, str],
             *, done_marker: bool) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for index, (name, data) in enumerate(events):
                if index and self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                prefix = f"event: {name}\n" if name else ""
                yield f"{prefix}data: {jsonlib.dumps(data)}\n\n".encode()
            if done_marker:
                yield b"data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream",
                                 headers={**headers, "cache-control": "no-cache"})

    async def _wait(self, request: Request, seconds: float | None) -> bool:
        """Sleep `seconds` (forever if None). False when the client disconnected or the server
        is closing first."""
        assert self._uvicorn is not None
        waiters = {asyncio.ensure_future(_disconnected(request)),
                   asyncio.ensure_future(self._uvicorn.stopping.wait())}
        sleeper = asyncio.ensure_future(asyncio.sleep(seconds)) if seconds is not None else None
        if sleeper is not None:
            waiters.add(sleeper)
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return sleeper is not None and sleeper in done

    async def _list_models(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"object": "list", "data": [self._model(name) for name in self.models]})

    async def _get_model(self, request: Request) -> Response:
        await self._record(request)
        name = request.path_params["model"]
        if name not in self.models:
            return _error_response(ApiError(404, f"The model '{name}' does not exist", "invalid_request_error",
                                            "model_not_found"))
        return JSONResponse(self._model(name))

    async def _not_found(self, request: Request) -> Response:
        await self._record(request)
        return _error_response(ApiError(404, f"Invalid URL ({request.method} {request.url.path})",
                                        "invalid_request_error", None))

    async def _create_eval(self, request: Request) -> Response:
        from openai.types import EvalCreateParams

        recorded = await self._record(request)
        if isinstance(recorded, Response):
            return recorded
        if problems := valid_params(EvalCreateParams, recorded.body):
            return _error_response(ApiError(400, "Invalid eval: " + "; ".join(problems), "invalid_request_error", None))
        body = recorded.json
        config = body["data_source_config"]
        schema = {"type": "object", "properties": {"item": config.get("item_schema", {})}, "required": ["item"]}
        if config.get("include_sample_schema"):
            schema["properties"]["sample"] = {"type": "object", "properties": {"output_text": {"type": "string"}}}
            schema["required"].append("sample")
        created = {"id": _new_id("eval_"), "object": "eval", "created_at": int(time.time()),
                   "name": body.get("name", ""), "metadata": body.get("metadata"),
                   "data_source_config": {"type": "custom", "schema": schema},
                   "testing_criteria": body["testing_criteria"]}
        self.evals[created["id"]] = created
        return JSONResponse(created)

    async def _get_eval(self, request: Request) -> Response:
        await self._record(request)
        found = self.evals.get(request.path_params["eval_id"])
        return JSONResponse(found) if found else _error_response(
            ApiError(404, "Eval not found", "invalid_request_error", None))

    async def _create_eval_run(self, request: Request) -> Response:
        from openai.types.evals import RunCreateParams

        recorded = await self._record(request)
        if isinstance(recorded, Response):
            return recorded
        found = self.evals.get(request.path_params["eval_id"])
        if found is None:
            return _error_response(ApiError(404, "Eval not found", "invalid_request_error", None))
        if problems := valid_params(RunCreateParams, recorded.body):
            return _error_response(ApiError(400, "Invalid run: " + "; ".join(problems), "invalid_request_error", None))
        source = recorded.json["data_source"]
        rows = (source.get("source") or {}).get("content") or []
        item_schema = found["data_source_config"]["schema"]["properties"]["item"]
        for index, row in enumerate(rows):
            if problems := _schema_problems(item_schema, row.get("item")):
                return _error_response(ApiError(400, f"content[{index}].item: {'; '.join(problems)}",
                                                "invalid_request_error", None))
        run_id = _new_id("evalrun_")
        created = {"id": run_id, "object": "eval.run", "eval_id": found["id"], "name": recorded.json.get("name", ""),
                   "created_at": int(time.time()), "status": "queued", "model": "", "data_source": source,
                   "error": {"code": "", "message": ""}, "metadata": recorded.json.get("metadata"),
                   "per_model_usage": [], "per_testing_criteria_results": [],
                   "report_url": f"http://127.0.0.1:{self.port}/evals/{found['id']}?run_id={run_id}",
                   "result_counts": {"total": len(rows), "passed": 0, "failed": 0, "errored": 0}}
        self.eval_runs[run_id] = created
        return JSONResponse(created)

    async def _get_eval_run(self, request: Request) -> Response:
        await self._record(request)
        found = self.eval_runs.get(request.path_params["run_id"])
        if found is None or found["eval_id"] != request.path_params["eval_id"]:
            return _error_response(ApiError(404, "Eval run not found", "invalid_request_error", None))
        return JSONResponse(found)

    @staticmethod
    def _model(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "openai-server-test"}


async def _disconnected(request: Request) -> None:
    """Return once the client has gone away (the body was already read, so the next ASGI message
    is `http.disconnect`)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
