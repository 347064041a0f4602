from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = "Observability"

    def ready(self) -> None:
        from observability import celery_tracing, gauges  # noqa: F401  (signal receivers, /metrics gauges)
        from observability.live import on_flush
        from observability.writer import add_flush_listener

        add_flush_listener(on_flush)  # every committed span batch marks the live feed dirty
