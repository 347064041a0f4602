"""Closing the loop: human and judge scores on routed requests become training rows for the learned router.

A score says whether one answer was right. Joined to the routing decision of its trace (routing.selectors), it
labels the tier of the model that answered: `weak_correct` for the simple tier, `strong_correct` for the complex
tier (the other stays unknown: None). Rows are written through routing.services.training_example_add with their
provenance; routing never imports this app.

Where the scores come from:
- a human annotation of a span or trace item (annotation_submit): the queue's first yes/no score, else its first
  numeric score scaled to 0..1; at or above LABEL_THRESHOLD counts as correct;
- an LLM-judge score in continuous evaluation: at or above the configuration's threshold;
- an LLM-judge score in an eval run whose target is `auto` (the router): at or above LABEL_THRESHOLD, once the run
  has finished (its decisions are written in batches, shortly after the calls).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from evaluation import evaluators as ev
from evaluation.configs import BooleanScore, NumericScore

LABEL_THRESHOLD = 0.5  # a score (0..1) at or above this labels the answer correct


@dataclass(frozen=True)
class ScoredAnswer:
    """One scored answer in a trace: what the model was asked, which model answered and when, and the verdict."""

    prompt: Any  # chat messages or text
    trace_id: UUID
    model: str  # the model that answered, as spans name it; "" when unknown (the decision's choice is used)
    at: datetime | None  # when the answering call started (picks the decision when a trace routed several)
    score: float  # 0..1
    threshold: float
    source: str  # "human" | "judge"
    provenance: dict[str, Any]


def prompt_text(prompt: Any) -> str:
    """What the router reads: the conversation's text without the assistant's turns."""
    if isinstance(prompt, dict) and isinstance(prompt.get("messages"), list):
        prompt = prompt["messages"]
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        return "\n".join(ev.as_text(m.get("content")) for m in prompt if m.get("role") != "assistant")
    return ev.as_text(prompt)


def training_rows_add(answers: Iterable[ScoredAnswer], *, user: Any = None) -> int:
    """Write a training row per answer that a routing decision chose a weak- or strong-tier model for; skip the
    rest (no decision in the trace, a medium-tier answer, an empty prompt). Returns how many rows were written.
    Callers hold their transaction, so a row exists exactly when the score it comes from does."""
    from routing import selectors as routing_selectors
    from routing.services import training_example_add

    written = 0
    for answer in answers:
        decision = routing_selectors.decision_for_trace(answer.trace_id, at=answer.at)
        text = prompt_text(answer.prompt).strip()
        if decision is None or not text:
            continue
        model = answer.model or decision.chosen_model
        tier = routing_selectors.model_tier(model)
        side = routing_selectors.training_side(tier)
        if side is None:
            continue
        correct = answer.score >= answer.threshold
        provenance = {**answer.provenance, "decision": decision.id, "trace": answer.trace_id.hex, "model": model,
                      "tier": tier, "score": answer.score, "threshold": answer.threshold}  # fmt: skip
        training_example_add(prompt=text, weak_correct=correct if side == "weak" else None,
                             strong_correct=correct if side == "strong" else None, source=answer.source,
                             provenance=provenance, user=user)  # fmt: skip
        written += 1
    return written


def annotation_label(configs: list[Any], scores: dict[str, Any]) -> tuple[str, float] | None:
    """(score name, value in 0..1) of the score that says whether the answer was right: the first yes/no score,
    else the first numeric one scaled to its range. None when the queue has neither."""
    for config in configs:
        if isinstance(config, BooleanScore) and isinstance(scores.get(config.name), bool):
            return config.name, 1.0 if scores[config.name] else 0.0
    for config in configs:
        if isinstance(config, NumericScore) and isinstance(scores.get(config.name), int | float):
            return config.name, (float(scores[config.name]) - config.min) / (config.max - config.min)
    return None


def answered_by(content: dict[str, Any]) -> tuple[str, datetime | None]:
    """The model that gave the answer a queue item shows, and when its call started: the span's own for a span
    item, the last LLM span's for a trace item."""
    context = content.get("context") or {}
    if "spans" in context:
        calls = [s for s in context["spans"] if s.get("kind") == "llm" and s.get("model")]
        last = calls[-1] if calls else {}
        return last.get("model", ""), _when(last.get("started_at"))
    return context.get("model") or "", _when(context.get("started_at"))


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
