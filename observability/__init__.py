"""Observability: traces, spans, costs, metrics, the audit log.

from observability import get_observability
obs = get_observability()
"""

from typing import Any


def get_observability() -> Any:
    # Imported lazily: this package is imported while Django loads its apps.
    from observability.sdk import get_observability as _get

    return _get()
