"""Google Gemini (Generative Language API, v1beta) over aiohttp.

Wire format: https://ai.google.dev/api/generate-content
"""

from __future__ import annotations

import json
import time
import uuid
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


def _tools(extra: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's tools and tool_choice as Gemini's tools and toolConfig (JSON Schema parameters go
    in `parametersJsonSchema`, which takes them as they are)."""
    declarations = []
    for tool in extra["tools"]:
        function = tool["function"]
        declaration = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    choice = extra.get("tool_choice", "auto")
    if isinstance(choice, dict):
        config = {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
    else:
        config = {"mode": {"none": "NONE", "required": "ANY"}.get(choice, "AUTO")}
    return {"tools": [{"functionDeclarations": declarations}], "toolConfig": {"functionCallingConfig": config}}


def _tool_response(text: str) -> dict[str, Any]:
    """A tool's result as the object functionResponse wants: its JSON if it is an object."""
    try:
        value = json.loads(text)
    except ValueError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def _function_calls(candidate: dict[str, Any], first_index: int) -> list[dict[str, Any]]:
    """The candidate's functionCall parts as OpenAI tool calls. Gemini gives no id unless it
    has one of its own: one is made up. A thought signature rides along in `extra_content`
    (as Google's own OpenAI-compatible endpoint does) so it can be sent back with the result."""
    calls = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        function = part.get("functionCall")
        if not function:
            continue
        call: dict[str, Any] = {
            "id": function.get("id") or f"call_{first_index + len(calls)}_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {"name": function["name"], "arguments": json.dumps(function.get("args") or {})},
        }
        if part.get("thoughtSignature"):
            call["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
        calls.append(call)
    return calls


def _candidate_text(candidate: dict[str, Any]) -> str:
    parts = (candidate.get("content") or {}).get("parts") or ()
    # Parts marked `thought` are thinking summaries, not the answer.
    return "".join(part.get("text", "") for part in parts if not part.get("thought"))


class GeminiProvider(HttpProvider):
    name = "gemini"
    # Penalties map to generationConfig; a JSON response to responseMimeType. No logit bias; `user`
    # has no equivalent and does not change the answer, so it is accepted and not sent.
    # Tools become functionDeclarations; tool_choice a functionCallingConfig; parallel_tool_calls
    # has no equivalent and is accepted (Gemini decides how many calls to make).
    supported_extra = frozenset(
        {"frequency_penalty", "presence_penalty", "response_format", "user", "tools", "tool_choice",
         "parallel_tool_calls"}
    )  # fmt: skip

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
        call_names: dict[str, str] = {}  # tool call id -> function name (a result names its function)
        for message in req.messages:
            role = message["role"]
            if role in _SYSTEM_ROLES:
                system.append(message_text(message.get("content")))
            elif role == "tool":
                name = call_names.get(message.get("tool_call_id") or "", "")
                part = {
                    "functionResponse": {"name": name, "response": _tool_response(message_text(message.get("content")))}
                }
                if contents and contents[-1]["role"] == "user" and "functionResponse" in contents[-1]["parts"][0]:
                    contents[-1]["parts"].append(part)  # results of parallel calls share one turn
                else:
                    contents.append({"role": "user", "parts": [part]})
            elif role == "assistant" and message.get("tool_calls"):
                parts = [p for p in self._parts(message.get("content")) if p.get("text") or "text" not in p]
                for call in message["tool_calls"]:
                    call_names[call.get("id") or ""] = call["function"]["name"]
                    parts.append(self._function_call_part(call))
                contents.append({"role": "model", "parts": parts})
            else:
                role = "model" if role == "assistant" else "user"
                contents.append({"role": role, "parts": self._parts(message.get("content"))})
        body: dict[str, Any] = {"contents": contents}
        if req.extra.get("tools"):
            body.update(_tools(req.extra))
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

    def _function_call_part(self, call: dict[str, Any]) -> dict[str, Any]:
        args = self.call_arguments(call)
        part: dict[str, Any] = {"functionCall": {"name": call["function"]["name"], "args": args}}
        signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
        if signature:
            part["thoughtSignature"] = signature  # Gemini 3 refuses a call sent back without it
        return part

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
            calls = _function_calls(candidates[0], 0) if candidates else []
            return ChatResponse(
                id=data.get("responseId") or "",
                provider=self.name,
                model=data.get("modelVersion") or req.model,
                content=content,
                finish_reason="tool_calls" if calls and finish == "stop" else finish,
                usage=gemini_usage(data.get("usageMetadata")),
                latency_ms=elapsed_ms(started),
                tool_calls=calls,
            )
        except _MALFORMED as exc:
            raise self.error("malformed", f"unexpected response shape ({type(exc).__name__}: {exc})") from exc

    async def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        state = StreamState(model=req.model)
        events = self._post_sse(self._url(req.model, stream=True), self._body(req), req.timeout_s)
        async with aclosing(events):
            async for event in events:
                text, calls = self._read_chunk(self.parse_json_event(event.data), state)
                # Gemini sends each call whole: one delta carries its id, name and arguments.
                deltas = [{"index": len(state.tool_calls) + i, **call} for i, call in enumerate(calls)]
                if deltas:
                    state.add_tool_deltas(deltas, started)
                if text:
                    state.add_text(text, started)
                if text or deltas:
                    yield StreamEvent(text=text, tool_calls=deltas)
        if state.tool_calls and state.finish_reason == "stop":
            state.finish_reason = "tool_calls"
        # No end-of-stream sentinel: a finish reason (or a blocked prompt) marks a complete stream.
        if not state.done:
            raise self.truncated()
        yield StreamEvent(response=state.response(self.name, started))

    def _read_chunk(self, chunk: Any, state: StreamState) -> tuple[str, list[dict[str, Any]]]:
        """Fold one GenerateContentResponse chunk into `state`; return its text and function calls."""
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
                return "", []
            if candidates[0].get("finishReason"):
                state.finish_reason, state.done = gemini_finish(candidates[0]["finishReason"]), True
            return _candidate_text(candidates[0]), _function_calls(candidates[0], len(state.tool_calls))
        except _MALFORMED as exc:
            raise self.error("malformed", f"unexpected chunk shape ({type(exc).__name__}: {exc})") from exc

    def _stream_error(self, err: dict[str, Any]) -> ProviderError:
        kind = _STATUS_KINDS.get(err.get("status"), "server")
        return self.error(kind, str(err.get("message") or err)[:500])
