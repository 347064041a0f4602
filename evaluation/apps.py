from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "evaluation"
    verbose_name = "Evaluation"

    def ready(self) -> None:
        from evaluation import gauges, panels

        gauges.register()  # /metrics: annotation backlog
        panels.register()  # the overview's evaluation-scores panel
