from __future__ import annotations

from routing.complexity import ComplexityAnalyzer, TaskComplexity

analyzer = ComplexityAnalyzer()

DESIGN_PROMPT = (
    "First, analyze the trade-offs between event sourcing and a relational schema for our billing system. "
    "Then design a migration plan in steps: 1) dual writes, 2) backfill, 3) cut-over. "
    "Explain why each step is safe, and the plan must not lose any invoice. "
    "What are the failure modes? How would you test them? Which metrics would you watch?\n"
    "```python\ndef migrate(invoice):\n    return store.write(invoice)\n```"
)


def test_a_multi_step_design_prompt_is_complex() -> None:
    assessment = analyzer.analyze(DESIGN_PROMPT)
    assert assessment.complexity is TaskComplexity.COMPLEX
    assert assessment.score >= 0.45


def test_a_short_factual_question_is_simple() -> None:
    assessment = analyzer.analyze("What is the capital of France?")
    assert assessment.complexity is TaskComplexity.SIMPLE
    assert assessment.score < 0.25


def test_a_translation_request_scores_lower_than_the_same_length_analysis() -> None:
    simple = analyzer.analyze("Translate this sentence into German: the meeting moved to Tuesday afternoon.")
    analysis = analyzer.analyze("Analyze and explain why the meeting moved to Tuesday afternoon, step by step.")
    assert simple.score < analysis.score


def test_a_math_word_problem_lands_in_between() -> None:
    prompt = (
        "A train leaves at 3 pm at 60 miles per hour; a second train leaves at 4 pm at 80 miles per hour. "
        "First compute the distance after 2 hours, then find when the second train catches up, "
        "and explain the equation 60t = 80(t - 1)."
    )
    assessment = analyzer.analyze(prompt)
    assert assessment.complexity is not TaskComplexity.SIMPLE
    assert assessment.features["math"] > 0
    assert assessment.features["numbers"] > 0


def test_the_score_stays_within_zero_and_one_for_extreme_prompts() -> None:
    for prompt in ["", "?" * 500, DESIGN_PROMPT * 20, "translate " * 300]:
        assessment = analyzer.analyze(prompt)
        assert 0.0 <= assessment.score <= 1.0


def test_the_explanation_names_the_tier_and_the_main_reasons() -> None:
    assessment = analyzer.analyze(DESIGN_PROMPT)
    assert assessment.explanation.startswith("complex (score")
    assert "reasoning" in assessment.explanation
    plain = analyzer.analyze("Hello there")
    assert "no sign of" in plain.explanation


def test_every_feature_is_reported_in_zero_one() -> None:
    features = analyzer.analyze(DESIGN_PROMPT).features
    assert {"reasoning_keywords", "length", "multi_step", "code", "math", "questions", "constraints"} <= set(features)
    assert all(0.0 <= value <= 1.0 for value in features.values())
