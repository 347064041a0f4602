"""The model router: tiers, constraints, fallback order, stats arithmetic, the learned router."""

from __future__ import annotations

from decimal import Decimal

import pytest

from routing import catalog
from routing.models import ModelEndpoint, RoutingDecision
from routing.router import Constraints, ModelRouter, NoModelAvailable

pytestmark = pytest.mark.django_db

COMPLEX = "Design a multi-region failover architecture and explain the trade-offs step by step."
SIMPLE = "Translate 'good morning' to French."


@pytest.fixture(autouse=True)
def _fresh_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                 "AIOS_OPENAI_COMPATIBLE_BASE_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    catalog.endpoints.invalidate()
    catalog.credentials.invalidate()
    # Prices as a fresh installation has them: transactional tests elsewhere empty the tables,
    # and the process's price table must not be whatever an earlier test loaded.
    from tests.seeds import ensure_seed_data

    ensure_seed_data()


def test_without_keys_each_tier_maps_to_its_simulator_model() -> None:
    router = ModelRouter()
    assert router.route(SIMPLE).chosen.model_id == "sim/simple"
    decision = router.route(COMPLEX)
    assert decision.complexity == "complex" and decision.chosen.model_id == "sim/complex"
    assert decision.decided_by == "heuristic" and "reasoning" in decision.reason
    # The complex tier (priced like Claude 3.5 Sonnet) costs more than the gpt-4o baseline; simple saves.
    assert decision.estimated_cost_usd > 0 and decision.baseline_cost_usd > 0
    simple = router.route(SIMPLE)
    assert simple.baseline_cost_usd > simple.estimated_cost_usd > 0


def test_with_a_key_the_real_models_of_the_tier_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    catalog.endpoints.invalidate()
    available = {e.model_id for e in catalog.available_endpoints()}
    assert "openai/gpt-4o-mini" in available and "sim/medium" not in available
    assert "sim/complex" not in available  # openai/gpt-4o serves the complex tier
    decision = ModelRouter().route(COMPLEX)
    assert decision.chosen.model_id == "openai/gpt-4o" and catalog.baseline_endpoint().model_id == "openai/gpt-4o"


def test_a_cost_ceiling_moves_to_a_cheaper_tier() -> None:
    decision = ModelRouter().route(COMPLEX, Constraints(max_cost_usd=0.0005))
    assert decision.complexity == "complex" and decision.chosen.tier in ("simple", "medium")
    assert decision.estimated_cost_usd <= Decimal("0.0005")
    assert "constraints" in decision.reason


def test_a_latency_ceiling_and_vision_are_honoured() -> None:
    ModelEndpoint.objects.filter(model="complex").update(vision=False)
    catalog.endpoints.invalidate()
    decision = ModelRouter().route(COMPLEX, Constraints(requires_vision=True))
    assert decision.chosen.vision and decision.chosen.tier != "complex"
    decision = ModelRouter().route(COMPLEX, Constraints(max_latency_ms=700))
    assert decision.chosen.typical_latency_ms <= 700


def test_impossible_constraints_raise_and_name_why() -> None:
    with pytest.raises(NoModelAvailable, match="estimated"):
        ModelRouter().route(COMPLEX, Constraints(max_cost_usd=0.0))
    with pytest.raises(NoModelAvailable, match="context window"):
        ModelRouter().route(SIMPLE, Constraints(min_context_tokens=10_000_000))


def test_models_that_cannot_honour_a_request_parameter_are_not_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    from routing.router import UnsupportedParameter

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-real")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    catalog.endpoints.invalidate()
    router = ModelRouter()
    assert router.route(COMPLEX).chosen.provider == "anthropic"
    decision = router.route(COMPLEX, params={"frequency_penalty": 0.5})  # Anthropic has no penalties
    assert decision.chosen.model_id == "openai/gpt-4o"
    assert all(e.provider != "anthropic" for e in decision.alternatives)
    claude = catalog.find("anthropic/claude-3-5-sonnet-20241022")
    with pytest.raises(UnsupportedParameter) as info:
        router.explicit(COMPLEX, claude, params={"response_format": {"type": "json_object"}})
    assert info.value.param == "response_format"
    monkeypatch.delenv("OPENAI_API_KEY")
    catalog.endpoints.invalidate()
    ModelEndpoint.objects.exclude(provider="anthropic").update(enabled=False)
    catalog.endpoints.invalidate()
    with pytest.raises(UnsupportedParameter, match="logit_bias"):
        router.route(COMPLEX, params={"logit_bias": {"1": 5}})


def test_an_image_asks_for_a_model_that_sees_and_fetches_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from routing.completion import CompletionRequest, plan

    image = {"type": "image_url", "image_url": {"url": "https://example.com/chart.png"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "Translate the title."}, image]}]
    ModelEndpoint.objects.filter(model="simple").update(vision=False)
    catalog.endpoints.invalidate()
    decision, _ = plan(CompletionRequest(messages=messages))
    assert decision.chosen.vision and decision.constraints.requires_vision  # inferred from the image part
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test-not-real")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    catalog.endpoints.invalidate()
    inline = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    as_data = [{"role": "user", "content": [{"type": "text", "text": "Translate the title."}, inline]}]
    assert plan(CompletionRequest(messages=as_data))[0].chosen.provider == "gemini"
    assert plan(CompletionRequest(messages=messages))[0].chosen.provider == "openai"  # Gemini fetches no URLs


def test_tools_or_tool_turns_ask_for_a_provider_that_speaks_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    from routing.completion import CompletionRequest, plan
    from routing.providers.gemini import GeminiProvider

    # Every client speaks tools today: a provider that does not is played by Gemini without them.
    monkeypatch.setattr(GeminiProvider, "supported_extra", GeminiProvider.supported_extra - {"tools"})
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test-not-real")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    catalog.endpoints.invalidate()
    ask = [{"role": "user", "content": SIMPLE}]
    assert plan(CompletionRequest(messages=ask))[0].chosen.provider == "gemini"
    tool = {"type": "function", "function": {"name": "lookup"}}
    with_tools = plan(CompletionRequest(messages=ask, extra={"tools": [tool]}))[0]
    assert with_tools.chosen.provider == "openai" and all(e.provider != "gemini" for e in with_tools.alternatives)
    # A history with a call and its result, even without `tools` in this request.
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    turns = [*ask, {"role": "assistant", "content": None, "tool_calls": [call]},
             {"role": "tool", "tool_call_id": "call_1", "content": "found"}]  # fmt: skip
    assert plan(CompletionRequest(messages=turns))[0].chosen.provider == "openai"


def test_alternatives_are_the_fallback_order_stronger_tiers_first() -> None:
    decision = ModelRouter().route(SIMPLE)
    assert [e.model_id for e in decision.alternatives] == ["sim/medium", "sim/complex"]


def test_routing_stats_add_up() -> None:
    from django.utils import timezone

    rows = [("simple", "sim/simple", "0.001", "0.010"), ("simple", "sim/simple", "0.002", "0.010"),
            ("complex", "sim/complex", "0.005", "0.010")]  # fmt: skip
    for complexity, model, cost, baseline in rows:
        RoutingDecision.objects.create(
            created_at=timezone.now(),
            complexity=complexity,
            score=0.1,
            decided_by="heuristic",
            chosen_model=model,
            estimated_cost_usd=Decimal(cost),
            baseline_cost_usd=Decimal(baseline),
        )
    stats = ModelRouter().get_routing_stats()
    assert stats["total_decisions"] == 3
    assert stats["total_estimated_cost_usd"] == pytest.approx(0.008)
    assert stats["baseline_cost_usd"] == pytest.approx(0.030)
    assert stats["savings_usd"] == pytest.approx(0.022) and stats["savings_pct"] == pytest.approx(0.022 / 0.030)
    assert stats["by_complexity"] == {"simple": 2, "complex": 1}
    assert stats["by_model"] == {"sim/simple": 2, "sim/complex": 1}


def test_the_learned_router_trains_on_a_slice_is_stored_and_decides_offline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import gzip
    import json
    from pathlib import Path

    from django.core.management import call_command

    from routing.models import RouterModel
    from routing.router import learned_router

    source = Path(__file__).resolve().parents[3] / "shared" / "data" / "routing" / "routellm_mmlu_gsm8k.jsonl.gz"
    if not source.exists():
        pytest.skip("shared data set not present")
    train, holdout = [], []
    with gzip.open(source, "rt") as fh:
        for line in fh:
            row = json.loads(line)
            (train if row["split"] == "train" else holdout).append(row)
            if len(train) >= 120 and len(holdout) >= 10:
                break
    rows = train[:120] + holdout[:10]  # holdout rows must be ignored
    data = tmp_path / "slice.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    call_command("train_router", "--data", str(data), "--no-stored")
    model = RouterModel.objects.get(active=True)
    assert model.metadata["n_examples"] == 120  # the 10 holdout rows were left out
    learned_router.invalidate()
    router = ModelRouter()
    decisions = {router.route(r["prompt"]).decided_by for r in rows[:40]}
    assert "learned" in decisions  # confident on at least some prompts; heuristics cover the rest


def test_decisions_past_their_retention_are_deleted(settings) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from django.utils import timezone

    from routing.tasks import retention

    settings.AIOS_DECISION_RETENTION_DAYS = 30
    now = timezone.now()
    for age_days in (45, 31, 29, 1):
        RoutingDecision.objects.create(
            created_at=now - timedelta(days=age_days),
            complexity="simple",
            score=0.1,
            decided_by="heuristic",
            chosen_model="sim/simple",
            reason=f"{age_days}d",
        )
    assert retention() == 2
    assert sorted(RoutingDecision.objects.values_list("reason", flat=True)) == ["1d", "29d"]
