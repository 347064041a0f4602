"""Forms: shapes at the page edge. Services do the validation that needs the database."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pydantic
from django import forms

from evaluation.configs import CONFIG_BY_KIND, CategoricalScore, NumericScore, ScoreConfig
from evaluation.models import AnnotationQueue, Dataset, EvalRun, Evaluator
from observability.models import SpanKind
from observability.tracing import span_id_from_hex


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
    target = forms.CharField(
        max_length=200,
        initial=EvalRun.ECHO_TARGET,
        help_text="'echo' (output = input), 'auto' (the router), a model id, or agent:<agent>.<action> "
        "(run in forensic mode; each item's input is the action's payload).",
    )
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


class ScoreConfigRowForm(forms.Form):
    """One score of an annotation queue; a row without a name is ignored (the formset's spare rows)."""

    name = forms.CharField(required=False, max_length=60)
    kind = forms.ChoiceField(choices=[("numeric", "Number in a range"), ("categorical", "One of some labels"),
                                      ("boolean", "Yes or no")])  # fmt: skip
    min = forms.FloatField(required=False, initial=1, help_text="Numbers only.")
    max = forms.FloatField(required=False, initial=5, help_text="Numbers only.")
    labels = forms.CharField(required=False, help_text="Labels only: comma-separated.")

    def has_changed(self) -> bool:
        """A named row always counts, even when it equals its initial value (an edit page re-posting a score):
        the formset would otherwise skip validating it and the score would vanish."""
        return super().has_changed() or bool((self.data.get(self.add_prefix("name")) or "").strip())

    def config(self) -> dict[str, Any] | None:
        data = self.cleaned_data
        if not data.get("name"):
            return None
        config: dict[str, Any] = {"kind": data["kind"], "name": data["name"].strip()}
        if data["kind"] == "numeric":
            config.update({k: data[k] for k in ("min", "max") if data.get(k) is not None})
        elif data["kind"] == "categorical":
            config["labels"] = [label.strip() for label in (data.get("labels") or "").split(",") if label.strip()]
        return config


ScoreConfigFormSet = forms.formset_factory(ScoreConfigRowForm, extra=2)


def score_rows_initial(configs: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for c in configs:
        row = {"name": c.name, "kind": c.kind}
        if c.kind == "numeric":
            row.update({"min": c.min, "max": c.max})
        elif c.kind == "categorical":
            row["labels"] = ", ".join(c.labels)
        rows.append(row)
    return rows


class AnnotationQueueForm(forms.Form):
    """The queue's fields; its scores come from ScoreConfigFormSet. Bounds are the model's (one source)."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    reviewers_per_item = forms.IntegerField(initial=1, help_text="How many annotators review each item (1-10).")
    lock_seconds = forms.IntegerField(initial=600, help_text="How long a claimed item stays with its annotator.")


class ContinuousEvaluationForm(forms.Form):
    """Bounds (rates in 0..1) are checked by the model, so the admin site obeys the same rules."""

    name = forms.CharField(max_length=200)
    enabled = forms.BooleanField(required=False, initial=True)
    span_kind = forms.ChoiceField(choices=SpanKind.choices, initial=SpanKind.LLM)
    model = forms.CharField(required=False, max_length=150, help_text="Empty: any model.")
    agent = forms.CharField(required=False, max_length=100, help_text="Empty: any agent.")
    sample_rate = forms.FloatField(initial=0.1, help_text="Share of matching spans scored, from 0 to 1.")
    evaluators = forms.ModelMultipleChoiceField(queryset=Evaluator.objects.all(), to_field_name="uuid", required=False)
    threshold = forms.FloatField(initial=0.5, help_text="A span scoring below this (0 to 1) goes to the queue.")
    queue = forms.ModelChoiceField(queryset=AnnotationQueue.objects.all(), to_field_name="uuid", required=False)
    max_spans_per_tick = forms.IntegerField(initial=500, help_text="New spans read per tick (1-10000).")

    @classmethod
    def for_config(cls, config: Any, data: Any = None) -> ContinuousEvaluationForm:
        initial = {name: getattr(config, name) for name in cls.base_fields if name != "evaluators"}
        initial["evaluators"] = list(config.evaluators.all())
        return cls(data, initial=initial)


@dataclass(frozen=True)
class Selection:
    """Spans ("<trace hex>:<span hex>") and traces (hex) posted by the traces explorer or a trace page."""

    span_values: list[str]
    trace_values: list[str]
    span_refs: list[tuple[UUID, int]]
    trace_ids: list[UUID]
    errors: list[str]

    @classmethod
    def from_post(cls, data: Any) -> Selection:
        spans, traces = data.getlist("span"), data.getlist("trace")
        refs, ids, errors = [], [], []
        for value in spans:
            trace_hex, _, span_hex = value.partition(":")
            try:
                if len(trace_hex) != 32 or len(span_hex) != 16:
                    raise ValueError
                refs.append((UUID(hex=trace_hex), span_id_from_hex(span_hex)))
            except ValueError:
                errors.append(f"Not a span: {value[:80]!r}.")
        for value in traces:
            try:
                ids.append(UUID(hex=value))
            except ValueError:
                errors.append(f"Not a trace: {value[:80]!r}.")
        if not spans and not traces:
            errors.append("Select spans or traces first.")
        return cls(spans, traces, refs, ids, errors)

    @property
    def count(self) -> int:
        return len(set(self.span_values)) + len(set(self.trace_values))


class DatasetChoiceForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all(), to_field_name="uuid", required=False,
                                     empty_label="Choose a dataset…")  # fmt: skip
    new_name = forms.CharField(required=False, max_length=200, label="Or a new dataset named")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("dataset") and not (data.get("new_name") or "").strip():
            raise forms.ValidationError("Choose a dataset or name a new one.")
        return data


class QueueChoiceForm(forms.Form):
    queue = forms.ModelChoiceField(queryset=AnnotationQueue.objects.all(), to_field_name="uuid",
                                   empty_label="Choose a queue…")  # fmt: skip


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
