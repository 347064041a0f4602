"""The agents. Each module declares one `Agent` and registers its actions on import."""

from __future__ import annotations

import importlib

AGENT_MODULES = (
    "security",
    "kernel",
    "networking",
    "storage",
    "application",
    "scalability",
    "orchestration",
    "chaos",
    "workflows",
)


def load_all() -> None:
    for name in AGENT_MODULES:
        importlib.import_module(f"agents.handlers.{name}")
