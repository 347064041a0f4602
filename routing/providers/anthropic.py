"""Anthropic Messages API over aiohttp.

Wire format: https://docs.anthropic.com/en/api/messages and .../messages-streaming
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from routing.providers.base import (
    ChatRequest,
    ChatResponse,
    ErrorDetail,
    ErrorKind,
    FinishReason,
    HttpProvider,
    ProviderError,
    StreamEvent,
    StreamState,
    Usage,
    data_url,
    elapsed_ms,
    image_url,
    message_text,
)

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024  # the API requires max_tokens; OpenAI-style callers often leave it out
_SYSTEM_ROLES = frozenset({"system", "developer"})
_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Error `type`s in Anthropic's error JSON; needed for errors inside a stream, which have no status.
_ERROR_KINDS: dict[str, ErrorKind] = {
    "overloaded_error": "overloaded",
    "rate_limit_error": "rate_limit",
    "api_error": "server",
    "timeout_error": "timeout",
    "authentication_error": "auth",
    "permission_error": "auth",
    "not_found_error": "not_found",
    "invalid_request_error": "bad_request",
    "request_too_large": "bad_request",
    "billing_error": "auth",
}
_MALFORMED = (KeyError, IndexError, TypeError, AttributeError)


def anthropic_usage(raw: Any) -> Usage:
    """Anthropic's `input_tokens` excludes cache reads and writes; ours includes both."""
    if not isinstance(raw, dict):
        return Usage()
    cache_read = raw.get("cache_read_input_tokens") or 0
    cache_write = raw.get("cache_creation_input_tokens") or 0
    details = raw.get("output_tokens_details") or {}
    return Usage(
        input_tokens=(raw.get("input_tokens") or 0) + cache_read + cache_write,
        cached_input_tokens=cache_read,
        output_tokens=raw.get("output_tokens") or 0,
        reasoning_tokens=details.get("thinking_tokens") or 0,
    )


def _is_tool_results(content: Any) -> bool:
    return isinstance(content, list) and all(block.get("type") == "tool_result" for block in content)


def _tools(extra: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's tools, tool_choice and parallel_tool_calls as the Messages API's fields."""
    tools = [
        {
            "name": t["function"]["name"],
            **({"description": t["function"]["description"]} if t["function"].get("description") else {}),
            "input_schema": t["function"].get("parameters") or {"type": "object", "properties": {}},
        }
        for t in extra["tools"]
    ]
    choice = extra.get("tool_choice", "auto")
    if choice == "none":
        anthropic_choice: dict[str, Any] = {"type": "none"}
    elif choice == "required":
        anthropic_choice = {"type": "any"}
    elif isinstance(choice, dict):
        anthropic_choice = {"type": "tool", "name": choice["function"]["name"]}
    else:
        anthropic_choice = {"type": "auto"}
    if extra.get("parallel_tool_calls") is False and anthropic_choice["type"] != "none":
        anthropic_choice["disable_parallel_tool_use"] = True
    return {"tools": tools, "tool_choice": anthropic_choice}


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    arguments = json.dumps(block.get("input") or {}, separators=(",", ":"))
    return {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}


def anthropic_finish(raw: Any) -> FinishReason:
    return _FINISH.get(raw, "stop") if isinstance(raw, str) else "stop"


class AnthropicProvider(HttpProvider):
    name = "anthropic"
    # No penalties, logit bias or response format in the Messages API; `user` becomes metadata.user_id;
    # tools are translated (OpenAI function tools <-> Anthropic tool_use / tool_result blocks).
    supported_extra = frozenset({"user", "image_url", "tools", "tool_choice", "parallel_tool_calls"})

    def __init__(self, *, api_key: str | None, base_url: str = ANTHROPIC_BASE_URL) -> None:
        super().__init__(base_url=base_url, api_key=api_key)
        self._url = f"{self.base_url}/v1/messages"

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def _body(self, req: ChatRequest, *, stream: bool) -> dict[str, Any]:
        system: list[str] = []
        messages: list[dict[str, Any]] = []
        for message in req.messages:
            role = message["role"]
            if role in _SYSTEM_ROLES:
                # Anthropic takes the system prompt beside the turns, not among them
                system.append(message_text(message.get("content")))
            elif role == "tool":
                # A tool's result is a block of a user turn; results of parallel calls share one.
                result = {"type": "tool_result", "tool_use_id": message.get("tool_call_id") or "",
                          "content": message_text(message.get("content"))}  # fmt: skip
                if messages and messages[-1]["role"] == "user" and _is_tool_results(messages[-1]["content"]):
                    messages[-1]["content"].append(result)
                else:
                    messages.append({"role": "user", "content": [result]})
            elif role == "assistant" and message.get("tool_calls"):
                messages.append({"role": "assistant", "content": self._tool_use_blocks(message)})
            else:
                messages.append({"role": role, "content": self._content(message.get("content"))})
        body: dict[str, Any] = {"model": req.model, "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS}
        if system:
            body["system"] = "\n\n".join(system)
        body["messages"] = messages
        # No `seed` in the Messages API: it is dropped rather than failing the request.
        optional = (("temperature", req.temperature), ("top_p", req.top_p), ("stop_sequences", req.stop_list()))
        body.update((key, value) for key, value in optional if value is not None)
        self.check_extra(req)
        if req.extra.get("user"):
            body["metadata"] = {"user_id": req.extra["user"]}
        if req.extra.get("tools"):
            body.update(_tools(req.extra))
        if stream:
            body["stream"] = True
        return body

    def _tool_use_blocks(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """An assistant turn that called tools: its text, then one tool_use block per call."""
        content = self._content(message.get("content"))
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) and content else []
        blocks += content if isinstance(content, list) else []
        for call in message["tool_calls"]:
            function = call.get("function") or {}
            arguments = self.call_arguments(call)
            blocks.append({"type": "tool_use", "id": call.get("id") or "", "name": function.get("name") or "",
                           "input": arguments})  # fmt: skip
        return blocks

    def _content(self, content: Any) -> str | list[dict[str, Any]]:
        """Text stays a string; a message with images becomes content blocks (base64 for data:
        URLs, a URL source otherwise)."""
        if not isinstance(content, list) or all(part.get("type") == "text" for part in content):
            return message_text(content)
        blocks: list[dict[str, Any]] = []
        for part in content:
            url = image_url(part)
            if part.get("type") == "text":
                blocks.append({"type": "text", "text": part.get("text", "")})
            elif url is not None:
                inline = data_url(url)
                source = (
                    {"type": "base64", "media_type": inline[0], "data": inline[1]}
                    if inline
                    else {"type": "url", "url": url}
                )
                blocks.append({"type": "image", "source": source})
            else:
                raise self.error("bad_request", f"{part.get('type')} parts are not supported by anthropic")
        return blocks

    def _describe_error(self, status: int, payload: Any) -> ErrorDetail:
        # {"type": "error", "error": {"type": "rate_limit_error", "message": "..."}, "request_id": "req_..."}
        err = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(err, dict):
            return ErrorDetail(str(payload)[:500])
        detail = ErrorDetail(str(err.get("message") or err.get("type") or payload)[:500])
        if err.get("type") == "overloaded_error":
            detail.kind = "overloaded"  # whatever the status (529 today), overloaded means try again
        return detail

    async def complete(self, req: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        data = await self._post_json(self._url, self._body(req, stream=False), req.timeout_s)
        try:
            content = "".join(block["text"] for block in data["content"] if block.get("type") == "text")
            calls = [_tool_call(block) for block in data["content"] if block.get("type") == "tool_use"]
            return ChatResponse(
                id=data.get("id") or "",
                provider=self.name,
                model=data.get("model") or req.model,
                content=content,
                finish_reason=anthropic_finish(data.get("stop_reason")),
                usage=anthropic_usage(data["usage"]),
                latency_ms=elapsed_ms(started),
                tool_calls=calls,
            )
        except _MALFORMED as exc:
            raise self.error("malformed", f"unexpected response shape ({type(exc).__name__}: {exc})") from exc

    async def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        state = StreamState(model=req.model)
        raw_usage: dict[str, Any] = {}
        events = self._post_sse(self._url, self._body(req, stream=True), req.timeout_s)
        async with aclosing(events):
            async for event in events:
                text, tool_deltas = self._read_event(self.parse_json_event(event.data), state, raw_usage)
                if tool_deltas:
                    state.add_tool_deltas(tool_deltas, started)
                if text:
                    state.add_text(text, started)
                if text or tool_deltas:
                    yield StreamEvent(text=text, tool_calls=tool_deltas)
                if state.done:
                    break
        if not state.done:
            raise self.truncated()
        state.usage = anthropic_usage(raw_usage)
        yield StreamEvent(response=state.response(self.name, started))

    def _read_event(self, data: Any, state: StreamState, raw_usage: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """Fold one event into `state` and `raw_usage`; return its text delta and tool-call deltas
        (in OpenAI's shape, indexed by the order of the calls)."""
        try:
            kind = data["type"]
            if kind == "content_block_start" and data["content_block"].get("type") == "tool_use":
                block = data["content_block"]
                index = state.block_calls.setdefault(data["index"], len(state.block_calls))
                head = {"index": index, "id": block["id"], "type": "function",
                        "function": {"name": block["name"], "arguments": ""}}  # fmt: skip
                return "", [head]
            if kind == "content_block_delta":
                delta = data["delta"]
                if delta.get("type") == "input_json_delta" and data["index"] in state.block_calls:
                    piece = {
                        "index": state.block_calls[data["index"]],
                        "function": {"arguments": delta["partial_json"]},
                    }
                    return "", [piece]
                return (delta["text"] if delta.get("type") == "text_delta" else ""), []  # thinking is not content
            if kind == "message_start":
                message = data["message"]
                state.id, state.model = message.get("id") or "", message.get("model") or state.model
                raw_usage.update(message.get("usage") or {})
            elif kind == "message_delta":
                state.finish_reason = anthropic_finish(data.get("delta", {}).get("stop_reason"))
                # Counts here are cumulative and win over message_start's (output starts at 1 there).
                raw_usage.update((k, v) for k, v in (data.get("usage") or {}).items() if v is not None)
            elif kind == "message_stop":
                state.done = True
            elif kind == "error":
                raise self._stream_error(data)
            return "", []  # ping, content_block_start / _stop, and event types added later
        except _MALFORMED as exc:
            raise self.error("malformed", f"unexpected event shape ({type(exc).__name__}: {exc})") from exc

    def _stream_error(self, data: dict[str, Any]) -> ProviderError:
        err = data.get("error") or {}
        kind = _ERROR_KINDS.get(err.get("type"), "server")
        return self.error(kind, str(err.get("message") or err.get("type") or data)[:500])
