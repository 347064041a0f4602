"""Forms: shapes at the page edge. Services do the validation that needs the database."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from evaluation.configs import CategoricalScore, NumericScore, ScoreConfig
from evaluation.models import Dataset, EvalRun, Evaluator


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=200)
    file = forms.FileField(help_text="CSV with an input column (expected, metadata optional) or JSONL objects.")


class DatasetCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


def _json_or_text(raw: str) -> Any:
    """Text starting with { or [ that parses as JSON is structured input (chat messages, an action's payload);
    anything else is kept as the text typed."""
    text = raw.strip()
    if text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return raw


def _as_form_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


class DatasetItemForm(forms.Form):
    input = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Text, or JSON starting with { or [ (chat messages, an action's payload).",
    )
    expected = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                               help_text="Optional; text or JSON as for the input.")  # fmt: skip
    metadata = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                               help_text="Optional JSON object.")  # fmt: skip

    @classmethod
    def for_item(cls, item: Any) -> DatasetItemForm:
        return cls(initial={"input": _as_form_text(item.input), "expected": _as_form_text(item.expected),
                            "metadata": _as_form_text(item.metadata or None)})  # fmt: skip

    def clean_input(self) -> Any:
        return _json_or_text(self.cleaned_data["input"])

    def clean_expected(self) -> Any:
        raw = self.cleaned_data.get("expected") or ""
        return _json_or_text(raw) if raw.strip() else None

    def clean_metadata(self) -> dict[str, Any]:
        raw = (self.cleaned_data.get("metadata") or "").strip()
        try:
            value = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("A JSON object.")
        return value


class EvalRunForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all(), to_field_name="uuid")
    target = forms.CharField(max_length=200, initial=EvalRun.ECHO_TARGET,
                             help_text="'echo' (output = input), 'auto' (the router) or a model id.")  # fmt: skip
    evaluators = forms.ModelMultipleChoiceField(queryset=Evaluator.objects.all(), to_field_name="uuid")


class EvaluatorForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Evaluator.Kind.choices)
    config = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        initial="{}",
        help_text='JSON, e.g. {"pattern": "^yes"} for regex, {"rubric": "..."} for a judge.',
    )

    def clean_config(self) -> dict[str, Any]:
        try:
            value = json.loads(self.cleaned_data["config"] or "{}")
        except ValueError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("A JSON object.")
        return value


def scores_from_post(configs: list[ScoreConfig], data: Any) -> dict[str, Any]:
    """Form strings to the types the score configs check; missing or malformed values stay out (the
    service then says which score is missing)."""
    scores: dict[str, Any] = {}
    for config in configs:
        raw = data.get(f"score-{config.name}", "")
        if raw == "":
            continue
        if isinstance(config, NumericScore):
            try:
                scores[config.name] = float(raw)
            except ValueError:
                scores[config.name] = raw
        elif isinstance(config, CategoricalScore):
            scores[config.name] = raw
        else:
            scores[config.name] = {"true": True, "false": False}.get(raw, raw)
    return scores
