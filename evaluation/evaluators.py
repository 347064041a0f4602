"""Evaluators: code-based ones are pure functions `(output, expected, meta, config) -> Score`; the LLM judge
asks a model through the router for a JSON verdict.

Scores are in 0..1 (1 = pass). An evaluator that cannot judge (bad output for a judge, unparseable verdict)
returns a Score with `value=None` and `error` set, so one bad item never fails a run.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from evaluation import configs as c


@dataclass(frozen=True)
class ResultMeta:
    latency_ms: float | None = None
    cost_usd: Decimal | None = None


@dataclass(frozen=True)
class Score:
    value: float | None
    label: str = ""
    reasoning: str = ""
    error: str = ""
    cost_usd: Decimal | None = None  # what judging cost (LLM judge only)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cost_usd"] = str(self.cost_usd) if self.cost_usd is not None else None
        return data


def _passed(ok: bool, reasoning: str) -> Score:
    return Score(value=1.0 if ok else 0.0, label="pass" if ok else "fail", reasoning=reasoning)


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------------------
# Code-based evaluators


def exact_match(output: Any, expected: Any, meta: ResultMeta, config: c.ExactMatchConfig) -> Score:
    got, want = as_text(output), as_text(expected)
    if config.strip:
        got, want = got.strip(), want.strip()
    if not config.case_sensitive:
        got, want = got.casefold(), want.casefold()
    return _passed(got == want, "output equals the expected output" if got == want else "output differs")


def contains(output: Any, expected: Any, meta: ResultMeta, config: c.ContainsConfig) -> Score:
    needle, haystack = config.substring or as_text(expected), as_text(output)
    if not needle:
        return Score(value=None, error="no substring configured and no expected output")
    if not config.case_sensitive:
        needle, haystack = needle.casefold(), haystack.casefold()
    found = needle in haystack
    return _passed(found, f"{'found' if found else 'did not find'} {needle[:80]!r}")


def regex(output: Any, expected: Any, meta: ResultMeta, config: c.RegexConfig) -> Score:
    text = as_text(output)
    pattern = re.compile(config.pattern)
    ok = bool(pattern.fullmatch(text) if config.full_match else pattern.search(text))
    return _passed(ok, f"{'matches' if ok else 'does not match'} /{config.pattern}/")


def json_schema(output: Any, expected: Any, meta: ResultMeta, config: c.JsonSchemaConfig) -> Score:
    if isinstance(output, str):
        try:
            output = json.loads(output)
        except ValueError as exc:
            return _passed(False, f"output is not JSON: {exc}")
    problems = schema_errors(output, config.json_schema)
    return _passed(not problems, "; ".join(problems[:5]) or "output matches the schema")


def numeric_tolerance(output: Any, expected: Any, meta: ResultMeta, config: c.NumericToleranceConfig) -> Score:
    got, want = _number(output), _number(expected)
    if want is None:
        return Score(value=None, error="the expected output is not a number")
    if got is None:
        return _passed(False, "output is not a number")
    ok = math.isclose(got, want, rel_tol=config.rel_tolerance, abs_tol=config.abs_tolerance)
    return _passed(ok, f"{got:g} vs expected {want:g}")


def latency_budget(output: Any, expected: Any, meta: ResultMeta, config: c.LatencyBudgetConfig) -> Score:
    if meta.latency_ms is None:
        return Score(value=None, error="no latency recorded")
    ok = meta.latency_ms <= config.max_ms
    return _passed(ok, f"{meta.latency_ms:.0f} ms against a budget of {config.max_ms:g} ms")


def cost_budget(output: Any, expected: Any, meta: ResultMeta, config: c.CostBudgetConfig) -> Score:
    if meta.cost_usd is None:
        return Score(value=None, error="no cost recorded (unpriced model)")
    ok = meta.cost_usd <= Decimal(str(config.max_usd))
    return _passed(ok, f"${meta.cost_usd} against a budget of ${config.max_usd:g}")


CODE_EVALUATORS: dict[str, Callable[[Any, Any, ResultMeta, Any], Score]] = {
    "exact_match": exact_match,
    "contains": contains,
    "regex": regex,
    "json_schema": json_schema,
    "numeric_tolerance": numeric_tolerance,
    "latency_budget": latency_budget,
    "cost_budget": cost_budget,
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        number = float(as_text(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------------------------------------------------
# JSON Schema: the `jsonschema` package is not installed, so this checks the subset evaluators need:
# type, enum, const, properties, required, additionalProperties (bool), items, min/max(Length|Items|imum),
# pattern. Other keywords are ignored (documented in the UI help).

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else list(types)
        if not any(_TYPES.get(t, lambda v: False)(value) for t in allowed):
            return [f"{path}: expected {' or '.join(allowed)}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: must be {schema['const']!r}")
    if isinstance(value, dict):
        errors += _object_errors(value, schema, path)
    elif isinstance(value, list):
        errors += _array_errors(value, schema, path)
    elif isinstance(value, str):
        errors += _bounds(len(value), schema, "minLength", "maxLength", path, "length")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: does not match {schema['pattern']}")
    elif _TYPES["number"](value):
        errors += _bounds(value, schema, "minimum", "maximum", path, "value")
    return errors


def _object_errors(value: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    errors = [f"{path}: missing {key!r}" for key in schema.get("required", []) if key not in value]
    properties = schema.get("properties", {})
    for key, sub in properties.items():
        if key in value:
            errors += schema_errors(value[key], sub, f"{path}.{key}")
    if schema.get("additionalProperties") is False:
        errors += [f"{path}: unexpected {key!r}" for key in value if key not in properties]
    return errors


def _array_errors(value: list[Any], schema: dict[str, Any], path: str) -> list[str]:
    errors = _bounds(len(value), schema, "minItems", "maxItems", path, "length")
    if isinstance(schema.get("items"), dict):
        for i, element in enumerate(value):
            errors += schema_errors(element, schema["items"], f"{path}[{i}]")
    return errors


def _bounds(number: float, schema: dict[str, Any], low: str, high: str, path: str, what: str) -> list[str]:
    errors = []
    if low in schema and number < schema[low]:
        errors.append(f"{path}: {what} below {schema[low]}")
    if high in schema and number > schema[high]:
        errors.append(f"{path}: {what} above {schema[high]}")
    return errors


# ---------------------------------------------------------------------------------------------------------
# LLM as judge

# Who the judge's calls are made as: their spans carry it, so continuous evaluation never samples the judge itself.
JUDGE_CALLER = "evaluation-judge"

JUDGE_SYSTEM = (
    "You are a strict evaluator. Grade the RESPONSE against the RUBRIC (and the EXPECTED answer when given). "
    'Reply with one JSON object and nothing else: {"score": <number from 0 to 1>, "label": "<short label>", '
    '"reasoning": "<one or two sentences>"}.'
)


class Verdict(BaseModel):
    score: float = Field(ge=0, le=1)
    label: str = Field(default="", max_length=100)
    reasoning: str = Field(default="", max_length=4000)


def judge_messages(*, rubric: str, input: Any, output: Any, expected: Any) -> list[dict[str, str]]:
    parts = [f"RUBRIC:\n{rubric}", f"INPUT:\n{as_text(input)}", f"RESPONSE:\n{as_text(output)}"]
    if expected is not None:
        parts.append(f"EXPECTED:\n{as_text(expected)}")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_verdict(text: str) -> Verdict:
    """The first {...} in the reply (models like to wrap JSON in prose or code fences). Raises ValueError."""
    match = _JSON_OBJECT.search(text or "")
    if match is None:
        raise ValueError("the judge's reply holds no JSON object")
    try:
        return Verdict.model_validate_json(match.group(0))
    except ValidationError as exc:
        raise ValueError(f"the judge's verdict is invalid: {exc.errors()[0]['msg']}") from exc


# (messages, model, max_tokens) -> (reply text, cost); the service passes the router-backed one.
JudgeCall = Callable[[list[dict[str, str]], str, int], Awaitable[tuple[str, Decimal | None]]]


async def llm_judge(
    *, input: Any, output: Any, expected: Any, config: c.LlmJudgeConfig, call: JudgeCall | None = None
) -> Score:
    """Ask the judge up to `max_attempts` times; an unparseable or failed last attempt is recorded as an error.
    Every attempt's cost counts."""
    call = call or router_judge_call
    messages = judge_messages(rubric=config.rubric, input=input, output=output, expected=expected)
    cost, error = Decimal(0), ""
    for _ in range(config.max_attempts):
        try:
            text, attempt_cost = await call(messages, config.model, config.max_tokens)
        except Exception as exc:  # noqa: BLE001 - a provider or routing failure is this item's error
            error = f"judge call failed: {exc}"
            continue
        cost += attempt_cost or 0
        try:
            verdict = parse_verdict(text)
        except ValueError as exc:
            error = str(exc)
            continue
        return Score(value=verdict.score, label=verdict.label, reasoning=verdict.reasoning, cost_usd=cost)
    return Score(value=None, error=f"{error} (after {config.max_attempts} attempts)", cost_usd=cost)


async def router_judge_call(messages: list[dict[str, str]], model: str, max_tokens: int) -> tuple[str, Decimal | None]:
    from routing.completion import Caller, CompletionRequest, complete

    req = CompletionRequest(messages=messages, model=model, max_tokens=max_tokens, temperature=0)
    result = await complete(req, Caller(username=JUDGE_CALLER))
    return result.response.content or "", result.cost_usd
