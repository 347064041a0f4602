"""Annotation backlog for /metrics, read from the database at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

from observability.prometheus import register_db_gauge


def _pending_items() -> Iterable[tuple[dict[str, str], float]]:
    from django.db.models import Count, Q

    from evaluation.models import AnnotationItem, AnnotationQueue

    pending = Count("items", filter=Q(items__status=AnnotationItem.Status.PENDING))
    for name, n in AnnotationQueue.objects.annotate(n=pending).values_list("name", "n"):
        yield {"queue": name}, float(n)


def register() -> None:
    register_db_gauge(
        "aios_annotation_items_pending", "Annotation items not yet done, per queue", ["queue"], _pending_items
    )
