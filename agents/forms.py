"""Forms. The "Run action" form is generated from the action's pydantic payload schema."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from agents.manifest import ActionSpec, registry


def _field_for(name: str, prop: dict[str, Any], required: bool) -> forms.Field:
    kind = prop.get("type")
    label = prop.get("title") or name.replace("_", " ").capitalize()
    options: dict[str, Any] = {"label": label, "required": required, "help_text": prop.get("description", "")}
    default = prop.get("default")
    if "enum" in prop:
        return forms.ChoiceField(choices=[(v, v) for v in prop["enum"]], initial=default, **options)
    if kind == "boolean":
        return forms.BooleanField(initial=bool(default), **{**options, "required": False})
    if kind == "integer":
        return forms.IntegerField(
            initial=default, min_value=prop.get("minimum"), max_value=prop.get("maximum"), **options
        )
    if kind == "number":
        return forms.FloatField(initial=default, **options)
    if kind == "array":
        initial = ", ".join(str(v) for v in default) if isinstance(default, list) else ""
        options["help_text"] = (options["help_text"] + " Comma-separated.").strip()
        return forms.CharField(initial=initial, **options)
    if kind == "string":
        return forms.CharField(initial=default, max_length=prop.get("maxLength"), **options)
    options["help_text"] = (options["help_text"] + " JSON.").strip()
    return forms.CharField(initial=json.dumps(default) if default is not None else "", widget=forms.Textarea, **options)


def _flatten(schema: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
    """Resolve `anyOf: [X, null]` (optional fields) and `$ref` enums to one simple property."""
    if "anyOf" in prop:
        inner = [p for p in prop["anyOf"] if p.get("type") != "null"]
        if len(inner) == 1:
            prop = {**inner[0], **{k: v for k, v in prop.items() if k != "anyOf"}}
    if "$ref" in prop:
        ref = schema.get("$defs", {}).get(prop["$ref"].rsplit("/", 1)[-1], {})
        prop = {**ref, **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


class RunActionForm(forms.Form):
    """Built per action: one field per payload property, plus the forensic toggle."""

    def __init__(self, *args: Any, spec: ActionSpec, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = spec
        schema = spec.payload_schema()
        self.schema_props = {n: _flatten(schema, p) for n, p in schema.get("properties", {}).items()}
        required = set(schema.get("required", []))
        for name, prop in self.schema_props.items():
            self.fields[name] = _field_for(name, prop, name in required)
        self.fields["forensic"] = forms.BooleanField(
            required=False,
            label="Forensic (read-only)",
            help_text="Run without changing anything; see what it would do.",
        )

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, prop in self.schema_props.items():
            value = self.cleaned_data.get(name)
            if value in (None, "") and prop.get("type") != "boolean":
                continue
            if prop.get("type") == "array":
                items = [v.strip() for v in str(value).split(",") if v.strip()]
                out[name] = [
                    int(v) if prop.get("items", {}).get("type") == "integer" and v.lstrip("-").isdigit() else v
                    for v in items
                ]
            elif prop.get("type") not in ("string", "integer", "number", "boolean") and "enum" not in prop:
                try:
                    out[name] = json.loads(value)
                except ValueError:
                    self.add_error(name, "Not valid JSON.")
            else:
                out[name] = value
        return out

    def apply_service_errors(self, exc: ValidationError) -> None:
        for field, messages in exc.message_dict.items():
            name = field.removeprefix("payload.").split(".")[0]
            self.add_error(name if name in self.fields else None, messages)


class WorkflowStartForm(forms.Form):
    workflow = forms.ChoiceField(choices=())
    forensic = forms.BooleanField(required=False, label="Forensic (read-only)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["workflow"].choices = [(n, n) for n in sorted(registry.workflows)]


class ScheduleForm(forms.Form):
    name = forms.CharField(max_length=100)
    target = forms.ChoiceField(choices=(), help_text="An action (agent.action) or a workflow.")
    payload = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), initial="{}", help_text="JSON payload for an action."
    )
    every_s = forms.IntegerField(
        required=False, min_value=10, initial=3600, label="Every (seconds)", help_text="An interval, or:"
    )
    crontab = forms.CharField(
        required=False,
        max_length=100,
        label="Crontab (UTC)",
        help_text="minute hour day-of-month month day-of-week, e.g. 0 3 * * 1-5 (leave the interval empty).",
    )
    forensic = forms.BooleanField(required=False, label="Forensic (read-only)")

    def __init__(self, *args: Any, targets: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [(t, t) for t in targets]

    @classmethod
    def initial_for(cls, schedule: Any) -> dict[str, Any]:
        return {
            "name": schedule.name,
            "target": schedule.target,
            "payload": json.dumps(schedule.payload),
            "every_s": schedule.every_s,
            "crontab": schedule.crontab,
            "forensic": schedule.forensic,
        }

    def clean_payload(self) -> Any:
        raw = self.cleaned_data.get("payload") or "{}"
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ValidationError("Not valid JSON.") from exc
        if not isinstance(value, dict):
            raise ValidationError("Must be a JSON object.")
        return value

    def spec(self) -> Any:
        from agents.schedules import ScheduleSpec

        data = self.cleaned_data
        return ScheduleSpec(
            name=data["name"],
            target=data["target"],
            payload=data["payload"],
            forensic=data["forensic"],
            every_s=data["every_s"],
            crontab=data["crontab"],
        )

    def apply_service_errors(self, exc: ValidationError) -> None:
        for field, messages in exc.message_dict.items():
            if field.startswith("payload."):
                self.add_error("payload", [f"{field.removeprefix('payload.')}: {m}" for m in messages])
            else:
                self.add_error(field if field in self.fields else None, messages)
