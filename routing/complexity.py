"""Heuristic complexity analysis of a prompt: a score, a tier and an explanation.

Pure Python with precompiled regexes so that a decision costs well under a millisecond
(target P99 <= 1 ms); no torch and no model. Used as the router's fallback when no learned
router is present or the learned one is not confident.

Each signal is squashed to [0, 1] and weighted; the weights were checked against the
training split of ../shared/data/routing (bench/router.py) but are kept round and readable
rather than fitted, because they must also make sense for prompts unlike MMLU and GSM8K.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from enum import Enum


class TaskComplexity(str, Enum):  # noqa: UP042 - the issue fixes (str, Enum); values are what callers store
    SIMPLE = "simple"
    MEDIUM = "medium"
    COMPLEX = "complex"


@dataclass(frozen=True)
class ComplexityAssessment:
    score: float
    complexity: TaskComplexity
    features: dict[str, float]
    explanation: str


_REASONING_VERBS = re.compile(
    r"\b(analy[sz]e|design|architect|explain|justify|prove|derive|evaluate|compare|contrast|optimi[sz]e|"
    r"critique|assess|debug|refactor|implement|plan|trade-?offs?|why|detailed|strategy|comprehensive|in[- ]depth|"
    r"pros and cons|root cause|investigate|walk (?:me )?through|reason about|migrat(?:e|ion)|architecture)\b",
)
_SIMPLE_VERBS = re.compile(
    r"\b(translate|summari[sz]e|list|define|name|spell|convert|format|rephrase|what is|who is|when (?:did|was))\b",
)
_MULTI_STEP = re.compile(
    r"\b(first|then|next|after that|finally|step[- ]by[- ]step|steps?|afterwards|subsequently|and then)\b|"
    r"^\s*(?:\d+[.)]|[-*•])\s+",
    re.MULTILINE,
)
_CODE = re.compile(
    r"```|\bdef \w+\(|\bclass \w+|\bfunction\s*\w*\(|\breturn\b|[{};]\s*$|\bimport \w+|=>|"
    r"\b(?:SELECT|select)\b.+\b(?:FROM|from)\b",
    re.MULTILINE,
)
_MATH = re.compile(
    r"[=^√∫∑π]|\b\d+\s*[-+*/×÷]\s*\d+|\b(sqrt|log|integral|derivative|equation|probability|percent|ratio|"
    r"matrix|polynomial|theorem|modulo|prime)\b|\d+(?:\.\d+)?%",
)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?")
_CONSTRAINT = re.compile(
    r"\b(must|must not|should not|at least|at most|no more than|exactly|only|except|without|unless|"
    r"not|never|all of the|none of the|constraints?|requirements?)\b",
)
_STATEMENTS = re.compile(r"\b(?:[Ss]tatement|[Ss]cenario)\s*\d\b|\b(?:I|II|III|IV)\s*(?:,|and|only)")

# Weights of each squashed signal; they sum to 1 so the score stays in [0, 1].
_WEIGHTS: dict[str, float] = {
    "reasoning_keywords": 0.24,
    "length": 0.12,
    "multi_step": 0.16,
    "code": 0.10,
    "math": 0.14,
    "numbers": 0.06,
    "questions": 0.05,
    "constraints": 0.08,
    "compound_statements": 0.05,
}
_SIMPLE_DISCOUNT = 0.1  # a plainly simple ask ("translate", "define") lowers the score by this much
# Set for gateway traffic (requests to an assistant), not for multiple-choice exams: a request
# to design or explain with steps is complex; one reasoning word makes a request medium.
MEDIUM_THRESHOLD = 0.15
COMPLEX_THRESHOLD = 0.275
_WINDOW_HEAD = 1200
_WINDOW_TAIL = 600

_LABELS: dict[str, str] = {
    "reasoning_keywords": "asks for reasoning (analyze, design, explain ...)",
    "length": "is long",
    "multi_step": "has several steps",
    "code": "contains code",
    "math": "involves math",
    "numbers": "contains many numbers",
    "questions": "asks several questions",
    "constraints": "states constraints or negations",
    "compound_statements": "combines several statements to judge",
}


def _window(prompt: str) -> str:
    """Head and tail of a long prompt: every count saturates early, so scanning a 50 KB paste
    only costs latency (target P99 <= 1 ms). The tail is kept because the question usually ends there."""
    if len(prompt) <= _WINDOW_HEAD + _WINDOW_TAIL:
        return prompt
    return prompt[:_WINDOW_HEAD] + "\n" + prompt[-_WINDOW_TAIL:]


def _count(pattern: re.Pattern[str], text: str, cap: int) -> int:
    """Matches of `pattern`, stopping at `cap` (the count where its signal saturates)."""
    return sum(1 for _ in itertools.islice(pattern.finditer(text), cap))


def _saturate(count: float, full_at: float) -> float:
    """Map a count to [0, 1], reaching 1 at `full_at`: the first occurrences matter most."""
    return min(1.0, count / full_at)


class ComplexityAnalyzer:
    """Scores how much a prompt needs a strong model, from surface features of its text."""

    def analyze(self, prompt: str) -> ComplexityAssessment:
        text = _window(prompt)
        # Keyword patterns run on lowercased text: Python's re is several times slower with IGNORECASE.
        lowered = text.lower()
        features = self._features(text, lowered, words=len(prompt.split()))
        simple = _SIMPLE_VERBS.search(lowered) is not None
        raw = sum(_WEIGHTS[name] * features[name] for name in _WEIGHTS)
        score = max(0.0, min(1.0, raw - (_SIMPLE_DISCOUNT if simple else 0.0)))
        features["simple_request"] = 1.0 if simple else 0.0
        complexity = self._tier(score)
        return ComplexityAssessment(score, complexity, features, self._explain(score, complexity, features))

    @staticmethod
    def _features(text: str, lowered: str, words: int) -> dict[str, float]:
        return {
            "reasoning_keywords": _saturate(_count(_REASONING_VERBS, lowered, 2), 2),
            "length": _saturate(max(0, words - 15), 250),
            "multi_step": _saturate(_count(_MULTI_STEP, lowered, 4), 4),
            "code": _saturate(_count(_CODE, text, 3), 3),
            "math": _saturate(_count(_MATH, lowered, 4), 4),
            "numbers": _saturate(_count(_NUMBER, text, 8), 8),
            "questions": _saturate(max(0, text.count("?") - 1), 2),
            "constraints": _saturate(_count(_CONSTRAINT, lowered, 3), 3),
            "compound_statements": _saturate(_count(_STATEMENTS, text, 2), 2),
        }

    @staticmethod
    def _tier(score: float) -> TaskComplexity:
        if score >= COMPLEX_THRESHOLD:
            return TaskComplexity.COMPLEX
        if score >= MEDIUM_THRESHOLD:
            return TaskComplexity.MEDIUM
        return TaskComplexity.SIMPLE

    @staticmethod
    def _explain(score: float, complexity: TaskComplexity, features: dict[str, float]) -> str:
        contributions = sorted(((_WEIGHTS[n] * features[n], n) for n in _WEIGHTS), reverse=True)
        reasons = [_LABELS[name] for value, name in contributions[:3] if value >= 0.02]
        because = "; ".join(reasons) if reasons else "shows no sign of reasoning, code, math or several steps"
        if features["simple_request"]:
            because += "; reads as a simple request"
        return f"{complexity.value} (score {score:.2f}): the prompt {because}."
