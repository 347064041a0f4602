"""The gateway's request body: validated at the edge, every parameter honoured or refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from routing import response_cache as rc
from routing.gateway import GatewayError, parse_request

USER = [{"role": "user", "content": "Summarize the incident report."}]


def refused(body: dict[str, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        parse_request(body)
    assert info.value.status == 400
    return info.value


@pytest.mark.parametrize(
    ("constraints", "param"),
    [
        ({"max_cost_usd": "abc"}, "aios_constraints.max_cost_usd"),
        ({"max_latency_ms": "500"}, "aios_constraints.max_latency_ms"),
        ({"min_context_tokens": "lots"}, "aios_constraints.min_context_tokens"),
        ({"requires_vision": "yes"}, "aios_constraints.requires_vision"),
        ({"max_cost_usd": -1}, "aios_constraints.max_cost_usd"),
        ({"fastest": True}, "aios_constraints.fastest"),
    ],
)
def test_bad_routing_constraints_are_a_400_naming_the_field(constraints: dict[str, Any], param: str) -> None:
    error = refused({"messages": USER, "aios_constraints": constraints})
    assert error.param == param and param in error.message
    assert error.body()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": {"type": "function", "function": {"name": "g"}},
            },
            "tool_choice",
        ),
        ({"tools": [{"type": "function", "function": {"name": "get weather"}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"n": 3}, "n"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"frequency_penalty": 3}, "frequency_penalty"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ],
)
def test_parameters_the_gateway_cannot_honour_are_refused_by_name(extra: dict[str, Any], param: str) -> None:
    assert refused({"messages": USER, **extra}).param == param


def test_what_openai_clients_send_by_default_is_accepted() -> None:
    req, stream, include_usage = parse_request(
        {
            "model": "auto",
            "messages": USER,
            "n": 1,
            "logprobs": False,
            "tools": [],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": 64,
            "temperature": 0,
        }
    )
    assert stream and include_usage and req.max_tokens == 64
    parsed, _, _ = parse_request({"messages": USER, "aios_constraints": {"max_cost_usd": 1, "max_latency_ms": 900}})
    assert parsed.constraints.max_cost_usd == 1.0 and parsed.constraints.max_latency_ms == 900


WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def test_tools_go_upstream_as_sent() -> None:
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Now", "parameters": parameters}}
    choice = {"type": "function", "function": {"name": "get_weather"}}
    req, _, _ = parse_request({"messages": USER, "tools": [tool], "tool_choice": choice, "parallel_tool_calls": False})
    assert req.extra == {"tools": [tool], "tool_choice": choice, "parallel_tool_calls": False}
    # Without tools, tool_choice "none" and parallel_tool_calls ask for nothing: not sent, not in the key.
    req, _, _ = parse_request({"messages": USER, "tools": [], "tool_choice": "none", "parallel_tool_calls": True})
    assert req.extra == {}


def key_of(body: dict[str, Any]) -> str:
    req, _, _ = parse_request({"temperature": 0, **body})
    return rc.cache_key("ns", req.messages, req.model, req.params())


def test_every_field_that_changes_the_answer_changes_the_cache_key() -> None:
    base = key_of({"messages": USER})
    tool_turns = [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]  # fmt: skip
    variants = [
        {"messages": [{**USER[0], "name": "alice"}]},
        {"messages": [*USER, *tool_turns]},
        {"messages": [*USER, tool_turns[0], {**tool_turns[1], "tool_call_id": "call_2"}]},
        {"messages": USER, "aios_constraints": {"max_cost_usd": 0.001}},
        {"messages": USER, "aios_constraints": {"requires_vision": True}},
        {"messages": USER, "response_format": {"type": "json_object"}},
        {"messages": USER, "frequency_penalty": 0.5},
        {"messages": USER, "presence_penalty": 0.5},
        {"messages": USER, "logit_bias": {"1": 10}},
        {"messages": USER, "tools": [WEATHER_TOOL]},
        {"messages": USER, "tools": [WEATHER_TOOL], "tool_choice": "required"},
        {"messages": USER, "tools": [WEATHER_TOOL], "parallel_tool_calls": False},
        {"messages": USER, "logprobs": True},
        {"messages": USER, "logprobs": True, "top_logprobs": 2},
    ]
    keys = [key_of(v) for v in variants]
    assert base not in keys and len(set(keys)) == len(keys)
    assert key_of({"messages": USER, "user": "end-user-7"}) == base  # who asks does not change the answer
    assert key_of({"messages": [{**USER[0], "name": None}]}) == base  # an unset field is no field
