"""OTLP/HTTP trace ingest: protobuf and JSON request bodies become our spans.

Spans from any app instrumented with OpenTelemetry land next to our own: `gen_ai.*`
attributes map onto model, provider, token counts and operation, and costs come from the
price table. Spans go through the same buffered writer as ours (nothing waits on an insert).
Spans that cannot be stored (bad ids) are rejected one by one and counted in the response's
partial success, as the OTLP specification asks.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from observability.writer import get_writer, span_row

_LLM_OPERATIONS = {"chat", "text_completion", "generate_content", "completion", "embeddings", "responses"}
_KINDS = {"action", "llm", "route", "cache", "eval", "approval", "tool", "internal"}
_ALIASES = {
    "input": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens"),
    "output": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.usage.completion_tokens"),
    "cached": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.input_tokens.cached",
               "gen_ai.usage.cache_read_input_tokens"),
    "reasoning": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.output_tokens.reasoning"),
}  # fmt: skip


class OtlpError(ValueError):
    """The request body is not an OTLP trace export (400)."""


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class _SpanData:
    """What we read from one OTLP span, whichever encoding it came in."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    name: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    exception: dict[str, Any]


# --- decoding --------------------------------------------------------------------------------------


def _any_value_pb(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value_pb(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value_pb(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def _attrs_pb(kvs: Any) -> dict[str, Any]:
    return {kv.key: _any_value_pb(kv.value) for kv in kvs}


def _exception_of(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    for name, attrs in events:
        if name == "exception":
            return attrs
    return {}


def decode_protobuf(body: bytes) -> list[_SpanData]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpError(f"not an OTLP protobuf trace export: {exc}") from exc
    out = []
    for rs in request.resource_spans:
        resource = _attrs_pb(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                events = [(e.name, _attrs_pb(e.attributes)) for e in s.events]
                out.append(_SpanData(
                    s.trace_id, s.span_id, s.parent_span_id, s.name, s.start_time_unix_nano, s.end_time_unix_nano,
                    s.status.code, s.status.message, _attrs_pb(s.attributes), resource, _exception_of(events),
                ))  # fmt: skip
    return out


def _any_value_json(v: dict[str, Any]) -> Any:
    if not isinstance(v, dict) or not v:
        return None
    (kind, value), *_ = v.items()
    if kind == "intValue":
        return int(value)
    if kind == "doubleValue":
        return float(value)
    if kind == "arrayValue":
        return [_any_value_json(x) for x in value.get("values", [])]
    if kind == "kvlistValue":
        return {kv["key"]: _any_value_json(kv.get("value", {})) for kv in value.get("values", [])}
    return value


def _attrs_json(kvs: Any) -> dict[str, Any]:
    return {kv["key"]: _any_value_json(kv.get("value", {})) for kv in kvs or [] if isinstance(kv, dict) and "key" in kv}


def _id_json(text: str | None) -> bytes:
    """OTLP/JSON ids are hex (not base64, unlike proto3's JSON mapping); accept both."""
    if not text:
        return b""
    try:
        return bytes.fromhex(text)
    except ValueError:
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error:
            return b"\x00"  # rejected later as an invalid id


def decode_json(document: Any) -> list[_SpanData]:
    if not isinstance(document, dict):
        raise OtlpError("an OTLP JSON trace export is an object with resourceSpans")
    out = []
    try:
        for rs in document.get("resourceSpans", []):
            resource = _attrs_json((rs.get("resource") or {}).get("attributes"))
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    events = [(e.get("name", ""), _attrs_json(e.get("attributes"))) for e in s.get("events", [])]
                    status = s.get("status") or {}
                    out.append(_SpanData(
                        _id_json(s.get("traceId")), _id_json(s.get("spanId")), _id_json(s.get("parentSpanId")),
                        str(s.get("name", "")), int(s.get("startTimeUnixNano", 0)), int(s.get("endTimeUnixNano", 0)),
                        int(status.get("code", 0)), str(status.get("message", "")), _attrs_json(s.get("attributes")),
                        resource, _exception_of(events),
                    ))  # fmt: skip
    except (AttributeError, TypeError, ValueError) as exc:
        raise OtlpError(f"malformed OTLP JSON: {exc}") from exc
    return out


# --- mapping ---------------------------------------------------------------------------------------


def _signed64(raw: bytes) -> int:
    return int.from_bytes(raw, "big", signed=True)


def _first(attrs: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if attrs.get(key) is not None:
            return attrs[key]
    return None


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _kind(attrs: dict[str, Any]) -> str:
    explicit = attrs.get("aios.span.kind")
    if explicit in _KINDS:
        return str(explicit)
    operation = str(attrs.get("gen_ai.operation.name", ""))
    if operation in _LLM_OPERATIONS:
        return "llm"
    if operation == "execute_tool":
        return "tool"
    if operation in ("invoke_agent", "create_agent"):
        return "action"
    return "internal"


class _IngestedSpan:
    """Duck-types tracing.Span for `writer.span_row`."""

    def __init__(self, d: _SpanData, username: str, api_token: str) -> None:
        attrs = d.attributes
        self.trace_id = UUID(bytes=d.trace_id)
        self.span_id = _signed64(d.span_id)
        self.parent_span_id = _signed64(d.parent_span_id) if len(d.parent_span_id) == 8 else None
        self.name = (d.name or "span")[:200]
        self.kind = _kind(attrs)
        self.agent = str(attrs.get("aios.agent") or attrs.get("gen_ai.agent.name") or d.resource.get("service.name")
                         or "")[:100]  # fmt: skip
        self.provider = str(attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system") or "")[:50]
        self.model = str(attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model") or "")[:150]
        self.input_tokens = _int(_first(attrs, _ALIASES["input"]))
        self.output_tokens = _int(_first(attrs, _ALIASES["output"]))
        self.cached_input_tokens = min(_int(_first(attrs, _ALIASES["cached"])), self.input_tokens)
        self.reasoning_tokens = min(_int(_first(attrs, _ALIASES["reasoning"])), self.output_tokens)
        failed = d.status_code == 2
        self.status = "error" if failed else "ok"
        self.error_type = (
            str(attrs.get("error.type") or d.exception.get("exception.type") or "")[:200] if failed else ""
        )
        self.error_message = (
            str(d.status_message or d.exception.get("exception.message") or "")[:4000] if failed else ""
        )
        self.error_stack = str(d.exception.get("exception.stacktrace") or "")[:16000] if failed else ""
        service = d.resource.get("service.name")
        self.attributes = {**attrs, **({"service.name": service} if service else {})}
        self.started_at = datetime.fromtimestamp(d.start_ns / 1e9, UTC)
        self.username, self.api_token = username, api_token


def _valid(d: _SpanData) -> str | None:
    if len(d.trace_id) != 16 or not any(d.trace_id):
        return "invalid trace id"
    if len(d.span_id) != 8 or not any(d.span_id):
        return "invalid span id"
    if d.start_ns <= 0 or d.end_ns < d.start_ns:
        return "invalid start/end time"
    return None


def ingest(spans: list[_SpanData], *, username: str = "", api_token: str = "") -> IngestResult:
    result = IngestResult()
    writer = get_writer()
    for d in spans:
        problem = _valid(d)
        if problem:
            result.rejected += 1
            if len(result.errors) < 5:
                result.errors.append(f"span {d.name!r}: {problem}")
            continue
        span = _IngestedSpan(d, username, api_token)
        latency_ms = (d.end_ns - d.start_ns) / 1e6
        ended_at = datetime.fromtimestamp(d.end_ns / 1e9, UTC)
        writer.add_row(span_row(span, ended_at, latency_ms))
        result.accepted += 1
    return result
