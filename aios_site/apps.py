from django.apps import AppConfig


class AiosSiteConfig(AppConfig):
    name = "aios_site"
    verbose_name = "Ai:oS site"

    def ready(self) -> None:
        from aios_site import gauges, signals  # noqa: F401  (audit receivers, role sync)

        gauges.register()  # /metrics: the Celery queue length
