"""Builders for evaluation tests."""

from __future__ import annotations

from typing import Any

from evaluation.models import AnnotationQueue, Dataset, DatasetItem, Evaluator
from evaluation.services import ItemToAdd, annotation_items_add, annotation_queue_create

SCORES = [
    {"kind": "numeric", "name": "quality", "min": 1, "max": 5},
    {"kind": "categorical", "name": "tone", "labels": ["polite", "rude"]},
    {"kind": "boolean", "name": "correct"},
]
GOOD_REVIEW = {"quality": 4, "tone": "polite", "correct": True}


def make_dataset(items: list[tuple[Any, Any]], name: str = "capitals") -> Dataset:
    dataset = Dataset.objects.create(name=name)
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, input=i, expected=e) for i, e in items])
    return dataset


def make_evaluator(kind: str = "exact_match", name: str | None = None, **config: Any) -> Evaluator:
    return Evaluator.objects.create(name=name or kind, kind=kind, config=config)


def make_queue(items: int = 3, *, reviewers: int = 1, lock_seconds: int = 600, user: Any = None) -> AnnotationQueue:
    queue = annotation_queue_create(name=f"queue-{reviewers}-{items}-{lock_seconds}", score_configs=SCORES,
                                    reviewers_per_item=reviewers, lock_seconds=lock_seconds, user=user)  # fmt: skip
    annotation_items_add(
        queue=queue, items=[ItemToAdd(content={"input": f"q{n}", "output": f"a{n}"}) for n in range(items)]
    )
    return queue
