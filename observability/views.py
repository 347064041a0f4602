"""Observability endpoints: OTLP ingest, Prometheus /metrics, trace export; the pages.

The overview's live charts and the traces explorer arrive with the dashboard issue; until
then those pages show their designed empty states."""

from __future__ import annotations

import json
import zlib
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from ninja.errors import HttpError

from aios_core.access import ANNOTATOR, OPERATOR, VIEWER, has_role, role_required
from aios_core.api import json_error, paginate
from observability import live, otlp, prometheus
from observability.exporting import span_attributes, trace_export
from observability.forms import TraceFilterForm
from observability.metrics_server import bearer_ok
from observability.models import Trace
from observability.selectors import filter_choices, traces_search, waterfall

OTLP_MAX_BYTES = 16 * 1024 * 1024


@role_required(VIEWER)
def overview(request: HttpRequest) -> HttpResponse:
    """Live charts and per-agent / per-model tables for one window (15m, 1h, 24h, 7d)."""
    window = request.GET.get("window", "1h")
    if window not in live.WINDOWS:
        window = "1h"
    context = {"window": window, "windows": live.WINDOWS, "snapshot": live.snapshot(window)}
    return render(request, "observability/overview.html", context)


def _selection_actions(user: object) -> dict[str, bool]:
    """Which "Add to …" actions the traces pages offer: the templates post selections to the evaluation app's URLs
    (resolved by name; this app never imports it), which check the same roles again."""
    queue = has_role(user, OPERATOR) or has_role(user, ANNOTATOR)
    return {"dataset": has_role(user, OPERATOR), "queue": queue, "any": queue}


@role_required(VIEWER)
@require_GET
def traces(request: HttpRequest) -> HttpResponse:
    """The traces explorer: filters, newest first, cursor-paginated."""
    form = TraceFilterForm(request.GET or {"range": "24h"})
    rows: list[Trace] = []
    next_cursor = None
    if form.is_valid():
        since, until = form.time_range()
        data = form.cleaned_data
        qs = traces_search(since=since, until=until, agent=data["agent"], model=data["model"],
                           status=data["status"], kind=data["kind"], text=data["q"])  # fmt: skip
        try:
            rows, next_cursor = paginate(qs, cursor=request.GET.get("cursor"), limit=50, field="started_at")
        except HttpError:
            form.add_error(None, "That page link has expired; showing the newest traces.")
            rows, next_cursor = paginate(qs, cursor=None, limit=50, field="started_at")
    params = request.GET.copy()
    params.pop("cursor", None)
    context = {
        "form": form, "traces": rows, "next_cursor": next_cursor, "query": params.urlencode(),
        "choices": filter_choices(timezone.now() - timedelta(days=7)),
        "selection_actions": _selection_actions(request.user),
    }  # fmt: skip
    return render(request, "observability/traces.html", context)


@role_required(VIEWER)
@require_GET
def trace_detail(request: HttpRequest, trace_id: UUID) -> HttpResponse:
    """One trace: the span tree as a waterfall, with each span's tokens, cost, errors, attributes."""
    trace = get_object_or_404(Trace, pk=trace_id)
    rows = waterfall(trace)
    for row in rows:
        row["attributes"] = json.dumps(span_attributes(row["span"]), indent=2, default=str)
        row["scores"] = _eval_scores(row["span"])
    context = {"trace": trace, "rows": rows, "selection_actions": _selection_actions(request.user)}
    return render(request, "observability/trace_detail.html", context)


def _eval_scores(span: Any) -> dict[str, Any]:
    """Scores other apps wrote onto a span as `aios.eval.<name>` attributes (eval spans' own `aios.eval.*`
    bookkeeping is not a score)."""
    if span.kind == "eval":
        return {}
    prefix = "aios.eval."
    return {k.removeprefix(prefix): v for k, v in (span.attributes or {}).items()
            if k.startswith(prefix) and not k.endswith(".error")}  # fmt: skip


@role_required(VIEWER)
@require_GET
def trace_download(request: HttpRequest, trace_id: UUID) -> HttpResponse:
    """The trace and all its spans as a JSON file."""
    try:
        document = trace_export(trace_id)
    except Trace.DoesNotExist as exc:
        raise Http404("no such trace") from exc
    response = JsonResponse(document, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="trace-{trace_id.hex}.json"'
    return response


def _inflate(raw: bytes, wbits: int) -> bytes:
    """Decompress at most OTLP_MAX_BYTES: a few KB of gzip can expand to gigabytes."""
    out = bytearray()
    while raw:
        inflater = zlib.decompressobj(wbits)
        out += inflater.decompress(raw, OTLP_MAX_BYTES + 1 - len(out))
        if len(out) > OTLP_MAX_BYTES or inflater.unconsumed_tail:
            raise ValueError("too_large")
        if not inflater.eof:
            raise zlib.error("truncated body")
        raw = inflater.unused_data  # gzip allows several members back to back
    return bytes(out)


def _read_body(request: HttpRequest) -> bytes:
    raw = request.read(OTLP_MAX_BYTES + 1)
    if len(raw) > OTLP_MAX_BYTES:
        raise ValueError("too_large")
    encoding = request.headers.get("Content-Encoding", "").lower()
    if encoding == "gzip":
        return _inflate(raw, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _inflate(raw, zlib.MAX_WBITS)
    return raw


@csrf_exempt  # API-token only (ApiTokenMiddleware refuses anything else on /v1/)
@require_POST
def otlp_traces(request: HttpRequest) -> HttpResponse:
    """OTLP/HTTP `POST /v1/traces`, protobuf or JSON, API token with the `ingest` scope."""
    content_type = request.content_type or ""
    try:
        body = _read_body(request)
    except ValueError:
        return json_error(413, "too_large", f"OTLP bodies are limited to {OTLP_MAX_BYTES} bytes, decompressed.")
    except (OSError, zlib.error):
        return json_error(400, "bad_encoding", "The body does not match its Content-Encoding.")
    try:
        if content_type == "application/x-protobuf":
            spans = otlp.decode_protobuf(body)
        elif content_type == "application/json":
            spans = otlp.decode_json(json.loads(body or b"{}"))
        else:
            return json_error(415, "unsupported_media_type", "Send application/x-protobuf or application/json.")
    except (otlp.OtlpError, ValueError) as exc:
        return json_error(400, "bad_request", str(exc)[:500])
    token = request.api_token  # type: ignore[attr-defined]
    result = otlp.ingest(spans, username=request.user.get_username(), api_token=token.name if token else "")
    return _otlp_response(content_type, result)


def _otlp_response(content_type: str, result: otlp.IngestResult) -> HttpResponse:
    message = "; ".join(result.errors)
    if content_type == "application/x-protobuf":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        response = ExportTraceServiceResponse()
        if result.rejected:
            response.partial_success.rejected_spans = result.rejected
            response.partial_success.error_message = message
        return HttpResponse(response.SerializeToString(), content_type="application/x-protobuf")
    body = {"partialSuccess": {"rejectedSpans": result.rejected, "errorMessage": message}} if result.rejected else {}
    return JsonResponse(body)


@login_not_required  # guarded by its own bearer token (AIOS_METRICS_TOKEN), not by a login
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    expected = settings.AIOS_METRICS_TOKEN
    if not expected:
        return json_error(404, "disabled", "Prometheus metrics are disabled: set AIOS_METRICS_TOKEN to enable them.")
    if not bearer_ok(request.headers.get("Authorization", ""), expected):
        return json_error(401, "unauthorized", "Send Authorization: Bearer <AIOS_METRICS_TOKEN>.")
    return HttpResponse(prometheus.render(), content_type="text/plain; version=0.0.4; charset=utf-8")
