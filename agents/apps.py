from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        # Import every agent and validate the manifest now: a broken manifest stops the process
        # at startup with every problem named, not at the first run.
        from agents import gauges
        from agents.manifest import load_manifest

        load_manifest()
        gauges.register()  # /metrics: run queue depths
