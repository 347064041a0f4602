"""Forms: shapes at the page edge. Services do the validation that needs the database."""

from __future__ import annotations

import json
from typing import Any

import pydantic
from django import forms

from evaluation.configs import CONFIG_BY_KIND, CategoricalScore, NumericScore, ScoreConfig
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


def _config_field(name: str, prop: dict[str, Any]) -> forms.Field:
    """A form field for one property of an evaluator config's JSON schema. Requiredness and bounds are left to
    the pydantic model (one source of truth; its messages land on the field)."""
    label = prop.get("title") or name.replace("_", " ").capitalize()
    options: dict[str, Any] = {"label": label, "required": False, "help_text": prop.get("description", "")}
    kind, default = prop.get("type"), prop.get("default")
    if kind == "boolean":
        return forms.BooleanField(initial=bool(default), **options)
    if kind == "integer":
        return forms.IntegerField(initial=default, **options)
    if kind == "number":
        return forms.FloatField(initial=default, **options)
    if kind == "string":
        widget = forms.Textarea(attrs={"rows": 4}) if prop.get("widget") == "textarea" else None
        return forms.CharField(initial=default, widget=widget, **options)
    options["help_text"] = (options["help_text"] + " JSON.").strip()
    initial = json.dumps(default) if default is not None else ""
    return forms.CharField(initial=initial, widget=forms.Textarea(attrs={"rows": 6}), **options)


class EvaluatorForm(forms.Form):
    """Name, (on create) kind, and one field per property of the kind's config model, generated from its JSON
    schema as agents/forms.py does for action payloads. `cleaned_data["config"]` is the validated config."""

    name = forms.CharField(max_length=200)

    def __init__(self, *args: Any, kind: str, choose_kind: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if choose_kind:
            self.fields["kind"] = forms.ChoiceField(choices=Evaluator.Kind.choices, initial=kind)
        self.kind = kind if kind in CONFIG_BY_KIND else None
        schema = CONFIG_BY_KIND[self.kind].model_json_schema() if self.kind else {}
        self.config_props: dict[str, dict[str, Any]] = schema.get("properties", {})
        for name, prop in self.config_props.items():
            self.fields[name] = _config_field(name, prop)

    @classmethod
    def for_evaluator(cls, evaluator: Evaluator, data: Any = None) -> EvaluatorForm:
        config = evaluator.parsed_config.model_dump(by_alias=True)
        initial = {k: json.dumps(v, indent=2) if isinstance(v, dict | list) else v for k, v in config.items()}
        return cls(data, kind=evaluator.kind, choose_kind=False, initial={"name": evaluator.name, **initial})

    def _config(self, data: dict[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for name, prop in self.config_props.items():
            value = data.get(name)
            if prop.get("type") == "boolean":
                config[name] = bool(value)
            elif value in (None, ""):
                continue  # the model's default, or its "Field required"
            elif prop.get("type") in ("string", "integer", "number"):
                config[name] = value
            else:
                try:
                    config[name] = json.loads(value)
                except ValueError as exc:
                    self.add_error(name, f"Not valid JSON: {exc}")
        return config

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.kind is None:
            return data
        config = self._config(data)
        try:
            parsed = CONFIG_BY_KIND[self.kind].model_validate(config)
        except pydantic.ValidationError as exc:
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else None
                if field not in self.errors:  # a JSON parse error already explains this field
                    self.add_error(field if field in self.fields else None, err["msg"])
        else:
            data["config"] = parsed.model_dump(by_alias=True)
        return data


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
