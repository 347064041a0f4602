"""OpenAI Chat Completions over aiohttp, also serving OpenAI-compatible servers (vLLM, Ollama, llama.cpp).

Wire format: https://platform.openai.com/docs/api-reference/chat
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from routing.providers.base import (
    ChatRequest,
    ChatResponse,
    ErrorDetail,
    FinishReason,
    HttpProvider,
    ProviderError,
    StreamEvent,
    StreamState,
    Usage,
    elapsed_ms,
)

OPENAI_BASE_URL = "https://api.openai.com/v1"
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the pre-tools name for the same thing
}
_MALFORMED = (KeyError, IndexError, TypeError, AttributeError)


def openai_usage(raw: Any) -> Usage:
    """OpenAI's counts already include cached input and reasoning output, as ours do."""
    if not isinstance(raw, dict):
        return Usage()
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=raw.get("prompt_tokens") or 0,
        cached_input_tokens=prompt_details.get("cached_tokens") or 0,
        output_tokens=raw.get("completion_tokens") or 0,
        reasoning_tokens=completion_details.get("reasoning_tokens") or 0,
    )


def openai_finish(raw: Any) -> FinishReason:
    return _FINISH.get(raw, "stop") if isinstance(raw, str) else "stop"


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as sent, less `extra_content` on tool calls: another provider's data about a
    call (Gemini's thought signature) that an OpenAI server may refuse as an unknown field."""
    if not any(m.get("tool_calls") and any("extra_content" in c for c in m["tool_calls"]) for m in messages):
        return messages
    return [
        {**m, "tool_calls": [{k: v for k, v in c.items() if k != "extra_content"} for c in m["tool_calls"]]}
        if m.get("tool_calls")
        else m
        for m in messages
    ]


def _tool_calls(raw: Any) -> list[dict[str, Any]]:
    """The message's tool calls in OpenAI's shape; `function_call` (pre-tools) is not produced by
    requests the gateway sends, so only `tool_calls` is read."""
    if not raw:
        return []
    return [
        {
            "id": call.get("id") or "",
            "type": call.get("type") or "function",
            "function": {"name": call["function"]["name"], "arguments": call["function"].get("arguments") or ""},
        }
        for call in raw
    ]


class OpenAIProvider(HttpProvider):
    name = "openai"
    # `image_url`: images given by URL (a requirement the router checks, never sent as a parameter).
    supported_extra = frozenset(
        {
            "frequency_penalty",
            "presence_penalty",
            "logit_bias",
            "response_format",
            "user",
            "image_url",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "logprobs",
            "top_logprobs",
        }
    )
    # OpenAI deprecated `max_tokens` for `max_completion_tokens`, and its reasoning models reject
    # the old name; the compatible servers only read `max_tokens`.
    max_tokens_field = "max_completion_tokens"

    def __init__(self, *, api_key: str | None, base_url: str = OPENAI_BASE_URL) -> None:
        super().__init__(base_url=base_url, api_key=api_key)
        self._url = f"{self.base_url}/chat/completions"

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def _body(self, req: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": req.model, "messages": _messages(req.messages)}
        optional = (
            ("temperature", req.temperature),
            ("top_p", req.top_p),
            (self.max_tokens_field, req.max_tokens),
            ("stop", req.stop),
            ("seed", req.seed),
        )
        body.update((key, value) for key, value in optional if value is not None)
        body.update(req.extra)  # already in OpenAI's names and shapes
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}  # a last chunk with usage, empty choices
        return body

    def _describe_error(self, status: int, payload: Any) -> ErrorDetail:
        # OpenAI: {"error": {"message", "type", "param", "code"}}; older vLLM: the same fields, unwrapped.
        err = payload.get("error", payload) if isinstance(payload, dict) else {}
        if not isinstance(err, dict):
            err = {"message": str(err)}
        detail = ErrorDetail(str(err.get("message") or payload)[:500])
        if "insufficient_quota" in (err.get("code"), err.get("type")):
            # A 429 that means "out of credit": no amount of waiting fixes it.
            detail.kind, detail.retryable = "rate_limit", False
        return detail

    async def complete(self, req: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        data = await self._post_json(self._url, self._body(req, stream=False), req.timeout_s)
        try:
            choice = data["choices"][0]
            message = choice["message"]
            return ChatResponse(
                id=data.get("id") or "",
                provider=self.name,
                model=data.get("model") or req.model,
                content=message.get("content") or "",  # null when the model only called tools
                finish_reason=openai_finish(choice.get("finish_reason")),
                usage=openai_usage(data.get("usage")),
                latency_ms=elapsed_ms(started),
                tool_calls=_tool_calls(message.get("tool_calls")),
                logprobs=choice.get("logprobs") or None,
            )
        except _MALFORMED as exc:
            raise self.error("malformed", f"unexpected response shape ({type(exc).__name__}: {exc})") from exc

    async def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        state = StreamState(model=req.model)
        events = self._post_sse(self._url, self._body(req, stream=True), req.timeout_s)
        async with aclosing(events):
            async for event in events:
                if event.data == "[DONE]":
                    state.done = True
                    break
                text, tool_deltas, logprobs = self._read_chunk(self.parse_json_event(event.data), state)
                if tool_deltas:
                    state.add_tool_deltas(tool_deltas, started)
                if text:
                    state.add_text(text, started)
                if logprobs:
                    state.add_logprobs(logprobs)
                if text or tool_deltas or logprobs:
                    yield StreamEvent(text=text, tool_calls=tool_deltas, logprobs=logprobs)
        if not (state.done or state.finish_reason):
            raise self.truncated()
        yield StreamEvent(response=state.response(self.name, started))

    def _read_chunk(self, chunk: Any, state: StreamState) -> tuple[str, list[dict[str, Any]], dict[str, Any] | None]:
        """Fold one chunk into `state`; return its text delta, tool-call deltas and logprobs."""
        try:
            if chunk.get("error"):
                raise self._stream_error(chunk)
            state.id = chunk.get("id") or state.id
            state.model = chunk.get("model") or state.model
            if chunk.get("usage"):
                state.usage = openai_usage(chunk["usage"])
            text, tool_deltas, logprobs = "", [], None
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                text += delta.get("content") or ""
                tool_deltas += [dict(d) for d in delta.get("tool_calls") or () if isinstance(d, dict)]
                logprobs = choice.get("logprobs") or logprobs
                if choice.get("finish_reason"):
                    state.finish_reason = openai_finish(choice["finish_reason"])
            return text, tool_deltas, logprobs
        except _MALFORMED as exc:
            raise self.error("malformed", f"unexpected chunk shape ({type(exc).__name__}: {exc})") from exc

    def _stream_error(self, chunk: dict[str, Any]) -> ProviderError:
        # Errors after the 200 arrive as a chunk; the stream is already open, so treat as a server fault.
        detail = self._describe_error(500, chunk)
        return self.error(detail.kind or "server", detail.message, retryable=detail.retryable)


class OpenAICompatibleProvider(OpenAIProvider):
    """vLLM, Ollama (`/v1`), llama.cpp server: same wire format, a base URL of their own, key optional."""

    name = "openai_compatible"
    max_tokens_field = "max_tokens"

    def __init__(self, *, base_url: str, api_key: str | None = None) -> None:
        super().__init__(api_key=api_key, base_url=base_url)
