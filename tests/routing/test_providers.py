"""Provider clients against a local server speaking each provider's wire format, and the simulator."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, TypeVar

import pytest

from routing.providers import registry
from routing.providers.base import (
    ChatRequest,
    ChatResponse,
    Provider,
    ProviderError,
    StreamEvent,
    Usage,
    call_with_retries,
    complete_sync,
    parse_retry_after,
)
from routing.providers.simulator import SimConfig, SimulatorProvider
from tests.routing.provider_server import ProviderServer, ScriptedResponse, fixture_response, load_fixture

T = TypeVar("T")
SYSTEM = "You are a concise geography tutor. Answer in one sentence."
MESSAGES = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy? Add one fact about it."},
]
ANSWER = "Rome is the capital of Italy, and it has been continuously inhabited for nearly three thousand years."


@dataclass(frozen=True)
class Case:
    """One provider: how to reach it on the local server and what it should send and report."""

    name: str
    api_key: str
    path_prefix: str  # where the base URL points on the local server
    auth_header: str
    auth_value: str
    request: ChatRequest
    usage: Usage  # normalized from `<name>_success.json`
    stream_usage: Usage  # normalized from `<name>_stream.json`
    error_fixtures: dict[str, str] = field(default_factory=dict)  # scenario -> fixture name
    retry_after_s: float = 0.0  # what the 429 fixture asks for
    missing_fields_body: Any = None

    def provider(self, server: ProviderServer, **overrides: Any) -> Provider:
        options = {"api_key": self.api_key, "base_url": server.url + self.path_prefix, **overrides}
        return registry.provider_for(self.name, **options)


OPENAI_KEY = "sk-proj-TESTKEY0123456789abcdefcdef"
CASES = [
    Case(
        name="openai",
        api_key=OPENAI_KEY,
        path_prefix="/v1",
        auth_header="authorization",
        auth_value=f"Bearer {OPENAI_KEY}",
        request=ChatRequest(model="o4-mini", messages=MESSAGES, max_tokens=2048, seed=7),
        usage=Usage(input_tokens=2006, cached_input_tokens=1792, output_tokens=220, reasoning_tokens=192),
        stream_usage=Usage(input_tokens=2006, cached_input_tokens=1792, output_tokens=156, reasoning_tokens=128),
        error_fixtures={"429": "openai_error_429", "500": "openai_error_500", "401": "openai_error_401"},
        retry_after_s=0.229,
        missing_fields_body={"id": "chatcmpl-x", "object": "chat.completion", "choices": []},
    ),
    Case(
        name="openai_compatible",
        api_key="vllm-TESTKEY-local-0123456789",
        path_prefix="/v1",
        auth_header="authorization",
        auth_value="Bearer vllm-TESTKEY-local-0123456789",
        request=ChatRequest(
            model="meta-llama/Llama-3.1-8B-Instruct",
            messages=MESSAGES,
            temperature=0.2,
            top_p=0.9,
            max_tokens=256,
            stop=["\n\nUser:"],
            seed=7,
        ),
        usage=Usage(input_tokens=71, output_tokens=23),
        stream_usage=Usage(input_tokens=71, output_tokens=23),
        error_fixtures={
            "429": "openai_compatible_error_429",
            "500": "openai_compatible_error_500",
            "401": "openai_compatible_error_401",
        },
        retry_after_s=2.0,
        missing_fields_body={"object": "chat.completion", "model": "x"},
    ),
    Case(
        name="anthropic",
        api_key="sk-ant-api03-TESTKEY-0123456789abcdef",
        path_prefix="",
        auth_header="x-api-key",
        auth_value="sk-ant-api03-TESTKEY-0123456789abcdef",
        request=ChatRequest(model="claude-sonnet-4-5", messages=MESSAGES, temperature=0.2, stop="\n\nHuman:", seed=7),
        usage=Usage(input_tokens=14 + 2048 + 312, cached_input_tokens=2048, output_tokens=31),
        stream_usage=Usage(input_tokens=14 + 2360, cached_input_tokens=2360, output_tokens=31),
        error_fixtures={"429": "anthropic_error_429", "500": "anthropic_error_500", "401": "anthropic_error_401"},
        retry_after_s=7.0,
        missing_fields_body={"id": "msg_x", "type": "message", "role": "assistant"},
    ),
    Case(
        name="gemini",
        api_key="AIzaSyTESTKEY-gemini-0123456789abcdefg",
        path_prefix="",
        auth_header="x-goog-api-key",
        auth_value="AIzaSyTESTKEY-gemini-0123456789abcdefg",
        request=ChatRequest(
            model="gemini-2.5-flash",
            messages=MESSAGES,
            temperature=0.2,
            top_p=0.95,
            max_tokens=512,
            stop=["END"],
            seed=7,
        ),
        usage=Usage(input_tokens=2080, cached_input_tokens=2048, output_tokens=22 + 345, reasoning_tokens=345),
        stream_usage=Usage(input_tokens=32, output_tokens=22 + 357, reasoning_tokens=357),
        error_fixtures={
            "429": "gemini_error_429",
            "500": "gemini_error_500",
            "401": "gemini_error_400_api_key_invalid",
        },
        retry_after_s=3.0,
        missing_fields_body={"modelVersion": "gemini-2.5-flash", "usageMetadata": {"promptTokenCount": 3}},
    ),
]
by_provider = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])


@pytest.fixture(scope="module")
def local_server() -> Iterator[ProviderServer]:
    server = ProviderServer().start()
    yield server
    server.stop()


@pytest.fixture
def server(local_server: ProviderServer) -> ProviderServer:
    local_server.reset()
    return local_server


def run(coro: Awaitable[T]) -> T:
    """Run one test's coroutine on a fresh loop, closing the pooled clients it opened."""

    async def main() -> T:
        try:
            return await coro
        finally:
            await registry.aclose_providers()

    return asyncio.run(main())


async def collect(provider: Provider, req: ChatRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(req)]


def raised(coro: Awaitable[Any]) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        run(coro)
    return info.value


# --- Success and the wire format -----------------------------------------------------------


@by_provider
def test_each_provider_sends_its_wire_format_and_reports_normalized_usage(case: Case, server: ProviderServer) -> None:
    recorded = load_fixture(f"{case.name}_success")
    server.enqueue(fixture_response(f"{case.name}_success"))

    response = run(case.provider(server).complete(case.request))

    sent = server.last
    assert sent.path == recorded["request"]["path"]
    assert sent.headers[case.auth_header] == case.auth_value
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == recorded["request"]["body"]
    assert response.provider == case.name
    assert response.content == ANSWER
    assert response.finish_reason == "stop"
    assert response.usage == case.usage
    assert response.id and response.model
    assert response.latency_ms > 0


def test_anthropic_gets_the_system_prompt_beside_the_messages_and_a_default_max_tokens(
    server: ProviderServer,
) -> None:
    server.enqueue(fixture_response("anthropic_success"))
    run(CASES[2].provider(server).complete(CASES[2].request))

    body = server.last.json
    assert body["system"] == SYSTEM
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["max_tokens"] == 1024
    assert "seed" not in body
    assert server.last.headers["anthropic-version"] == "2023-06-01"


def test_gemini_gets_a_system_instruction_and_model_turns(server: ProviderServer) -> None:
    server.enqueue(fixture_response("gemini_success"))
    run(CASES[3].provider(server).complete(CASES[3].request))

    body = server.last.json
    assert body["systemInstruction"] == {"parts": [{"text": SYSTEM}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert "key=" not in server.last.path  # the key travels in a header, never in the URL


def test_an_openai_compatible_server_without_a_key_gets_no_authorization_header(server: ProviderServer) -> None:
    server.enqueue(fixture_response("openai_compatible_success"))
    provider = registry.provider_for("openai_compatible", base_url=server.url + "/v1")

    run(provider.complete(CASES[1].request))

    assert "authorization" not in server.last.headers


def test_calls_reuse_one_pooled_connection(server: ProviderServer) -> None:
    server.enqueue(fixture_response("openai_success"), fixture_response("openai_success"))
    provider = CASES[0].provider(server)

    async def twice() -> None:
        await provider.complete(CASES[0].request)
        await provider.complete(CASES[0].request)

    run(twice())
    assert server.requests[0].client_port == server.requests[1].client_port


def test_a_proxy_named_in_the_environment_carries_the_calls(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The local server plays a forward proxy: it receives the absolute URL of the real host.
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    registry.forget_providers()  # the proxy is read when a provider is built
    server.enqueue(fixture_response("openai_compatible_success"))
    provider = registry.provider_for("openai_compatible", base_url="http://llm.internal.example:8000/v1")

    run(provider.complete(CASES[1].request))

    assert server.last.path == "http://llm.internal.example:8000/v1/chat/completions"


def test_no_proxy_exempts_a_host_from_the_environments_proxy(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens: a call through it would fail
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    registry.forget_providers()
    server.enqueue(fixture_response("openai_compatible_success"))
    provider = registry.provider_for("openai_compatible", base_url=server.url + "/v1")

    run(provider.complete(CASES[1].request))

    assert server.last.path == "/v1/chat/completions"


def test_the_sync_wrapper_completes_from_plain_code(server: ProviderServer) -> None:
    server.enqueue(fixture_response("anthropic_success"))

    response = complete_sync(CASES[2].provider(server), CASES[2].request)

    assert isinstance(response, ChatResponse)
    assert response.content == ANSWER


def test_further_openai_parameters_reach_an_openai_compatible_server_as_sent(server: ProviderServer) -> None:
    server.enqueue(fixture_response("openai_compatible_success"))
    extra = {"frequency_penalty": 0.5, "presence_penalty": -0.5, "logit_bias": {"50256": -100},
             "response_format": {"type": "json_object"}, "user": "end-user-7"}  # fmt: skip
    messages = [{"role": "user", "content": "hi", "name": "ops"}]
    run(CASES[1].provider(server).complete(ChatRequest(model="m", messages=messages, extra=extra)))

    body = server.last.json
    assert {k: body[k] for k in extra} == extra
    assert body["messages"] == messages  # every message field goes upstream


def test_gemini_maps_penalties_and_json_output_and_refuses_logit_bias(server: ProviderServer) -> None:
    server.enqueue(fixture_response("gemini_success"))
    extra = {"frequency_penalty": 0.5, "presence_penalty": 0.25, "response_format": {"type": "json_object"}}
    run(CASES[3].provider(server).complete(ChatRequest(model="gemini-2.5-flash", messages=MESSAGES, extra=extra)))

    config = server.last.json["generationConfig"]
    assert (config["frequencyPenalty"], config["presencePenalty"]) == (0.5, 0.25)
    assert config["responseMimeType"] == "application/json"
    refused = raised(CASES[3].provider(server).complete(
        ChatRequest(model="gemini-2.5-flash", messages=MESSAGES, extra={"logit_bias": {"1": 5}})))  # fmt: skip
    assert refused.kind == "bad_request" and "logit_bias" in str(refused)


def test_anthropic_refuses_what_the_messages_api_cannot_do_instead_of_dropping_it(server: ProviderServer) -> None:
    for extra in ({"frequency_penalty": 0.5}, {"response_format": {"type": "json_object"}}):
        error = raised(CASES[2].provider(server).complete(
            ChatRequest(model="claude-sonnet-4-5", messages=MESSAGES, extra=extra)))  # fmt: skip
        assert error.kind == "bad_request" and next(iter(extra)) in str(error)
    assert server.requests == []  # refused before sending anything
    server.enqueue(fixture_response("anthropic_success"))
    run(CASES[2].provider(server).complete(
        ChatRequest(model="claude-sonnet-4-5", messages=MESSAGES, extra={"user": "end-user-7"})))  # fmt: skip
    assert server.last.json["metadata"] == {"user_id": "end-user-7"}


PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
IMAGE_MESSAGES = [
    {"role": "user", "content": [
        {"type": "text", "text": "What is in these pictures?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]},
]  # fmt: skip


def test_anthropic_gets_images_as_content_blocks(server: ProviderServer) -> None:
    server.enqueue(fixture_response("anthropic_success"))
    run(CASES[2].provider(server).complete(ChatRequest(model="claude-sonnet-4-5", messages=IMAGE_MESSAGES)))

    assert server.last.json["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these pictures?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_gemini_gets_data_url_images_inline_and_refuses_other_urls(server: ProviderServer) -> None:
    server.enqueue(fixture_response("gemini_success"))
    inline_only = [{**IMAGE_MESSAGES[0], "content": IMAGE_MESSAGES[0]["content"][:2]}]
    run(CASES[3].provider(server).complete(ChatRequest(model="gemini-2.5-flash", messages=inline_only)))

    assert server.last.json["contents"][0]["parts"] == [
        {"text": "What is in these pictures?"},
        {"inlineData": {"mimeType": "image/png", "data": PIXEL}},
    ]
    error = raised(CASES[3].provider(server).complete(ChatRequest(model="gemini-2.5-flash", messages=IMAGE_MESSAGES)))
    assert error.kind == "bad_request" and "data: URLs" in str(error)


# --- Streaming -----------------------------------------------------------------------------


@by_provider
def test_each_provider_streams_text_deltas_and_ends_with_usage(case: Case, server: ProviderServer) -> None:
    recorded = load_fixture(f"{case.name}_stream")
    server.enqueue(fixture_response(f"{case.name}_stream"))

    events = run(collect(case.provider(server), case.request))

    assert server.last.path == recorded["request"]["path"]
    assert server.last.json == recorded["request"]["body"]
    *deltas, final = events
    assert len(deltas) >= 4
    assert all(not event.is_final for event in deltas)
    assert "".join(event.text for event in deltas) == ANSWER
    assert final.response is not None and final.response.content == ANSWER
    assert final.finish_reason == "stop"
    assert final.usage == case.stream_usage
    assert final.response.first_token_ms is not None


@pytest.mark.parametrize("line_ending", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_a_stream_chunk_of_any_size_and_any_line_ending_is_read_whole(server: ProviderServer, line_ending: str) -> None:
    # 300 KB in one SSE line: more than aiohttp's own line reader accepts (128 KB).
    big = "é" + "x" * 300_000
    recorded = fixture_response("openai_stream")
    assert recorded.sse is not None
    recorded.sse[1]["data"]["choices"][0]["delta"]["content"] = big
    recorded.line_ending = line_ending
    server.enqueue(recorded)

    *deltas, final = run(collect(CASES[0].provider(server), CASES[0].request))

    assert deltas[0].text == big
    assert final.response is not None and final.response.content.startswith(big)


TOOL_CALL_REQUEST = load_fixture("openai_tool_calls")["request"]["body"]


def _tool_request() -> ChatRequest:
    body = TOOL_CALL_REQUEST
    return ChatRequest(model=body["model"], messages=body["messages"],
                       extra={"tools": body["tools"], "tool_choice": body["tool_choice"]})  # fmt: skip


def test_openai_sends_tools_and_reads_back_parallel_tool_calls(server: ProviderServer) -> None:
    server.enqueue(fixture_response("openai_tool_calls"))

    response = run(CASES[0].provider(server).complete(_tool_request()))

    assert server.last.json == TOOL_CALL_REQUEST
    assert response.finish_reason == "tool_calls" and response.content == ""
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in response.tool_calls] == [
        ("call_a1B2c3D4e5F6g7H8i9J0kLmN", "get_weather", {"location": "Boston, MA", "unit": "fahrenheit"}),
        ("call_Z9y8X7w6V5u4T3s2R1q0PoNm", "get_weather", {"location": "Paris, France", "unit": "celsius"}),
    ]


def test_openai_streams_tool_call_deltas_and_assembles_the_calls(server: ProviderServer) -> None:
    server.enqueue(fixture_response("openai_stream_tool_calls"))

    *deltas, final = run(collect(CASES[0].provider(server), _tool_request()))

    assert all(event.tool_calls and not event.text for event in deltas)
    assert deltas[0].tool_calls[0]["function"]["name"] == "get_weather"
    assert final.response is not None and final.finish_reason == "tool_calls"
    calls = final.response.tool_calls
    assert [c["id"] for c in calls] == ["call_q1W2e3R4t5Y6u7I8o9P0aSdF", "call_g7H8j9K0l1Z2x3C4v5B6nMqW"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"location": "Boston, MA"},
        {"location": "Paris, France"},
    ]
    assert final.usage == Usage(input_tokens=82, output_tokens=44)


def test_anthropic_gets_tools_and_tool_turns_as_blocks_and_answers_in_openai_shape(server: ProviderServer) -> None:
    server.enqueue(fixture_response("anthropic_tool_use"))
    call = {
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location": "Oslo"}'},
    }
    second = {**call, "id": "toolu_2", "function": {**call["function"], "arguments": '{"location": "Bergen"}'}}
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo and Bergen?"},
        {"role": "assistant", "content": None, "tool_calls": [call, second]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "sun"},
        {"role": "user", "content": "And in Boston?"},
    ]
    extra = {"tools": TOOL_CALL_REQUEST["tools"], "tool_choice": "required", "parallel_tool_calls": False}

    response = run(CASES[2].provider(server).complete(ChatRequest(model="claude-sonnet-4-5", messages=history,
                                                                  extra=extra)))  # fmt: skip

    sent = server.last.json
    assert sent["tools"] == [{"name": "get_weather", "description": "Get the current weather in a given location",
                              "input_schema": TOOL_CALL_REQUEST["tools"][0]["function"]["parameters"]}]  # fmt: skip
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert sent["messages"][1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Oslo"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"location": "Bergen"}}]}  # fmt: skip
    assert sent["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "sun"}]}  # fmt: skip
    assert response.finish_reason == "tool_calls" and response.content == "I'll check the weather in Boston for you."
    assert response.tool_calls == [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"location":"Boston, MA","unit":"fahrenheit"}'}}]  # fmt: skip


@pytest.mark.parametrize("case", [CASES[2], CASES[3]], ids=["anthropic", "gemini"])
def test_a_tool_call_sent_back_with_arguments_that_are_not_json_is_a_bad_request(
    case: Case, server: ProviderServer
) -> None:
    call = {"id": "call_x", "type": "function", "function": {"name": "get_weather", "arguments": "{city: Oslo"}}
    history = [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "call_x", "content": "rain"}]  # fmt: skip

    error = raised(case.provider(server).complete(ChatRequest(model="m", messages=history)))

    assert error.kind == "bad_request" and "call_x" in str(error) and not server.requests


def test_anthropic_streams_a_tool_call_as_openai_deltas(server: ProviderServer) -> None:
    server.enqueue(fixture_response("anthropic_stream_tool_use"))
    req = ChatRequest(model="claude-sonnet-4-5", messages=MESSAGES, extra={"tools": TOOL_CALL_REQUEST["tools"]})

    *deltas, final = run(collect(CASES[2].provider(server), req))

    assert "".join(e.text for e in deltas) == "Okay, let me check the weather."
    heads = [d for e in deltas for d in e.tool_calls if "id" in d]
    assert heads == [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                      "function": {"name": "get_weather", "arguments": ""}}]  # fmt: skip
    assert final.response is not None and final.finish_reason == "tool_calls"
    (call,) = final.response.tool_calls
    assert json.loads(call["function"]["arguments"]) == {"location": "San Francisco, CA", "unit": "fahrenheit"}


YES = {"token": "Yes", "logprob": -0.0001, "bytes": [89, 101, 115]}
NO = {"token": "No", "logprob": -9.2, "bytes": [78, 111]}
STOP = {"token": ".", "logprob": -0.02, "bytes": [46]}
LOGPROBS = {"content": [{**YES, "top_logprobs": [YES, NO]}, {**STOP, "top_logprobs": [STOP]}], "refusal": None}


def test_openai_passes_logprobs_through_streamed_or_not(server: ProviderServer) -> None:
    message = {"role": "assistant", "content": "Yes."}
    choice = {"index": 0, "message": message, "logprobs": LOGPROBS, "finish_reason": "stop"}
    answer = {"id": "chatcmpl-lp", "object": "chat.completion", "model": "gpt-4.1-mini", "choices": [choice]}
    server.enqueue(ScriptedResponse(body=answer))
    req = ChatRequest(model="gpt-4.1-mini", messages=MESSAGES, extra={"logprobs": True, "top_logprobs": 2})

    response = run(CASES[0].provider(server).complete(req))

    assert server.last.json["logprobs"] is True and server.last.json["top_logprobs"] == 2
    assert response.logprobs == LOGPROBS

    def chunk(index: int, finish: str | None = None) -> dict[str, Any]:
        token = LOGPROBS["content"][index]
        return {"data": {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4.1-mini", "choices": [
            {"index": 0, "delta": {"content": token["token"]}, "logprobs": {"content": [token], "refusal": None},
             "finish_reason": finish}]}}  # fmt: skip

    server.enqueue(ScriptedResponse(sse=[chunk(0), chunk(1, "stop"), {"data": "[DONE]"}]))
    *deltas, final = run(collect(CASES[0].provider(server), req))

    assert [d.logprobs["content"][0]["token"] for d in deltas if d.logprobs] == ["Yes", "."]
    assert final.response is not None and final.response.logprobs == LOGPROBS


def test_gemini_gets_function_declarations_and_tool_turns_with_their_signatures(server: ProviderServer) -> None:
    server.enqueue(fixture_response("gemini_function_call"))
    signed = {"google": {"thought_signature": "sig-from-before"}}
    call = {"id": "call_a", "type": "function", "extra_content": signed,
            "function": {"name": "get_weather", "arguments": '{"location": "Oslo"}'}}  # fmt: skip
    other = {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    history = [
        {"role": "user", "content": "Weather and time in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call, other]},
        {"role": "tool", "tool_call_id": "call_a", "content": '{"sky": "rain"}'},
        {"role": "tool", "tool_call_id": "call_b", "content": "14:05"},
        {"role": "user", "content": "And in Boston?"},
    ]
    tools = [*TOOL_CALL_REQUEST["tools"], {"type": "function", "function": {"name": "get_time"}}]
    extra = {"tools": tools, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}

    response = run(CASES[3].provider(server).complete(ChatRequest(model="gemini-2.5-flash", messages=history,
                                                                  extra=extra)))  # fmt: skip

    sent = server.last.json
    weather = TOOL_CALL_REQUEST["tools"][0]["function"]
    assert sent["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": weather["description"], "parametersJsonSchema": weather["parameters"]},
        {"name": "get_time"}]}]  # fmt: skip
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    assert sent["contents"][1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"location": "Oslo"}}, "thoughtSignature": "sig-from-before"},
        {"functionCall": {"name": "get_time", "args": {}}}]}  # fmt: skip
    assert sent["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"sky": "rain"}}},
        {"functionResponse": {"name": "get_time", "response": {"result": "14:05"}}}]}  # fmt: skip
    assert response.finish_reason == "tool_calls"
    (answer,) = response.tool_calls
    assert answer["function"]["name"] == "get_weather" and answer["id"].startswith("call_")
    assert json.loads(answer["function"]["arguments"]) == {"location": "Boston, MA", "unit": "fahrenheit"}
    assert answer["extra_content"] == {"google": {"thought_signature": "CiQBVKhc7qMx0f1HQm9/signature=="}}


def test_gemini_streams_whole_function_calls_as_openai_deltas(server: ProviderServer) -> None:
    server.enqueue(fixture_response("gemini_stream_function_call"))
    req = ChatRequest(model="gemini-2.5-flash", messages=MESSAGES, extra={"tools": TOOL_CALL_REQUEST["tools"]})

    *deltas, final = run(collect(CASES[3].provider(server), req))

    assert "".join(e.text for e in deltas) == "Checking both cities."
    assert [d["index"] for e in deltas for d in e.tool_calls] == [0, 1]
    assert final.response is not None and final.finish_reason == "tool_calls"
    calls = final.response.tool_calls
    assert [json.loads(c["function"]["arguments"])["location"] for c in calls] == ["Boston, MA", "Paris, France"]
    assert calls[0]["extra_content"]["google"]["thought_signature"] == "sig-one" and "extra_content" not in calls[1]


def test_another_providers_data_about_a_call_is_not_sent_to_openai(server: ProviderServer) -> None:
    server.enqueue(fixture_response("openai_success"))
    call = {"id": "call_a", "type": "function", "extra_content": {"google": {"thought_signature": "s"}},
            "function": {"name": "get_weather", "arguments": "{}"}}  # fmt: skip
    history = [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "call_a", "content": "rain"}]  # fmt: skip

    run(CASES[0].provider(server).complete(ChatRequest(model="o4-mini", messages=history)))

    assert "extra_content" not in server.last.json["messages"][-2]["tool_calls"][0]
    assert call["extra_content"]  # the caller's messages are left as they were


def test_every_provider_takes_tools_and_only_openai_wire_ones_take_logprobs() -> None:
    tools = {"tools": TOOL_CALL_REQUEST["tools"]}
    assert registry.unsupported_params("openai", tools) == []
    assert registry.unsupported_params("openai_compatible", tools) == []
    assert registry.unsupported_params("anthropic", tools) == []
    assert registry.unsupported_params("gemini", tools) == []
    assert registry.unsupported_params("anthropic", {"logprobs": True}) == ["logprobs"]
    assert registry.unsupported_params("gemini", {"logprobs": True}) == ["logprobs"]
    assert registry.unsupported_params("openai_compatible", {"logprobs": True, "top_logprobs": 2}) == []
    assert registry.unsupported_params("sim", tools) == []


def test_the_simulator_calls_the_tool_the_question_is_about_then_answers_its_result() -> None:
    sim = SimulatorProvider(SimConfig(latency_scale=0, seed=1))
    weather, clock = TOOL_CALL_REQUEST["tools"][0], {"type": "function", "function": {"name": "get_time"}}
    ask = [{"role": "user", "content": "Is it raining, what's the weather in Oslo?"}]
    req = ChatRequest(model="simple", messages=ask, extra={"tools": [clock, weather]})

    response = asyncio.run(sim.complete(req))

    assert response.finish_reason == "tool_calls"
    (call,) = response.tool_calls
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "simulated"}
    # No word in common and tool_choice "auto": prose, as a model would answer.
    unrelated = ChatRequest(model="simple", messages=[{"role": "user", "content": "Hello"}], extra={"tools": [weather]})
    assert not asyncio.run(sim.complete(unrelated)).tool_calls
    # After the tool's result: an answer.
    result = [*ask, {"role": "assistant", "content": None, "tool_calls": [call]},
              {"role": "tool", "tool_call_id": call["id"], "content": "rain, 4 C"}]  # fmt: skip
    answer = asyncio.run(sim.complete(ChatRequest(model="simple", messages=result, extra={"tools": [weather]})))
    assert answer.finish_reason == "stop" and answer.content.startswith("[simulated")


def test_an_error_event_inside_an_anthropic_stream_is_a_retryable_overload(server: ProviderServer) -> None:
    server.enqueue(fixture_response("anthropic_stream_overloaded"))

    error = raised(collect(CASES[2].provider(server), CASES[2].request))

    assert (error.kind, error.retryable) == ("overloaded", True)


def test_a_stream_that_ends_without_its_final_event_is_a_retryable_connection_error(server: ProviderServer) -> None:
    recorded = fixture_response("openai_stream")
    recorded.sse = recorded.sse[:3] if recorded.sse else []
    server.enqueue(recorded)

    error = raised(collect(CASES[0].provider(server), CASES[0].request))

    assert (error.kind, error.retryable) == ("connection", True)


# --- Errors --------------------------------------------------------------------------------


@by_provider
def test_a_429_carries_the_servers_wait_and_a_retry_after_it_succeeds(case: Case, server: ProviderServer) -> None:
    server.enqueue(fixture_response(case.error_fixtures["429"]))
    error = raised(case.provider(server).complete(case.request))
    assert (error.kind, error.status, error.retryable) == ("rate_limit", 429, True)
    assert error.retry_after_s == pytest.approx(case.retry_after_s)

    server.enqueue(fixture_response(case.error_fixtures["429"]), fixture_response(f"{case.name}_success"))
    waits: list[float] = []

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)

    provider = case.provider(server)
    response = run(call_with_retries(lambda: provider.complete(case.request), sleep=record_wait))

    assert response.content == ANSWER
    assert waits == [pytest.approx(min(case.retry_after_s, 5.0))]  # call_with_retries caps at cap_s=5


@by_provider
def test_a_500_is_a_retryable_server_error(case: Case, server: ProviderServer) -> None:
    server.enqueue(fixture_response(case.error_fixtures["500"]))

    error = raised(case.provider(server).complete(case.request))

    assert (error.kind, error.status, error.retryable) == ("server", 500, True)
    assert error.message


@by_provider
def test_a_rejected_key_is_permanent_and_never_shows_the_key(case: Case, server: ProviderServer) -> None:
    server.enqueue(fixture_response(case.error_fixtures["401"]))

    error = raised(case.provider(server).complete(case.request))

    assert (error.kind, error.retryable) == ("auth", False)
    assert case.api_key not in str(error) + repr(error) + error.message
    assert "cdef." not in error.message  # OpenAI's masked echo of the key's tail is scrubbed too


@by_provider
def test_an_error_body_echoing_the_whole_key_is_redacted(case: Case, server: ProviderServer) -> None:
    echo = {"error": {"message": f"key {case.api_key} is not allowed", "type": "permission_error"}}
    server.enqueue(ScriptedResponse(status=403, body=echo))

    error = raised(case.provider(server).complete(case.request))

    assert case.api_key not in str(error)
    assert "[redacted]" in str(error)


@by_provider
def test_a_server_slower_than_the_timeout_is_a_retryable_timeout(case: Case, server: ProviderServer) -> None:
    server.enqueue(fixture_response(f"{case.name}_success", delay_s=1.0))
    request = ChatRequest(model=case.request.model, messages=MESSAGES, timeout_s=0.2)

    started = time.perf_counter()
    error = raised(case.provider(server).complete(request))

    assert (error.kind, error.status, error.retryable) == ("timeout", None, True)
    assert time.perf_counter() - started < 0.9


def test_a_stream_that_stalls_past_the_timeout_is_a_timeout(server: ProviderServer) -> None:
    server.enqueue(fixture_response("gemini_stream", delay_s=1.0, stall_after=2))
    request = ChatRequest(model="gemini-2.5-flash", messages=MESSAGES, timeout_s=0.2)

    error = raised(collect(CASES[3].provider(server), request))

    assert (error.kind, error.retryable) == ("timeout", True)


@by_provider
def test_a_body_that_is_not_json_is_malformed_and_not_retried(case: Case, server: ProviderServer) -> None:
    html = ScriptedResponse(status=200, headers={"content-type": "text/html"}, body="<html><body>Bad gateway</body>")
    server.enqueue(html, html)
    provider = case.provider(server)

    error = raised(call_with_retries(lambda: provider.complete(case.request), sleep=_no_wait))

    assert (error.kind, error.retryable) == ("malformed", False)
    assert len(server.requests) == 1


@by_provider
def test_a_json_body_missing_the_answer_is_malformed(case: Case, server: ProviderServer) -> None:
    server.enqueue(ScriptedResponse(status=200, body=case.missing_fields_body))

    error = raised(case.provider(server).complete(case.request))

    assert (error.kind, error.retryable) == ("malformed", False)


@by_provider
def test_a_stream_chunk_that_is_not_json_is_malformed(case: Case, server: ProviderServer) -> None:
    server.enqueue(ScriptedResponse(sse=[{"data": '{"choices": [{"delta": {"content": "Ro'}]))

    error = raised(collect(case.provider(server), case.request))

    assert error.kind == "malformed"


def test_an_html_error_page_from_a_proxy_is_still_classified_by_status(server: ProviderServer) -> None:
    server.enqueue(ScriptedResponse(status=502, headers={"content-type": "text/html"}, body="<h1>502 Bad Gateway</h1>"))

    error = raised(CASES[1].provider(server).complete(CASES[1].request))

    assert (error.kind, error.status, error.retryable) == ("server", 502, True)
    assert "Bad Gateway" in error.message


def test_anthropic_529_is_a_retryable_overload(server: ProviderServer) -> None:
    server.enqueue(fixture_response("anthropic_error_529"))

    error = raised(CASES[2].provider(server).complete(CASES[2].request))

    assert (error.kind, error.status, error.retryable) == ("overloaded", 529, True)


def test_gemini_503_is_a_retryable_overload(server: ProviderServer) -> None:
    server.enqueue(fixture_response("gemini_error_503"))

    error = raised(CASES[3].provider(server).complete(CASES[3].request))

    assert (error.kind, error.status, error.retryable) == ("overloaded", 503, True)


def test_openai_insufficient_quota_is_a_429_not_worth_retrying(server: ProviderServer) -> None:
    server.enqueue(fixture_response("openai_error_insufficient_quota"))

    error = raised(CASES[0].provider(server).complete(CASES[0].request))

    assert (error.kind, error.status, error.retryable) == ("rate_limit", 429, False)


def test_an_unreachable_server_is_a_retryable_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    provider = registry.provider_for("openai_compatible", base_url=f"http://127.0.0.1:{port}/v1")

    error = raised(provider.complete(CASES[1].request))

    assert (error.kind, error.retryable) == ("connection", True)


# --- Retry policy --------------------------------------------------------------------------


async def _no_wait(seconds: float) -> None:
    return None


def test_retry_after_reads_milliseconds_seconds_and_http_dates() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == pytest.approx(0.25)
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": formatdate(time.time() + 30, usegmt=True)}) == pytest.approx(30, abs=2)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_retries_back_off_with_capped_full_jitter_and_stop_at_permanent_errors() -> None:
    calls: list[int] = []
    waits: list[float] = []

    async def flaky() -> str:
        calls.append(1)
        raise ProviderError("boom", provider="sim", kind="server", status=500)

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)

    with pytest.raises(ProviderError):
        asyncio.run(call_with_retries(flaky, attempts=4, base_s=0.5, cap_s=1.5, sleep=record_wait))
    assert len(calls) == 4
    assert [0 <= wait <= ceiling for wait, ceiling in zip(waits, (0.5, 1.0, 1.5), strict=True)] == [True] * 3

    async def permanent() -> str:
        calls.append(1)
        raise ProviderError("no", provider="sim", kind="bad_request", status=400)

    calls.clear()
    with pytest.raises(ProviderError):
        asyncio.run(call_with_retries(permanent, sleep=record_wait))
    assert len(calls) == 1


def test_a_long_retry_after_is_capped() -> None:
    waits: list[float] = []
    outcomes = iter([ProviderError("slow down", provider="x", kind="rate_limit", retry_after_s=120.0), None])

    async def once_limited() -> str:
        outcome = next(outcomes)
        if outcome:
            raise outcome
        return "ok"

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)

    assert asyncio.run(call_with_retries(once_limited, cap_s=5.0, sleep=record_wait)) == "ok"
    assert waits == [5.0]


# --- Registry ------------------------------------------------------------------------------


def test_model_ids_split_on_the_first_slash() -> None:
    assert registry.parse_model_id("openai/gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert registry.parse_model_id("openai_compatible/meta-llama/Llama-3.1-8B") == (
        "openai_compatible",
        "meta-llama/Llama-3.1-8B",
    )
    with pytest.raises(ValueError):
        registry.parse_model_id("gpt-4o-mini")
    with pytest.raises(ValueError):
        registry.parse_model_id("acme/model")


def test_the_registry_reads_keys_from_the_environment_and_shares_one_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "AIzaSyTESTKEY-env-0123456789abcdefghij")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("AIOS_OPENAI_COMPATIBLE_BASE_URL", raising=False)

    assert registry.provider_for("gemini") is registry.provider_for("gemini")
    assert registry.is_configured("gemini") and registry.is_configured("sim")
    assert not registry.is_configured("anthropic")
    with pytest.raises(registry.ProviderNotConfigured):
        registry.provider_for("anthropic")
    with pytest.raises(registry.ProviderNotConfigured):
        registry.provider_for("openai_compatible")
    assert "AIzaSy" not in repr(registry.provider_for("gemini"))


# --- Simulator -----------------------------------------------------------------------------


def sim(**settings: Any) -> SimulatorProvider:
    return SimulatorProvider(SimConfig.from_dict({"latency_scale": 0, **settings}))


def sim_request(model: str = "medium", **fields: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=MESSAGES, **fields)


async def outcomes(provider: SimulatorProvider, calls: int) -> list[ChatResponse | ProviderError]:
    results: list[ChatResponse | ProviderError] = []
    for _ in range(calls):
        try:
            results.append(await provider.complete(sim_request()))
        except ProviderError as error:
            results.append(error)
    return results


def test_the_simulator_fails_at_its_configured_rate() -> None:
    results = asyncio.run(outcomes(sim(error_rate=0.2, retryable_share=0.75, seed=11), 2000))

    errors = [r for r in results if isinstance(r, ProviderError)]
    assert 0.17 < len(errors) / len(results) < 0.23
    assert 0.68 < sum(e.retryable for e in errors) / len(errors) < 0.82
    assert {e.provider for e in errors} == {"sim"}


def test_the_simulator_at_zero_latency_answers_at_once_and_says_it_is_simulated() -> None:
    started = time.perf_counter()
    results = asyncio.run(outcomes(sim(), 200))

    assert time.perf_counter() - started < 1.0
    response = results[0]
    assert isinstance(response, ChatResponse)
    assert response.provider == "sim"
    assert response.content.startswith("[simulated")
    assert response.usage.input_tokens == math.ceil(sum(len(m["content"]) for m in MESSAGES) / 4)
    assert response.usage.output_tokens > 0


def test_the_simulator_streams_a_few_chunks_that_add_up_to_the_answer() -> None:
    events = asyncio.run(collect(sim(seed=3), sim_request("simple")))

    *deltas, final = events
    assert len(deltas) >= 2
    assert final.response is not None
    assert "".join(e.text for e in deltas) == final.response.content
    assert final.usage is not None and final.usage.output_tokens > 0


def test_the_simulator_is_deterministic_given_a_seed() -> None:
    first = asyncio.run(outcomes(sim(error_rate=0.3, seed=5), 20))
    second = asyncio.run(outcomes(sim(error_rate=0.3, seed=5), 20))
    assert [str(r) if isinstance(r, ProviderError) else r.content for r in first] == [
        str(r) if isinstance(r, ProviderError) else r.content for r in second
    ]

    async def answer(provider: SimulatorProvider) -> str:
        return (await provider.complete(sim_request(seed=42))).content

    assert asyncio.run(answer(sim())) == asyncio.run(answer(sim(seed=999)))


def test_the_complex_tier_thinks_and_max_tokens_caps_the_output() -> None:
    response = asyncio.run(sim(seed=1).complete(sim_request("complex")))
    assert response.usage.reasoning_tokens > 0
    assert response.usage.output_tokens > response.usage.reasoning_tokens

    capped = asyncio.run(sim(seed=1).complete(sim_request("complex", max_tokens=50)))
    assert capped.usage.output_tokens <= 50
    assert capped.finish_reason == "length"


def test_the_simulator_takes_its_latency_from_the_tier_distribution() -> None:
    provider = sim(latency_scale=1, tiers={"simple": {"latency_median_ms": 20, "latency_sigma": 0.1}})

    started = time.perf_counter()
    asyncio.run(provider.complete(sim_request("simple")))

    assert 0.012 < time.perf_counter() - started < 0.2


def test_the_simulator_reads_its_settings_from_the_environment() -> None:
    config = SimConfig.from_env({"AIOS_SIM_ERROR_RATE": "0.05", "AIOS_SIM_LATENCY_SCALE": "0"})
    assert (config.error_rate, config.latency_scale) == (0.05, 0.0)
    with pytest.raises(ValueError, match="AIOS_SIM_ERROR_RATE"):
        SimConfig.from_env({"AIOS_SIM_ERROR_RATE": "lots"})
    with pytest.raises(ValueError):
        SimConfig.from_dict({"error_rate": 1.5})


def test_the_simulator_reads_its_tier_distributions_from_the_environment() -> None:
    tiers = json.dumps({"simple": {"latency_median_ms": 80, "latency_sigma": 0.2, "output_tokens_median": 12},
                        "fast": {"latency_median_ms": 5}})  # fmt: skip
    config = SimConfig.from_env({"AIOS_SIM_TIERS": tiers})
    assert (config.tiers["simple"].latency_median_ms, config.tiers["simple"].output_tokens_median) == (80, 12)
    assert config.tiers["simple"].reasoning_ratio == 0.0 and config.tiers["fast"].latency_median_ms == 5
    assert config.tiers["complex"] == SimConfig().tiers["complex"]  # the others keep their defaults
    for bad, why in (("{nope", "JSON"), ('{"simple": {"latency_median": 1}}', "unknown fields"),
                     ('{"simple": {"latency_median_ms": -5}}', ">= 0"), ('{"simple": 3}', "objects")):  # fmt: skip
        with pytest.raises(ValueError, match=why):
            SimConfig.from_env({"AIOS_SIM_TIERS": bad})
