"""/metrics, OTLP ingest (real OpenTelemetry SDK exporter), exports, retention."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from aios_site.tokens import token_create
from observability import get_observability
from observability.models import ModelPrice, Span, SpanRollup, Trace
from observability.pricing import prices
from observability.services import spans_delete_expired
from tests.factories import make_user
from tests.helpers import login
from tests.observability.helpers import flushed

pytestmark = pytest.mark.django_db(transaction=True)
obs = get_observability()


def _record_llm_spans() -> None:
    with (
        obs.trace_span("agent.action", agent_name="security", kind="action"),
        obs.trace_span("llm", kind="llm") as span,
    ):
        span.set_tokens(input_tokens=1000, output_tokens=100, model="gpt-4o-mini", provider="openai")
    flushed()


@override_settings(AIOS_METRICS_TOKEN="scrape-secret")
def test_metrics_are_valid_prometheus_text_behind_a_bearer_token() -> None:
    _record_llm_spans()
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    resp = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert resp.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(resp.content.decode())}
    spans = {
        tuple(sorted(s.labels.items())): s.value for s in families["aios_spans"].samples if s.name == "aios_spans_total"
    }
    assert spans[(("agent", "security"), ("kind", "llm"), ("model", "gpt-4o-mini"), ("status", "ok"))] >= 1
    assert "aios_span_latency_seconds" in families
    assert any(s.value > 0 for s in families["aios_cost_usd"].samples)
    assert "aios_spans_dropped" in families


def test_metrics_are_disabled_without_a_token() -> None:
    assert Client().get("/metrics").status_code == 404


def test_the_real_opentelemetry_sdk_exports_into_our_spans(live_server) -> None:  # type: ignore[no-untyped-def]
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    ModelPrice.objects.create(provider="openai", pattern="gpt-4o", input_per_mtok=Decimal("2.5"),
                              output_per_mtok=Decimal("10"), cached_input_per_mtok=Decimal("1.25"),
                              effective_from="2020-01-01T00:00:00Z")  # fmt: skip
    prices.invalidate()
    _, raw = token_create(user=make_user("viewer", username="otel-app"), name="billing", scopes=["ingest"])
    exporter = OTLPSpanExporter(endpoint=f"{live_server.url}/v1/traces", headers={"Authorization": f"Bearer {raw}"})
    provider = TracerProvider(resource=Resource.create({"service.name": "billing-service"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("handle_invoice"):
        with tracer.start_as_current_span("chat gpt-4o") as llm:
            llm.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 2000, "gen_ai.usage.output_tokens": 300,
                "gen_ai.usage.cache_read.input_tokens": 1000,
            })  # fmt: skip
        with tracer.start_as_current_span("lookup") as failing:
            failing.set_status(Status(StatusCode.ERROR, "not found"))
    provider.shutdown()
    flushed()
    spans = {s.name: s for s in Span.objects.filter(api_token="billing")}
    assert set(spans) == {"handle_invoice", "chat gpt-4o", "lookup"}
    chat = spans["chat gpt-4o"]
    assert (chat.kind, chat.model, chat.provider, chat.agent) == ("llm", "gpt-4o", "openai", "billing-service")
    assert (chat.input_tokens, chat.output_tokens, chat.cached_input_tokens) == (2000, 300, 1000)
    assert chat.cost_usd == Decimal("0.00675")  # (1000 x 2.5 + 1000 x 1.25 + 300 x 10) / 1e6
    assert chat.parent_span_id == spans["handle_invoice"].span_id and chat.username == "otel-app"
    assert spans["lookup"].status == "error" and spans["lookup"].error_message == "not found"
    assert Trace.objects.get(pk=chat.trace_id).name == "handle_invoice"


def test_otlp_json_is_accepted_and_bad_spans_are_rejected_one_by_one() -> None:
    _, raw = token_create(user=make_user(), name="js-app", scopes=["ingest"])
    now_ns = int(timezone.now().timestamp() * 1e9)
    body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
            "scopeSpans": [{"spans": [
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "GET /",
                 "startTimeUnixNano": str(now_ns), "endTimeUnixNano": str(now_ns + 5_000_000),
                 "attributes": [{"key": "http.status", "value": {"intValue": "200"}}]},
                {"traceId": "00000000000000000000000000000000", "spanId": "eee19b7ec3c1b175", "name": "bad",
                 "startTimeUnixNano": str(now_ns), "endTimeUnixNano": str(now_ns)}]}]}]}  # fmt: skip
    resp = Client().post("/v1/traces", data=json.dumps(body), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {raw}")  # fmt: skip
    assert resp.status_code == 200
    assert resp.json()["partialSuccess"]["rejectedSpans"] == 1
    flushed()
    span = Span.objects.get(name="GET /")
    assert span.latency_ms == pytest.approx(5.0) and span.attributes["http.status"] == 200


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [("application/x-protobuf", b"\xff\xff\xff", 400), ("application/json", b"{nope", 400), ("text/plain", b"x", 415)],
)
def test_otlp_garbage_gets_a_json_4xx(content_type: str, body: bytes, status: int) -> None:
    _, raw = token_create(user=make_user(), name="t", scopes=["ingest"])
    resp = Client().post("/v1/traces", data=body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert resp.status_code == status and resp.json()["error"]


def test_otlp_needs_the_ingest_scope() -> None:
    _, raw = token_create(user=make_user(), name="reader", scopes=["read"])
    resp = Client().post(
        "/v1/traces", data=b"", content_type="application/x-protobuf", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert resp.status_code == 403


def test_traces_export_as_ndjson_json_and_per_trace_download() -> None:
    _record_llm_spans()
    out = io.StringIO()
    call_command("export_traces", "--since", "1h", stdout=out, stderr=io.StringIO())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 1 and len(lines[0]["spans"]) == 2
    llm = next(s for s in lines[0]["spans"] if s["kind"] == "llm")
    assert llm["attributes"]["gen_ai.usage.input_tokens"] == 1000
    buf = io.StringIO()
    assert obs.export_traces(buf, since=timezone.now() - timedelta(hours=1), fmt="json") == 1
    assert json.loads(buf.getvalue())["traces"][0]["trace_id"] == lines[0]["trace_id"]
    client = login(make_user("viewer"))
    resp = client.get(f"/traces/{lines[0]['trace_id']}/export.json")
    assert resp.status_code == 200 and "attachment" in resp["Content-Disposition"]
    assert json.loads(resp.content)["span_count"] == 2
    api = client.get(f"/api/traces/{lines[0]['trace_id']}").json()
    assert api["name"] == "agent.action" and len(api["spans"]) == 2
    assert client.get("/api/traces").json()["items"][0]["trace_id"] == lines[0]["trace_id"]
    assert client.get("/api/metrics/summary?window=15m").json()["summary"]["total_calls"] == 2


def test_retention_deletes_old_spans_traces_and_minute_rollups() -> None:
    _record_llm_spans()
    old = timezone.now() - timedelta(days=40)
    Span.objects.update(started_at=old)
    Trace.objects.update(started_at=old)
    SpanRollup.objects.filter(resolution=60).update(bucket=old)
    result = spans_delete_expired()
    assert result["spans"] == 2 and result["traces"] == 1
    assert not SpanRollup.objects.filter(resolution=60).exists()
    assert SpanRollup.objects.filter(resolution=3600).exists()


def _scrape() -> dict[str, Any]:
    resp = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert resp.status_code == 200
    return {f.name: f for f in text_string_to_metric_families(resp.content.decode())}


def _samples(family: Any, name: str | None = None) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if name is None or s.name == name}


@override_settings(AIOS_METRICS_TOKEN="scrape-secret")
def test_a_non_ascii_authorization_header_is_refused_not_a_500() -> None:
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer sécret-ünïcode").status_code == 401


@override_settings(AIOS_METRICS_TOKEN="scrape-secret")
def test_latency_is_exported_per_agent_and_model() -> None:
    _record_llm_spans()
    counts = _samples(_scrape()["aios_span_latency_seconds"], "aios_span_latency_seconds_count")
    key = (("agent", "security"), ("kind", "llm"), ("model", "gpt-4o-mini"), ("status", "ok"))
    assert counts[key] >= 1


def test_label_values_beyond_the_bound_are_reported_as_other(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from observability import prometheus

    monkeypatch.setattr(prometheus, "_seen_values", {})
    monkeypatch.setattr(prometheus, "MAX_LABEL_VALUES", 2)
    assert [prometheus.bounded("agent", a) for a in ("a", "b", "c", "a")] == ["a", "b", "other", "a"]


@override_settings(AIOS_METRICS_TOKEN="scrape-secret")
def test_queue_depths_are_read_from_the_database_at_scrape_time(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from agents.models import ActionRun
    from evaluation.models import AnnotationItem, AnnotationQueue

    ActionRun.objects.create(agent="kernel", action="process_stats", status="queued")
    ActionRun.objects.create(agent="kernel", action="process_stats", status="awaiting_approval")
    ActionRun.objects.create(agent="kernel", action="process_stats", status="succeeded")
    queue = AnnotationQueue.objects.create(name="triage")
    AnnotationItem.objects.create(queue=queue, source_key="manual:1")
    AnnotationItem.objects.create(queue=queue, source_key="manual:2", status="done")
    families = _scrape()
    runs = _samples(families["aios_action_runs"])
    assert runs[(("status", "queued"),)] == 1 and runs[(("status", "awaiting_approval"),)] == 1
    assert runs[(("status", "retrying"),)] == 0
    assert _samples(families["aios_annotation_items_pending"])[(("queue", "triage"),)] == 1
    assert "aios_celery_queue_length" in families


@override_settings(AIOS_METRICS_TOKEN="scrape-secret")
def test_spans_waiting_in_the_buffer_are_exported(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    import psycopg

    from observability.writer import get_writer

    flushed()
    writer = get_writer()

    def refuse() -> Any:
        raise psycopg.OperationalError("database is down")

    monkeypatch.setattr("observability.writer._connect", refuse)
    if writer._conn is not None:  # the writer is idle (everything flushed): drop its connection
        writer._conn.close()
        writer._conn = None
    for _ in range(7):
        with obs.trace_span("waiting"):
            pass
    deadline, buffered = time.monotonic() + 5, 0.0
    while time.monotonic() < deadline and buffered < 7:
        time.sleep(0.2)
        buffered = sum(_samples(_scrape()["aios_spans_buffered"]).values())
    monkeypatch.undo()
    flushed()
    assert buffered >= 7


METRICS_WRITER = """
import django; django.setup()
from observability import get_observability
obs = get_observability()
for _ in range({n}):
    with obs.trace_span("mp", agent_name="multiprocess", kind="llm"):
        pass
assert obs.flush(timeout=30)
"""


def test_counters_from_two_processes_add_up(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from observability import prometheus
    from tests.helpers import subprocess_env

    env = subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", METRICS_WRITER.format(n=n)], env=env) for n in (3, 4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # read those two processes' files
    families = {f.name: f for f in text_string_to_metric_families(prometheus.render().decode())}
    spans = _samples(families["aios_spans"], "aios_spans_total")
    assert spans[(("agent", "multiprocess"), ("kind", "llm"), ("model", ""), ("status", "ok"))] == 7
    latency = _samples(families["aios_span_latency_seconds"], "aios_span_latency_seconds_count")
    assert latency[(("agent", "multiprocess"), ("kind", "llm"), ("model", ""), ("status", "ok"))] == 7


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_otlp_body_that_inflates_past_the_limit_gets_a_json_413(encoding: str) -> None:
    import gzip
    import zlib

    from observability.views import OTLP_MAX_BYTES

    _, raw = token_create(user=make_user(), name="bomb", scopes=["ingest"])
    payload = b"\0" * (OTLP_MAX_BYTES + 1024)
    body = gzip.compress(payload) if encoding == "gzip" else zlib.compress(payload)
    assert len(body) < 100_000
    resp = Client().post("/v1/traces", data=body, content_type="application/x-protobuf",
                         HTTP_CONTENT_ENCODING=encoding, HTTP_AUTHORIZATION=f"Bearer {raw}")  # fmt: skip
    assert resp.status_code == 413 and resp.json()["error"] == "too_large"


def test_a_gzipped_otlp_body_within_the_limit_is_ingested() -> None:
    import gzip

    _, raw = token_create(user=make_user(), name="gz-app", scopes=["ingest"])
    now_ns = int(timezone.now().timestamp() * 1e9)
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5b8efff798038103d269b633813fc60d", "spanId": "eee19b7ec3c1b176", "name": "zipped",
         "startTimeUnixNano": str(now_ns), "endTimeUnixNano": str(now_ns + 1_000_000)}]}]}]}  # fmt: skip
    resp = Client().post("/v1/traces", data=gzip.compress(json.dumps(body).encode()), content_type="application/json",
                         HTTP_CONTENT_ENCODING="gzip", HTTP_AUTHORIZATION=f"Bearer {raw}")  # fmt: skip
    assert resp.status_code == 200
    flushed()
    assert Span.objects.filter(name="zipped").exists()
