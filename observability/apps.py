from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = "Observability"

    def ready(self) -> None:
        from observability import celery_tracing, gauges  # noqa: F401  (signal receivers, /metrics gauges)
