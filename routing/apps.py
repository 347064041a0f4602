import atexit

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Routing and cache"

    def ready(self) -> None:
        from celery import signals

        from routing import gauges  # noqa: F401  (/metrics gauges)
        from routing.decisions import flush_at_exit

        atexit.register(flush_at_exit)
        signals.worker_process_shutdown.connect(lambda **_: flush_at_exit(), weak=False)
