from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from evaluation import configs as c
from evaluation import evaluators as ev

NO_META = ev.ResultMeta()


def test_exact_match_passes_equal_text_and_fails_different_text() -> None:
    config = c.ExactMatchConfig()
    assert ev.exact_match(" Paris\n", "Paris", NO_META, config).value == 1.0
    assert ev.exact_match("paris", "Paris", NO_META, config).value == 0.0
    assert ev.exact_match("paris", "Paris", NO_META, c.ExactMatchConfig(case_sensitive=False)).value == 1.0


def test_exact_match_compares_structured_outputs_by_canonical_json() -> None:
    assert ev.exact_match({"b": 1, "a": 2}, {"a": 2, "b": 1}, NO_META, c.ExactMatchConfig()).value == 1.0


def test_contains_uses_the_configured_substring_or_else_the_expected_output() -> None:
    assert ev.contains("The capital is PARIS.", None, NO_META, c.ContainsConfig(substring="paris")).value == 1.0
    assert ev.contains("The capital is Lyon.", "Paris", NO_META, c.ContainsConfig()).value == 0.0
    assert ev.contains("anything", None, NO_META, c.ContainsConfig()).error


def test_regex_searches_or_full_matches() -> None:
    assert ev.regex("order 1234 shipped", None, NO_META, c.RegexConfig(pattern=r"\d{4}")).value == 1.0
    assert ev.regex("order 1234", None, NO_META, c.RegexConfig(pattern=r"\d{4}", full_match=True)).value == 0.0


def test_a_regex_config_that_does_not_compile_is_refused() -> None:
    with pytest.raises(ValueError, match="regular expression"):
        c.RegexConfig(pattern="(")


def test_json_schema_checks_types_required_keys_and_bounds() -> None:
    config = c.JsonSchemaConfig.model_validate({"schema": {
        "type": "object", "required": ["name", "age"], "additionalProperties": False,
        "properties": {"name": {"type": "string", "minLength": 1}, "age": {"type": "integer", "minimum": 0},
                       "tags": {"type": "array", "items": {"enum": ["a", "b"]}}},
    }})  # fmt: skip
    assert ev.json_schema('{"name": "Ada", "age": 36, "tags": ["a"]}', None, NO_META, config).value == 1.0
    bad = ev.json_schema({"name": "", "age": -1, "tags": ["c"], "x": 1}, None, NO_META, config)
    assert bad.value == 0.0
    for problem in ("$.name: length below 1", "$.age: value below 0", "$.tags[0]: not one of", "unexpected 'x'"):
        assert problem in bad.reasoning
    assert ev.json_schema("not json", None, NO_META, config).reasoning.startswith("output is not JSON")


def test_numeric_tolerance_accepts_numbers_within_the_tolerance() -> None:
    config = c.NumericToleranceConfig(abs_tolerance=0.5)
    assert ev.numeric_tolerance("3.4", 3, NO_META, config).value == 1.0
    assert ev.numeric_tolerance(4, "3", NO_META, config).value == 0.0
    assert ev.numeric_tolerance("three", 3, NO_META, config).value == 0.0
    assert ev.numeric_tolerance(3, "n/a", NO_META, config).error
    assert ev.numeric_tolerance(110, 100, NO_META, c.NumericToleranceConfig(rel_tolerance=0.1)).value == 1.0


def test_latency_budget_compares_the_recorded_latency() -> None:
    config = c.LatencyBudgetConfig(max_ms=500)
    assert ev.latency_budget("x", None, ev.ResultMeta(latency_ms=499), config).value == 1.0
    assert ev.latency_budget("x", None, ev.ResultMeta(latency_ms=501), config).value == 0.0
    assert ev.latency_budget("x", None, NO_META, config).error


def test_cost_budget_compares_the_recorded_cost_and_reports_unpriced_calls() -> None:
    config = c.CostBudgetConfig(max_usd=0.01)
    assert ev.cost_budget("x", None, ev.ResultMeta(cost_usd=Decimal("0.005")), config).value == 1.0
    assert ev.cost_budget("x", None, ev.ResultMeta(cost_usd=Decimal("0.02")), config).value == 0.0
    assert ev.cost_budget("x", None, NO_META, config).error


def test_the_judge_parses_a_verdict_wrapped_in_prose() -> None:
    verdict = ev.parse_verdict('Sure!\n```json\n{"score": 0.8, "label": "good", "reasoning": "close"}\n```')
    assert (verdict.score, verdict.label, verdict.reasoning) == (0.8, "good", "close")
    with pytest.raises(ValueError, match="no JSON"):
        ev.parse_verdict("[simulated] I think it is fine.")
    with pytest.raises(ValueError, match="invalid"):
        ev.parse_verdict('{"score": 7}')


def test_the_judge_prompt_carries_the_rubric_input_response_and_expected_answer() -> None:
    messages = ev.judge_messages(rubric="Be exact.", input="2+2?", output="4", expected="4")
    assert messages[0]["role"] == "system" and '"score"' in messages[0]["content"]
    assert all(part in messages[1]["content"] for part in ("Be exact.", "2+2?", "RESPONSE:\n4", "EXPECTED:\n4"))


def test_the_judge_retries_an_unparseable_verdict_and_counts_every_attempts_cost() -> None:
    replies = iter(["not json", '{"score": 1, "label": "pass", "reasoning": "right"}'])

    async def call(messages: list, model: str, max_tokens: int) -> tuple[str, Decimal]:
        return next(replies), Decimal("0.001")

    score = asyncio.run(ev.llm_judge(input="q", output="a", expected=None,
                                     config=c.LlmJudgeConfig(rubric="r"), call=call))  # fmt: skip
    assert (score.value, score.label, score.cost_usd) == (1.0, "pass", Decimal("0.002"))
