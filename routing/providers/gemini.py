"""Google Gemini (Generative Language API, v1beta) over aiohttp.

Wire format: https://ai.google.dev/api/generate-content
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
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

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
_SYSTEM_ROLES = frozenset({"system", "developer"})
_BLOCKED = ("SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY")
_FINISH: dict[str, FinishReason] = {"STOP": "stop", "MAX_TOKENS": "length"} | dict.fromkeys(_BLOCKED, "content_filter")
# google.rpc status names, for errors inside a stream (which carry no HTTP status of their own).
_STATUS_KINDS: dict[str, ErrorKind] = {
    "RESOURCE_EXHAUSTED": "rate_limit",
    "UNAVAILABLE": "overloaded",
    "INTERNAL": "server",
    "DEADLINE_EXCEEDED": "timeout",
    "UNAUTHENTICATED": "auth",
    "PERMISSION_DENIED": "auth",
    "NOT_FOUND": "not_found",
    "INVALID_ARGUMENT": "bad_request",
    "FAILED_PRECONDITION": "bad_request",
}
_MALFORMED = (KeyError, IndexError, TypeError, AttributeError)


def gemini_usage(raw: Any) -> Usage:
    """promptTokenCount already includes cached content; thinking is counted apart from the
    candidates, so it is added to output (it is billed as output)."""
    if not isinstance(raw, dict):
        return Usage()
    thoughts = raw.get("thoughtsTokenCount") or 0
    return Usage(
        input_tokens=(raw.get("promptTokenCount") or 0) + (raw.get("toolUsePromptTokenCount") or 0),
        cached_input_tokens=raw.get("cachedContentTokenCount") or 0,
        output_tokens=(raw.get("candidatesTokenCount") or 0) + thoughts,
        reasoning_tokens=thoughts,
    )


def gemini_finish(raw: Any) -> FinishReason:
    return _FINISH.get(raw, "stop") if isinstance(raw, str) else "stop"


def _duration_s(value: Any) -> float | None:
    """A google.protobuf.Duration in JSON form ("37s", "0.5s")."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        return float(value[:-1])
    except ValueError:
        return None


def _candidate_text(candidate: dict[str, Any]) -> str:
    parts = (candidate.get("content") or {}).get("parts") or ()
    # Parts marked `thought` are thinking summaries, not the answer.
    return "".join(part.get("text", "") for part in parts if not part.get("thought"))


class GeminiProvider(HttpProvider):
    name = "gemini"
    # Penalties map to generationConfig; a JSON response to responseMimeType. No logit bias; `user`
    # has no equivalent and does not change the answer, so it is accepted and not sent.
    supported_extra = frozenset({"frequency_penalty", "presence_penalty", "response_format", "user"})

    def __init__(self, *, api_key: str | None, base_url: str = GEMINI_BASE_URL) -> None:
        super().__init__(base_url=base_url, api_key=api_key)

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        # The header, never the `?key=` query parameter: URLs end up in logs and error messages.
        return {"x-goog-api-key": api_key} if api_key else {}

    def _url(self, model: str, *, stream: bool) -> str:
        model = model.removeprefix("models/")
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.base_url}/v1beta/models/{model}:{method}"

    def _body(self, req: ChatRequest) -> dict[str, Any]:
        system: list[str] = []
        contents: list[dict[str, Any]] = []
        for message in req.messages:
            if message["role"] in _SYSTEM_ROLES:
                system.append(message_text(message.get("content")))
            else:
                role = "model" if message["role"] == "assistant" else "user"
                contents.append({"role": role, "parts": self._parts(message.get("content"))})
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        optional = (
            ("temperature", req.temperature),
            ("topP", req.top_p),
            ("maxOutputTokens", req.max_tokens),
            ("stopSequences", req.stop_list()),
            ("seed", req.seed),
        )
        config = {key: value for key, value in optional if value is not None}
        config.update(self._extra_config(req))
        if config:
            body["generationConfig"] = config
        return body

    def _parts(self, content: Any) -> list[dict[str, Any]]:
        """Text as one part; images as inline data (Gemini takes no arbitrary image URLs: the router
        sends requests with http(s) image URLs elsewhere, see `unsupported`)."""
        if not isinstance(content, list) or all(part.get("type") == "text" for part in content):
            return [{"text": message_text(content)}]
        parts: list[dict[str, Any]] = []
        for part in content:
            url = image_url(part)
            inline = data_url(url) if url is not None else None
            if part.get("type") == "text":
                parts.append({"text": part.get("text", "")})
            elif inline:
                parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
            elif url is not None:
                raise self.error("bad_request", "gemini takes images as data: URLs only")
            else:
                raise self.error("bad_request", f"{part.get('type')} parts are not supported by gemini")
        return parts

    def _extra_config(self, req: ChatRequest) -> dict[str, Any]:
        self.check_extra(req)
        extra = req.extra
        config: dict[str, Any] = {}
        if extra.get("frequency_penalty") is not None:
            config["frequencyPenalty"] = extra["frequency_penalty"]
        if extra.get("presence_penalty") is not None:
            config["presencePenalty"] = extra["presence_penalty"]
        if (extra.get("response_format") or {}).get("type") == "json_object":
            config["responseMimeType"] = "application/json"
        return config

    @classmethod
    def unsupported(cls, extra: Mapping[str, Any]) -> list[str]:
        out = super().unsupported(extra)
        if (extra.get("response_format") or {}).get("type") == "json_schema":
            out.append("response_format")  # json_object only: Gemini's schema dialect is not OpenAI's
        return out

    def _describe_error(self, status: int, payload: Any) -> ErrorDetail:
        # {"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED", "details": [...]}}
        err = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(payload, list) and payload and isinstance(payload[0], dict):
            err = payload[0].get("error")  # some proxies and the stream endpoint wrap it in a list
        if not isinstance(err, dict):
            return ErrorDetail(str(payload)[:500])
        detail = ErrorDetail(str(err.get("message") or err.get("status") or payload)[:500])
        for item in err.get("details") or ():
            if not isinstance(item, dict):
                continue
            if item.get("reason") == "API_KEY_INVALID":
                detail.kind = "auth"  # Google answers a bad key with 400 INVALID_ARGUMENT
            # Google's quota errors carry the wait in the body (RetryInfo), not in a Retry-After header.
            detail.retry_after_s = _duration_s(item.get("retryDelay")) or detail.retry_after_s
        return detail

    async def complete(self, req: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        data = await self._post_json(self._url(req.model, stream=False), self._body(req), req.timeout_s)
        try:
            candidates = data.get("candidates")
            if not candidates and data["promptFeedback"].get("blockReason"):
                content, finish = "", "content_filter"  # the prompt itself was blocked: an answer, not a fault
            else:
                content, finish = _candidate_text(candidates[0]), gemini_finish(candidates[0].get("finishReason"))
            return ChatResponse(
                id=data.get("responseId") or "",
                provider=self.name,
                model=data.get("modelVersion") or req.model,
                content=content,
                finish_reason=finish,
                usage=gemini_usage(data.get("usageMetadata")),
                latency_ms=elapsed_ms(started),
            )
        except _MALFORMED as exc:
            raise self.error("malformed", f"unexpected response shape ({type(exc).__name__}: {exc})") from exc

    async def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        state = StreamState(model=req.model)
        events = self._post_sse(self._url(req.model, stream=True), self._body(req), req.timeout_s)
        async with aclosing(events):
            async for event in events:
                text = self._read_chunk(self.parse_json_event(event.data), state)
                if text:
                    state.add_text(text, started)
                    yield StreamEvent(text=text)
        # No end-of-stream sentinel: a finish reason (or a blocked prompt) marks a complete stream.
        if not state.done:
            raise self.truncated()
        yield StreamEvent(response=state.response(self.name, started))

    def _read_chunk(self, chunk: Any, state: StreamState) -> str:
        """Fold one GenerateContentResponse chunk into `state`; return its text."""
        try:
            if chunk.get("error"):
                raise self._stream_error(chunk["error"])
            state.id = chunk.get("responseId") or state.id
            state.model = chunk.get("modelVersion") or state.model
            if chunk.get("usageMetadata"):
                state.usage = gemini_usage(chunk["usageMetadata"])  # cumulative; the last one is final
            if (chunk.get("promptFeedback") or {}).get("blockReason"):
                state.finish_reason, state.done = "content_filter", True
            candidates = chunk.get("candidates") or ()
            if not candidates:
                return ""
            if candidates[0].get("finishReason"):
                state.finish_reason, state.done = gemini_finish(candidates[0]["finishReason"]), True
            return _candidate_text(candidates[0])
        except _MALFORMED as exc:
            raise self.error("malformed", f"unexpected chunk shape ({type(exc).__name__}: {exc})") from exc

    def _stream_error(self, err: dict[str, Any]) -> ProviderError:
        kind = _STATUS_KINDS.get(err.get("status"), "server")
        return self.error(kind, str(err.get("message") or err)[:500])
