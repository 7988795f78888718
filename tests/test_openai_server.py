"""The scripted OpenAI server, proven with the real `openai` client and the real Agents SDK."""

from __future__ import annotations

import asyncio
import json as jsonlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx2
import openai
import pytest
from agents import (
    Agent,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai.types import Model as ModelInfo
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
)
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)
from pydantic import BaseModel, TypeAdapter

from .support.openai_server import (
    OpenAIServer,
    RecordedRequest,
    Script,
    ScriptExhausted,
    Step,
    error,
    hang,
    json,
    text,
    tool_call,
    tool_calls,
)

T = TypeVar("T")


@pytest.fixture(autouse=True, scope="module")
def no_tracing() -> Iterator[None]:
    set_tracing_disabled(True)          # nothing leaves the machine: no trace export to OpenAI
    yield
    set_tracing_disabled(False)


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    """One server for the module: each test installs its script with `server.reset(...)`."""
    with OpenAIServer() as server:
        yield server


def with_client(server: OpenAIServer, test: Callable[[openai.AsyncOpenAI], Awaitable[T]], **options: Any) -> T:
    """Run `test(client)` in a fresh event loop. The client is closed inside that loop: one left
    for the garbage collector tries to close its connections on a dead loop ("Event loop is closed")."""

    async def main() -> T:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="test", **options) as client:
            return await test(client)

    return asyncio.run(main())


def model_for(api: str, client: openai.AsyncOpenAI) -> Model:
    if api == "chat":
        return OpenAIChatCompletionsModel(model="gpt-test", openai_client=client)
    return OpenAIResponsesModel(model="gpt-test", openai_client=client)


USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Where is my order?"}]


# --- the openai client ----------------------------------------------------------------------

def test_chat_completion_plain_and_streamed(server: OpenAIServer) -> None:
    script = [text("Your order shipped yesterday."),
              text("Your order shipped yesterday, tracking number follows.")]

    async def main(client: openai.AsyncOpenAI) -> None:
        plain = await client.chat.completions.create(model="gpt-test", messages=USER)
        assert plain.choices[0].message.content == "Your order shipped yesterday."
        assert plain.choices[0].finish_reason == "stop"
        usage = plain.usage
        assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0

        stream = await client.chat.completions.create(model="gpt-test", messages=USER, stream=True,
                                                      stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert content == "Your order shipped yesterday, tracking number follows."
        assert len(chunks) > 5                                  # really streamed in pieces
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].choices == [] and chunks[-1].usage is not None

    server.reset(script)
    with_client(server, main)
    first = server.requests[0]
    assert (first.method, first.path, first.api) == ("POST", "/v1/chat/completions", "chat")
    assert first.api_key == "test" and first.headers["authorization"] == "Bearer test"
    assert first.last_user_message == "Where is my order?"
    assert server.requests[1].stream and server.script.remaining == 0


def test_chat_completion_streams_parallel_tool_calls(server: OpenAIServer) -> None:
    step = tool_calls(tool_call("lookup_order", {"order_id": 42}, call_id="call_a"),
                      tool_call("lookup_customer", {"email": "ann@example.com"}))

    async def main(client: openai.AsyncOpenAI) -> None:
        plain = await client.chat.completions.create(model="gpt-test", messages=USER)
        calls = [call for call in plain.choices[0].message.tool_calls or []
                 if isinstance(call, ChatCompletionMessageFunctionToolCall)]
        assert plain.choices[0].finish_reason == "tool_calls"
        assert (calls[0].id, calls[0].function.name, jsonlib.loads(calls[0].function.arguments)) == \
            ("call_a", "lookup_order", {"order_id": 42})
        assert calls[1].id.startswith("call_") and calls[1].id != "call_a"

        stream = await client.chat.completions.create(model="gpt-test", messages=USER, stream=True)
        names: dict[int, str] = {}
        arguments: dict[int, str] = {}
        finish = None
        async for chunk in stream:
            for delta in chunk.choices[0].delta.tool_calls or []:
                assert delta.function is not None
                if delta.function.name:
                    names[delta.index] = delta.function.name
                arguments[delta.index] = arguments.get(delta.index, "") + (delta.function.arguments or "")
            finish = chunk.choices[0].finish_reason or finish
        assert finish == "tool_calls"
        assert names == {0: "lookup_order", 1: "lookup_customer"}
        assert jsonlib.loads(arguments[1]) == {"email": "ann@example.com"}

    server.reset([step, step])
    with_client(server, main)


def test_responses_plain_and_streamed(server: OpenAIServer) -> None:
    script = [text("Shipped."), tool_call("lookup_order", {"order_id": 7}, call_id="call_7"),
              text("It left the warehouse this morning.")]

    async def main(client: openai.AsyncOpenAI) -> None:
        plain = await client.responses.create(model="gpt-test", input="Where is my order?", instructions="Be brief.")
        assert plain.output_text == "Shipped." and plain.status == "completed"
        assert plain.usage is not None and plain.usage.input_tokens > 0

        call = await client.responses.create(model="gpt-test", input="Where is my order?")
        assert [(o.call_id, o.name) for o in call.output if isinstance(o, ResponseFunctionToolCall)] == \
            [("call_7", "lookup_order")] and len(call.output) == 1

        stream = await client.responses.create(model="gpt-test", input="Where is my order?", stream=True)
        events = [event async for event in stream]
        types = [e.type for e in events]
        assert types[:2] == ["response.created", "response.in_progress"]
        assert types[-1] == "response.completed"
        assert "response.output_item.added" in types and "response.output_text.done" in types
        deltas = "".join(e.delta for e in events if isinstance(e, ResponseTextDeltaEvent))
        assert deltas == "It left the warehouse this morning."
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert isinstance(events[-1], ResponseCompletedEvent) and events[-1].response.output_text == deltas

    server.reset(script)
    with_client(server, main)
    assert server.requests[0].system_prompt == "Be brief."
    assert server.requests[0].last_user_message == "Where is my order?"


@pytest.mark.parametrize("path,stream", [("chat/completions", False), ("chat/completions", True),
                                         ("responses", False), ("responses", True)])
def test_wire_format_validates_against_the_openai_types(server: OpenAIServer, path: str, stream: bool) -> None:
    """Strict pydantic validation of what goes over the wire (the client itself only constructs)."""
    step = tool_calls(tool_call("lookup_order", {"order_id": 1}), content="Checking.")
    body: dict[str, Any] = {"model": "gpt-test", "stream": stream}
    body |= {"messages": USER, "stream_options": {"include_usage": True}} if path.startswith("chat") \
        else {"input": USER, "tools": [{"type": "function", "name": "lookup_order", "strict": True,
                                        "parameters": {"type": "object", "properties": {}}}]}
    server.reset([step])
    reply = httpx2.post(f"{server.base_url}/{path}", json=body, headers={"Authorization": "Bearer test"})
    assert reply.status_code == 200 and reply.headers["x-request-id"].startswith("req_")
    models = httpx2.get(f"{server.base_url}/models").json()
    assert [ModelInfo.model_validate(m).id for m in models["data"]] == ["gpt-test"]

    if not stream:
        parsed = (ChatCompletion if path.startswith("chat") else Response).model_validate(reply.json())
        assert parsed.model == "gpt-test"
        return
    assert reply.headers["content-type"].startswith("text/event-stream")
    frames = [frame for frame in reply.text.split("\n\n") if frame]
    data = [frame.rsplit("data: ", 1)[1] for frame in frames]
    if path.startswith("chat"):
        assert data[-1] == "[DONE]"
        chunks = [ChatCompletionChunk.model_validate_json(d) for d in data[:-1]]
        assert chunks[-1].usage is not None
    else:
        adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
        events = [adapter.validate_json(d) for d in data]
        assert all(frame.startswith(f"event: {e.type}\n") for frame, e in zip(frames, events))
        assert events[-1].type == "response.completed" and len(events[-1].response.output) == 2


# --- errors, delays, hangs ------------------------------------------------------------------

@pytest.mark.parametrize("status,exception", [(500, openai.InternalServerError), (429, openai.RateLimitError),
                                              (401, openai.AuthenticationError), (400, openai.BadRequestError)])
def test_error_step_raises_the_matching_openai_exception(server: OpenAIServer, status: int,
                                                         exception: type[openai.APIStatusError]) -> None:
    async def main(client: openai.AsyncOpenAI) -> None:
        with pytest.raises(exception) as raised:
            await client.chat.completions.create(model="gpt-test", messages=USER)
        assert raised.value.status_code == status
        assert "scripted failure" in raised.value.message
        assert raised.value.body == {"message": "scripted failure", "type": raised.value.type,
                                     "param": None, "code": raised.value.code}
        with pytest.raises(exception):
            await client.responses.create(model="gpt-test", input="hi", stream=True)

    server.reset([error(status, "scripted failure")] * 2)
    with_client(server, main, max_retries=0)


def test_client_retries_then_succeeds(server: OpenAIServer) -> None:
    async def main(client: openai.AsyncOpenAI) -> None:
        reply = await client.chat.completions.create(model="gpt-test", messages=USER)
        assert reply.choices[0].message.content == "finally"

    soon = {"retry-after-ms": "10"}
    script = [error(503, "busy", headers=soon), error(429, "slow down", headers=soon), text("finally")]
    server.reset(script)
    with_client(server, main, max_retries=2)
    assert len(server.requests) == 3


def test_delay_longer_than_client_timeout_raises_timeout(server: OpenAIServer) -> None:
    async def main(client: openai.AsyncOpenAI) -> None:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="gpt-test", messages=USER)
        assert time.monotonic() - started < 1.5
        slow_but_in_time = await client.chat.completions.create(model="gpt-test", messages=USER)
        assert slow_but_in_time.choices[0].message.content == "ok"

    server.reset([text("too late").after(5), text("ok", delay=0.1)])
    with_client(server, main, max_retries=0, timeout=0.3)


def test_hang_until_client_gives_up_and_close_ends_a_hang_at_once() -> None:
    own = OpenAIServer(script=[hang(), hang()]).start()       # this test closes its server

    async def main(client: openai.AsyncOpenAI) -> None:
        with pytest.raises(openai.APITimeoutError):
            await client.responses.create(model="gpt-test", input="hi", stream=True, timeout=0.2)

        waiting = asyncio.ensure_future(client.chat.completions.create(model="gpt-test", messages=USER))
        deadline = time.monotonic() + 5
        while len(own.requests) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await asyncio.to_thread(own.close)
        assert time.monotonic() - started < 2
        with pytest.raises(openai.APIError):
            await waiting

    try:
        with_client(own, main, max_retries=0, timeout=30)
    finally:
        own.close()


def test_missing_step_is_reported_and_not_retried(server: OpenAIServer) -> None:
    async def main(client: openai.AsyncOpenAI) -> None:
        with pytest.raises(openai.InternalServerError, match="no scripted step left"):
            await client.chat.completions.create(model="gpt-test", messages=USER)

    server.reset([])
    with_client(server, main)          # default max_retries=2
    assert len(server.requests) == 1                # x-should-retry: false stops the client's retries
    assert server.errors and "ScriptExhausted" in server.errors[0]


def test_script_modes() -> None:
    def request(user: str) -> RecordedRequest:
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": user}]}
        return RecordedRequest(0, "POST", "/v1/chat/completions", {}, body, 0.0)

    fifo = Script([text("a")]).add(text("b"))
    assert [fifo(request("x")).content, fifo(request("y")).content] == ["a", "b"]
    with pytest.raises(ScriptExhausted):
        fifo(request("x"))
    with pytest.raises(ValueError):
        fifo.add(text("c"), key="x")

    keyed = Script({"x": [text("x1"), text("x2")]}).add(text("y1"), key="y")
    assert [keyed(request(u)).content for u in ("x", "y", "x")] == ["x1", "y1", "x2"]
    with pytest.raises(ScriptExhausted, match="'y'"):
        keyed(request("y"))
    assert keyed.remaining == 0


# --- the Agents SDK -------------------------------------------------------------------------

class Triage(BaseModel):
    category: str
    reply: str


def triage_agent(model: Model, calls: list[dict[str, Any]]) -> Agent[Any]:
    @function_tool
    async def lookup_order(order_id: int) -> str:
        """Look up an order by its number."""
        calls.append({"order_id": order_id})
        return f"order {order_id}: shipped on Monday"

    return Agent(name="triage", instructions="You triage support mail for ACME.", model=model,
                 tools=[lookup_order], output_type=Triage)


async def run_agent(agent: Agent[Any], prompt: str, streamed: bool) -> Any:
    if not streamed:
        return (await Runner.run(agent, prompt)).final_output
    result = Runner.run_streamed(agent, prompt)
    async for _ in result.stream_events():
        pass
    return result.final_output


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_agent_calls_the_tool_then_returns_structured_output(server: OpenAIServer, api: str, streamed: bool) -> None:
    calls: list[dict[str, Any]] = []
    script = [tool_call("lookup_order", {"order_id": 1234}, call_id="call_1234"),
              json(Triage(category="shipping", reply="Your order shipped on Monday."))]

    async def main(client: openai.AsyncOpenAI) -> Any:
        agent = triage_agent(model_for(api, client), calls)
        return await run_agent(agent, "Where is order 1234?", streamed)

    server.reset(script)
    output = with_client(server, main, max_retries=0)

    assert output == Triage(category="shipping", reply="Your order shipped on Monday.")
    assert calls == [{"order_id": 1234}]
    first, second = server.requests
    assert {first.api, second.api} == {api} and first.stream == second.stream == streamed
    assert first.api_key == "test"
    assert "You triage support mail for ACME." in first.system_prompt
    assert first.last_user_message == "Where is order 1234?"
    assert first.tool_names == ["lookup_order"]
    assert first.json_schema is not None and set(first.json_schema["properties"]) == {"category", "reply"}
    assert first.tool_results == []
    result = second.tool_results[0]
    assert (result.call_id, result.name) == ("call_1234", "lookup_order")
    assert result.output == "order 1234: shipped on Monday"
    assert second.history_tool_calls[0].name == "lookup_order"


def test_keyed_script_serves_concurrent_conversations(server: OpenAIServer) -> None:
    script = Script({
        "Where is order 1?": [tool_call("lookup_order", {"order_id": 1}).after(0.2),
                              json({"category": "shipping", "reply": "one"})],
        "Where is order 2?": [tool_call("lookup_order", {"order_id": 2}),
                              json({"category": "billing", "reply": "two"}).after(0.2)],
    })

    calls: list[dict[str, Any]] = []

    async def main(client: openai.AsyncOpenAI) -> list[Any]:
        agent = triage_agent(model_for("chat", client), calls)
        return list(await asyncio.gather(run_agent(agent, "Where is order 1?", False),
                                         run_agent(agent, "Where is order 2?", True)))

    server.reset(script)
    one, two = with_client(server, main, max_retries=0)
    assert (one.reply, two.reply) == ("one", "two")
    assert sorted(c["order_id"] for c in calls) == [1, 2]
    assert script.remaining == 0


def test_responder_serves_many_concurrent_slow_runs(server: OpenAIServer) -> None:
    """The benchmark shape: 32 concurrent agent runs, every model reply 500 ms late."""

    def responder(request: RecordedRequest) -> Step:
        order_id = int((request.first_user_message or "").removeprefix("Where is order ").rstrip("?"))
        if not request.tool_results:
            return tool_call("lookup_order", {"order_id": order_id}).after(0.5)
        return json({"category": "shipping", "reply": request.tool_results[-1].output}).after(0.5)

    async def main(client: openai.AsyncOpenAI) -> list[Any]:
        agent = triage_agent(model_for("responses", client), [])
        return await asyncio.gather(*(run_agent(agent, f"Where is order {n}?", n % 2 == 0) for n in range(32)))

    server.reset(responder=responder)
    outputs = with_client(server, main, max_retries=0)
    assert [o.reply for o in outputs] == [f"order {n}: shipped on Monday" for n in range(32)]
    assert len(server.requests) == 64 and not server.errors
    # Every request is answered 0.5 s after it arrived, so requests that arrived less than 0.5 s
    # apart were in flight together: serial runs would never have two (no wall-clock limit).
    arrivals = sorted(r.received_at for r in server.requests)
    peak = max(sum(start <= t < start + 0.5 for t in arrivals) for start in arrivals)
    assert peak >= 4, f"at most {peak} model requests were in flight at once (1 if the runs were serial)"
