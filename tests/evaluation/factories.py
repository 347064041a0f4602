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


def make_effect_dataset(n: int, *, seed: int = 7, name: str = "ab-effect") -> Dataset:
    """Items for an echo A/B test with a known effect, scored by a `contains` evaluator: control echoes the
    input, the treatment (template "Q: {input}") echoes "Q: " + input. Half the items expect the input (both
    pass), 30% expect "Q: " + input (only the treatment passes), 20% expect what neither says.
    True success rates: 0.5 against 0.8."""
    import random

    rng = random.Random(seed)
    items = []
    for i in range(n):
        question, draw = f"question {i:04d}", rng.random()
        expected = question if draw < 0.5 else f"Q: {question}" if draw < 0.8 else "nobody says this"
        items.append((question, expected))
    return make_dataset(items, name=name)


def abtest_spec(dataset: Dataset | None = None, /, **overrides: Any) -> Any:
    """An eval-run A/B test over `make_effect_dataset` (override anything)."""
    from evaluation.abtests.specs import ABTestSpec

    data: dict[str, Any] = {
        "name": "prefix the question",
        "scope": "eval_run",
        "variants": [{"name": "control", "model": "echo"}, {"name": "prefixed", "model": "echo",
                                                              "template": "Q: {input}"}],
        "metric": "success",
        "evaluator": "contains",
        "minimum_detectable_effect": 0.2,
        "baseline_rate": 0.5,
        "dataset": dataset.uuid if dataset else None,
    }  # fmt: skip
    data.update(overrides)
    return ABTestSpec.model_validate(data)
