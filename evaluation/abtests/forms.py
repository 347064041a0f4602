"""The create form: flat fields for the page, turned into the same ABTestSpec the API takes.

Errors come back from two places, pydantic (the spec's shape) and the service (the database), both keyed by
the spec's field paths (`variants.0.template`); `field_for` maps them onto this form's fields."""

from __future__ import annotations

from typing import Any

from django import forms

from evaluation.abtests.specs import ABTestSpec
from evaluation.models import ABTest, Dataset, Evaluator

ARMS = ("a", "b")
VARIANT_FIELDS = ("name", "model", "min_tier", "max_cost_usd", "max_latency_ms", "system_prompt", "template")
TIERS = [("", "—"), ("simple", "simple"), ("medium", "medium"), ("complex", "complex")]


def _variant_fields(arm: str, name: str) -> dict[str, forms.Field]:
    text = forms.Textarea(attrs={"rows": 2})
    return {
        f"{arm}_name": forms.CharField(max_length=40, initial=name, label=f"{arm.upper()}: name"),
        f"{arm}_model": forms.CharField(max_length=200, initial="auto", label=f"{arm.upper()}: model",
                                        help_text="'auto' (the router), a model id, or 'echo' (eval runs)"),
        f"{arm}_min_tier": forms.ChoiceField(choices=TIERS, required=False, label=f"{arm.upper()}: router min tier"),
        f"{arm}_max_cost_usd": forms.FloatField(required=False, label=f"{arm.upper()}: router max cost (USD)"),
        f"{arm}_max_latency_ms": forms.IntegerField(required=False, label=f"{arm.upper()}: router max latency (ms)"),
        f"{arm}_system_prompt": forms.CharField(required=False, widget=text, label=f"{arm.upper()}: system prompt"),
        f"{arm}_template": forms.CharField(required=False, widget=text, label=f"{arm.upper()}: template",
                                           help_text="wraps the user's message: must contain {input}"),
    }  # fmt: skip


class ABTestForm(forms.Form):
    name = forms.CharField(max_length=200)
    hypothesis = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    scope = forms.ChoiceField(choices=ABTest.Scope.choices)
    weight_a = forms.FloatField(initial=50, min_value=0.01, label="Traffic to A (weight)")
    weight_b = forms.FloatField(initial=50, min_value=0.01, label="Traffic to B (weight)")
    metric = forms.ChoiceField(choices=ABTest.Metric.choices)
    evaluator = forms.ChoiceField(required=False, help_text="success and judge metrics")
    score_name = forms.CharField(required=False, max_length=60, help_text="human metric: the annotation score")
    minimum_detectable_effect = forms.FloatField(help_text="the smallest difference worth detecting, absolute "
                                                 "(0.05 = 5 points of success rate; 200 = 200 ms)")  # fmt: skip
    baseline_rate = forms.FloatField(required=False, help_text="success: A's expected rate, e.g. 0.8")
    standard_deviation = forms.FloatField(required=False, help_text="other metrics: expected SD per unit")
    alpha = forms.FloatField(initial=0.05)
    power = forms.FloatField(initial=0.8)
    design = forms.ChoiceField(choices=[("group_sequential", "Group sequential (O'Brien-Fleming looks)"),
                                        ("fixed_horizon", "Fixed horizon (one analysis)")])  # fmt: skip
    looks = forms.IntegerField(initial=5, min_value=2, max_value=10, help_text="group sequential only")
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.all(), to_field_name="uuid", required=False, help_text="eval-run scope"
    )
    paired = forms.BooleanField(required=False, initial=True, help_text="eval runs: every item through both variants")
    settle_seconds = forms.IntegerField(required=False, min_value=0, help_text="live: how long a request may wait "
                                        "for its value (default by metric)")  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for arm, name in zip(ARMS, ("control", "treatment"), strict=True):
            self.fields.update(_variant_fields(arm, name))
        names = list(Evaluator.objects.values_list("name", flat=True))
        self.fields["evaluator"].choices = [("", "—"), *((n, n) for n in names)]

    def general_fields(self) -> list[Any]:
        return [self[f] for f in ("name", "hypothesis", "scope", "dataset", "paired", "settle_seconds")]

    def metric_fields(self) -> list[Any]:
        names = ("metric", "evaluator", "score_name", "minimum_detectable_effect", "baseline_rate",
                 "standard_deviation", "alpha", "power", "design", "looks")  # fmt: skip
        return [self[f] for f in names]

    def variant_rows(self) -> list[list[Any]]:
        return [[self[f"{arm}_{f}"] for f in VARIANT_FIELDS] for arm in ARMS]

    def spec_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        variants = [
            {f: data.get(f"{arm}_{f}") for f in VARIANT_FIELDS if data.get(f"{arm}_{f}") not in (None, "")}
            for arm in ARMS
        ]
        spec = {k: data.get(k) for k in ("name", "hypothesis", "scope", "metric", "evaluator", "score_name",
                                         "minimum_detectable_effect", "baseline_rate", "standard_deviation", "alpha",
                                         "power", "design", "looks", "paired", "settle_seconds")}  # fmt: skip
        spec.update(variants=variants, weights=[data.get("weight_a"), data.get("weight_b")])
        spec["dataset"] = data["dataset"].uuid if data.get("dataset") else None
        spec["evaluator"] = spec["evaluator"] or ""
        spec["score_name"] = spec["score_name"] or ""
        return spec

    def field_for(self, path: str) -> str | None:
        """`variants.1.template` → `b_template`, `weights.0` → `weight_a`; None for the whole form."""
        parts = path.split(".")
        if parts[0] == "variants" and len(parts) >= 3 and parts[1] in ("0", "1"):
            name = f"{ARMS[int(parts[1])]}_{parts[2]}"
        elif parts[0] == "weights" and len(parts) >= 2 and parts[1] in ("0", "1"):
            name = f"weight_{ARMS[int(parts[1])]}"
        else:
            name = parts[0]
        return name if name in self.fields else None


def build_spec(form: ABTestForm) -> ABTestSpec | None:
    """The spec, or None with the pydantic errors added to the form."""
    import pydantic

    try:
        return ABTestSpec.model_validate(form.spec_data())
    except pydantic.ValidationError as exc:
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            form.add_error(form.field_for(path), message if form.field_for(path) else f"{path}: {message}")
        return None
