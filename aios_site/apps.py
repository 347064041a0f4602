from django.apps import AppConfig


class AiosSiteConfig(AppConfig):
    name = "aios_site"
    verbose_name = "Ai:oS site"

    def ready(self) -> None:
        from aios_site import signals  # noqa: F401  (audit receivers, role sync)
