"""The model router: the cheapest model that can do the task, within the caller's constraints.

    router = ModelRouter()
    decision = router.route("Design a rollout plan for ...", Constraints(max_cost_usd=0.01))
    decision.chosen.model_id, decision.alternatives, decision.reason

Complexity comes from the learned router when one is active and confident about the prompt,
else from the heuristics (routing.complexity). The tier's endpoints are tried in priority
order; constraints (cost, latency, vision, context window) filter them, and when a whole tier
fails them the router moves to the nearest tier that does. The alternatives are the fallback
order the gateway uses when a provider fails.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from aios_core.versioned import VersionedValue
from observability.pricing import cost_of, prices
from routing import catalog
from routing.catalog import Endpoint
from routing.complexity import ComplexityAnalyzer, TaskComplexity
from routing.providers.registry import unsupported_params

log = logging.getLogger(__name__)

# Expected output tokens when the caller sets no max_tokens (medians of our demo traffic).
OUTPUT_TOKENS_BY_TIER = {"simple": 150, "medium": 350, "complex": 700}
TIER_ORDER = ("simple", "medium", "complex")


class NoModelAvailable(Exception):
    """No enabled model satisfies the constraints."""


class UnsupportedParameter(NoModelAvailable):
    """No model the request may go to honours one of its parameters (`param`)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Constraints:
    max_cost_usd: float | None = None
    max_latency_ms: int | None = None
    requires_vision: bool = False
    min_context_tokens: int | None = None
    min_tier: str | None = None  # never route below this tier (an A/B test's router policy)

    def as_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copy cost ~30 µs per call on the gateway's path.
        return {name: value for name in _CONSTRAINT_FIELDS if (value := getattr(self, name)) not in (None, False)}


_CONSTRAINT_FIELDS = tuple(f.name for f in fields(Constraints))


@dataclass
class Decision:
    complexity: str
    score: float
    decided_by: str  # heuristic | learned | explicit
    chosen: Endpoint
    alternatives: list[Endpoint]
    constraints: Constraints
    estimated_input_tokens: int
    estimated_output_tokens: int
    estimated_cost_usd: Decimal | None
    baseline_cost_usd: Decimal | None
    reason: str
    features: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=timezone.now)

    @property
    def savings_usd(self) -> Decimal | None:
        if self.estimated_cost_usd is None or self.baseline_cost_usd is None:
            return None
        return self.baseline_cost_usd - self.estimated_cost_usd


def estimate_tokens(text: str) -> int:
    """About four characters a token for English prose and code (good enough to compare models)."""
    return max(1, len(text) // 4)


def _estimated_cost(endpoint: Endpoint, input_tokens: int, output_tokens: int) -> Decimal | None:
    price = prices.price_for(endpoint.span_model, timezone.now(), endpoint.provider)
    return cost_of(price, input_tokens=input_tokens, output_tokens=output_tokens).usd


def _load_learned() -> Any:
    from routing.models import RouterModel

    row = RouterModel.objects.filter(active=True).first()
    if row is None:
        return False  # cached "no model" (None would mean "not loaded yet")
    from routing.learned_router import LearnedRouter

    router = LearnedRouter.from_artifact(bytes(row.artifact))
    router.version = row.version
    return router


learned_router = VersionedValue("routing:router_model_version", _load_learned)


class ModelRouter:
    def __init__(self, analyzer: ComplexityAnalyzer | None = None) -> None:
        self.analyzer = analyzer or ComplexityAnalyzer()

    def assess(self, prompt: str, embedding: np.ndarray | None = None) -> tuple[str, float, str, str, dict[str, Any]]:
        """(tier, score, decided_by, explanation, features) for a prompt. `embedding`: the prompt's
        MiniLM embedding when the caller has it (the semantic cache computed it already)."""
        heuristic = self.analyzer.analyze(prompt)
        features: dict[str, Any] = dict(heuristic.features)
        learned = learned_router.get()
        if learned:
            if embedding is None:
                from routing.embeddings import embed

                embedding = embed(prompt)
            score = float(learned.score(prompt, embedding))  # one forward pass for the tier and the score
            tier, confidence = learned.decide_score(score)
            features["learned_confidence"] = round(confidence, 3)
            if confidence >= settings.AIOS_ROUTER_MIN_CONFIDENCE:
                why = f"learned router v{learned.version} ({confidence:.0%} confident)"
                return tier.value, score, "learned", why, features
        return heuristic.complexity.value, heuristic.score, "heuristic", heuristic.explanation, features

    def route(
        self,
        prompt: str,
        constraints: Constraints | None = None,
        *,
        max_output_tokens: int | None = None,
        params: Mapping[str, Any] | None = None,
        embedding: np.ndarray | None = None,
    ) -> Decision:
        """`params`: request parameters beyond the core ones (ChatRequest.extra) the model must honour,
        and `image_url` when an image is given by URL. `embedding`: the prompt's, if the caller has it."""
        constraints = constraints or Constraints()
        params = params or {}
        available = catalog.available_endpoints()
        if params and available and all(unsupported_params(e.provider, params) for e in available):
            name = unsupported_params(available[0].provider, params)[0]
            raise UnsupportedParameter(f"{name} is not supported by any available model", name)
        tier, score, decided_by, explanation, features = self.assess(prompt, embedding)
        if constraints.min_tier and TIER_ORDER.index(tier) < TIER_ORDER.index(constraints.min_tier):
            tier, explanation = constraints.min_tier, f"{explanation}; raised to {constraints.min_tier} by policy"
        return self._choose(
            prompt, tier, score, decided_by, explanation, features, constraints, max_output_tokens, params
        )

    def explicit(
        self,
        prompt: str,
        endpoint: Endpoint,
        *,
        max_output_tokens: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Decision:
        """The caller named a model: no routing, but the same bookkeeping and same-tier fallbacks."""
        params = params or {}
        missing = unsupported_params(endpoint.provider, params)
        if missing:
            raise UnsupportedParameter(f"{missing[0]} is not supported by {endpoint.model_id}", missing[0])
        input_tokens = estimate_tokens(prompt)
        output_tokens = max_output_tokens or OUTPUT_TOKENS_BY_TIER[endpoint.tier]
        alternatives = [
            e
            for e in catalog.available_endpoints()
            if e.tier == endpoint.tier and e != endpoint and not unsupported_params(e.provider, params)
        ]
        return Decision(
            complexity=endpoint.tier,
            score=0.0,
            decided_by="explicit",
            chosen=endpoint,
            alternatives=alternatives,
            constraints=Constraints(),
            estimated_input_tokens=input_tokens,
            estimated_output_tokens=output_tokens,
            estimated_cost_usd=_estimated_cost(endpoint, input_tokens, output_tokens),
            baseline_cost_usd=self._baseline_cost(input_tokens, output_tokens),
            reason=f"the caller asked for {endpoint.model_id}",
        )

    def _baseline_cost(self, input_tokens: int, output_tokens: int) -> Decimal | None:
        baseline = catalog.baseline_endpoint()
        return _estimated_cost(baseline, input_tokens, output_tokens) if baseline else None

    def _choose(
        self,
        prompt: str,
        tier: str,
        score: float,
        decided_by: str,
        explanation: str,
        features: dict[str, Any],
        constraints: Constraints,
        max_output_tokens: int | None,
        params: Mapping[str, Any],
    ) -> Decision:
        input_tokens = estimate_tokens(prompt)
        candidates = catalog.available_endpoints()
        passing: list[tuple[int, Endpoint, Decimal | None]] = []
        rejected: dict[str, str] = {}
        for endpoint in candidates:
            output_tokens = max_output_tokens or OUTPUT_TOKENS_BY_TIER[endpoint.tier]
            cost = _estimated_cost(endpoint, input_tokens, output_tokens)
            missing = unsupported_params(endpoint.provider, params)
            problem = f"no {missing[0]}" if missing else self._violates(endpoint, constraints, input_tokens, cost)
            if problem:
                rejected[endpoint.model_id] = problem
                continue
            passing.append((self._distance(tier, endpoint.tier, constraints), endpoint, cost))
        if not passing:
            detail = "; ".join(f"{m}: {why}" for m, why in rejected.items()) or "no enabled model"
            raise NoModelAvailable(f"no model satisfies the constraints ({detail})")
        passing.sort(key=lambda item: (item[0], -item[1].priority))
        _, chosen, cost = passing[0]
        output_tokens = max_output_tokens or OUTPUT_TOKENS_BY_TIER[chosen.tier]
        reason = f"{tier} task ({explanation})"
        if chosen.tier != tier:
            reason += f"; no {tier} model met the constraints, so a {chosen.tier} one"
        if constraints.as_dict():
            reason += f"; constraints {constraints.as_dict()}"
        return Decision(
            complexity=tier,
            score=round(score, 4),
            decided_by=decided_by,
            chosen=chosen,
            alternatives=[e for _, e, _ in passing[1:]],
            constraints=constraints,
            estimated_input_tokens=input_tokens,
            estimated_output_tokens=output_tokens,
            estimated_cost_usd=cost,
            baseline_cost_usd=self._baseline_cost(input_tokens, output_tokens),
            reason=reason,
            features=features,
        )

    @staticmethod
    def _violates(endpoint: Endpoint, c: Constraints, input_tokens: int, cost: Decimal | None) -> str | None:
        if c.requires_vision and not endpoint.vision:
            return "no vision"
        needed = max(c.min_context_tokens or 0, input_tokens)
        if needed > endpoint.context_window:
            return f"context window {endpoint.context_window} < {needed}"
        if c.max_latency_ms is not None and endpoint.typical_latency_ms > c.max_latency_ms:
            return f"typical latency {endpoint.typical_latency_ms} ms > {c.max_latency_ms} ms"
        if c.max_cost_usd is not None and (cost is None or cost > Decimal(str(c.max_cost_usd))):
            return "cost unknown" if cost is None else f"estimated ${cost} > ${c.max_cost_usd}"
        return None

    @staticmethod
    def _distance(wanted: str, offered: str, c: Constraints) -> int:
        """0 for the wanted tier; then stronger tiers before weaker ones (quality first), unless
        a cost ceiling is what pushed us off the tier, where cheaper tiers come first."""
        w, o = TIER_ORDER.index(wanted), TIER_ORDER.index(offered)
        if o == w:
            return 0
        if c.max_cost_usd is not None:
            return (w - o) * 2 - 1 if o < w else (o - w) * 2
        return (o - w) * 2 - 1 if o > w else (w - o) * 2

    def get_routing_stats(self, *, since: datetime | None = None) -> dict[str, Any]:
        from routing.selectors import routing_stats

        return routing_stats(since=since)


__all__ = ["Constraints", "Decision", "ModelRouter", "NoModelAvailable", "TaskComplexity", "UnsupportedParameter"]
