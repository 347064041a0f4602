from uuid import UUID

from django.urls import path, register_converter

from observability import views


class TraceIdConverter:
    """Trace ids as OpenTelemetry writes them (32 hex digits) or as dashed UUIDs."""

    regex = "[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def to_python(self, value: str) -> UUID:
        return UUID(value)

    def to_url(self, value: UUID | str) -> str:
        return value.hex if isinstance(value, UUID) else UUID(str(value)).hex


register_converter(TraceIdConverter, "trace_id")

urlpatterns = [
    path("", views.overview, name="obs-overview"),
    path("traces/", views.traces, name="obs-traces"),
    path("traces/<trace_id:trace_id>/", views.trace_detail, name="obs-trace-detail"),
    path("traces/<trace_id:trace_id>/export.json", views.trace_download, name="obs-trace-download"),
    path("v1/traces", views.otlp_traces, name="obs-otlp-traces"),
    path("metrics", views.metrics, name="obs-metrics"),
]
