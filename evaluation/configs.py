"""Pydantic shapes of the JSON this app stores: evaluator configs (one model per kind) and score configs."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


TEXTAREA = {"widget": "textarea"}  # a hint for the generated form: long text


class ExactMatchConfig(_Config):
    case_sensitive: bool = True
    strip: bool = Field(default=True, description="Ignore leading and trailing whitespace.")


class ContainsConfig(_Config):
    substring: str = Field(default="", description="Empty: the item's expected output.")
    case_sensitive: bool = False


class RegexConfig(_Config):
    pattern: str = Field(min_length=1, description="A Python regular expression.")
    full_match: bool = Field(default=False, description="The whole output must match, not just a part.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class JsonSchemaConfig(_Config):
    # The JSON Schema subset evaluators.py implements (type, properties, required, items, enum, ...).
    json_schema: dict[str, Any] = Field(
        alias="schema",
        description="JSON Schema (type, properties, required, items, enum, const, min/max, pattern).",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NumericToleranceConfig(_Config):
    abs_tolerance: float = Field(default=0.0, ge=0, description="Absolute difference allowed.")
    rel_tolerance: float = Field(default=0.0, ge=0, description="Relative difference allowed (0.01 = 1%).")


class LatencyBudgetConfig(_Config):
    max_ms: float = Field(gt=0, description="Milliseconds.")


class CostBudgetConfig(_Config):
    max_usd: float = Field(gt=0, description="US dollars per item.")


class LlmJudgeConfig(_Config):
    rubric: str = Field(min_length=1, description="What a good answer is.", json_schema_extra=TEXTAREA)
    model: str = Field(default="auto", min_length=1, description="A model id, or 'auto' (the router).")
    max_attempts: int = Field(default=2, ge=1, le=5, description="Asks again when the verdict is unparseable.")
    max_tokens: int = Field(default=400, ge=16, le=4000)


EvaluatorConfig = (
    ExactMatchConfig
    | ContainsConfig
    | RegexConfig
    | JsonSchemaConfig
    | NumericToleranceConfig
    | LatencyBudgetConfig
    | CostBudgetConfig
    | LlmJudgeConfig
)

CONFIG_BY_KIND: dict[str, type[_Config]] = {
    "exact_match": ExactMatchConfig,
    "contains": ContainsConfig,
    "regex": RegexConfig,
    "json_schema": JsonSchemaConfig,
    "numeric_tolerance": NumericToleranceConfig,
    "latency_budget": LatencyBudgetConfig,
    "cost_budget": CostBudgetConfig,
    "llm_judge": LlmJudgeConfig,
}


def parse_evaluator_config(kind: str, config: dict[str, Any]) -> EvaluatorConfig:
    """Raises KeyError for an unknown kind, pydantic.ValidationError for a bad config."""
    return CONFIG_BY_KIND[kind].model_validate(config)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------------
# Annotation score configs


class NumericScore(_Config):
    kind: Literal["numeric"] = "numeric"
    name: str = Field(min_length=1, max_length=60)
    min: float = 1
    max: float = 5

    @model_validator(mode="after")
    def _range(self) -> NumericScore:
        if self.max <= self.min:
            raise ValueError("max must be above min")
        return self

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not self.min <= value <= self.max:
            raise ValueError(f"a number from {self.min:g} to {self.max:g}")
        return float(value)


class CategoricalScore(_Config):
    kind: Literal["categorical"] = "categorical"
    name: str = Field(min_length=1, max_length=60)
    labels: list[str] = Field(min_length=2)

    def check(self, value: Any) -> str:
        if value not in self.labels:
            raise ValueError(f"one of {', '.join(self.labels)}")
        return str(value)


class BooleanScore(_Config):
    kind: Literal["boolean"] = "boolean"
    name: str = Field(min_length=1, max_length=60)

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError("true or false")
        return value


ScoreConfig = Annotated[NumericScore | CategoricalScore | BooleanScore, Field(discriminator="kind")]
_score_configs = TypeAdapter(list[ScoreConfig])


def parse_score_configs(data: Any) -> list[NumericScore | CategoricalScore | BooleanScore]:
    configs = _score_configs.validate_python(data)
    names = [c.name for c in configs]
    if len(names) != len(set(names)):
        raise ValueError("score names must be unique")
    return configs
