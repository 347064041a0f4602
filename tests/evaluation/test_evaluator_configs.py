"""Evaluator configs are edited in forms generated from their pydantic schema; runs keep what they used."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from evaluation.models import EvalRun, Evaluator
from evaluation.services import evalrun_create, evalrun_execute_batch, evaluator_update
from tests.evaluation.factories import make_dataset, make_evaluator
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db


def test_the_evaluator_form_has_one_field_per_config_property_of_the_kind(operator: Any) -> None:
    client = login(operator)
    judge = client.get(reverse("evaluation-evaluator-create"), {"kind": "llm_judge"})
    assert judge.status_code == 200
    for field in ("rubric", "model", "max_attempts", "max_tokens"):
        assert f'name="{field}"'.encode() in judge.content
    assert b'<textarea name="rubric"' in judge.content
    regex = make_evaluator("regex", pattern="^yes", full_match=True)
    edit = client.get(reverse("evaluation-evaluator-edit", args=[regex.uuid]))
    assert edit.status_code == 200 and b'value="^yes"' in edit.content
    assert re.search(rb'name="full_match"[^>]*checked', edit.content)
    schema = client.get(reverse("evaluation-evaluator-create"), {"kind": "json_schema"})
    assert b'<textarea name="schema"' in schema.content


def test_an_operator_creates_and_edits_an_evaluator_with_errors_shown_on_the_form(operator: Any) -> None:
    client = login(operator)
    new = reverse("evaluation-evaluator-create")
    bad = client.post(new, {"name": "re", "kind": "regex", "pattern": "("})
    assert bad.status_code == 422 and b"not a valid regular expression" in bad.content
    assert client.post(new, {"name": "re", "kind": "nope"}).status_code == 422
    assert client.post(new, {"name": "re", "kind": "regex", "pattern": "a", "full_match": "on"}).status_code == 302
    evaluator = Evaluator.objects.get(name="re")
    assert evaluator.config == {"pattern": "a", "full_match": True}
    edit = reverse("evaluation-evaluator-edit", args=[evaluator.uuid])
    bad = client.post(edit, {"name": "re", "pattern": ""})
    assert bad.status_code == 422 and b"field-error" in bad.content
    budget = make_evaluator("latency_budget", max_ms=100)
    bad = client.post(reverse("evaluation-evaluator-edit", args=[budget.uuid]), {"name": "lat", "max_ms": "-5"})
    assert bad.status_code == 422 and b"greater than 0" in bad.content
    assert client.post(edit, {"name": "re2", "pattern": "b"}).status_code == 302
    evaluator.refresh_from_db()
    assert (evaluator.name, evaluator.config) == ("re2", {"pattern": "b", "full_match": False})
    judge = make_evaluator("llm_judge", rubric="old")
    resp = client.post(reverse("evaluation-evaluator-edit", args=[judge.uuid]),
                       {"name": "llm_judge", "rubric": "Is it right?", "model": "auto", "max_attempts": "3",
                        "max_tokens": "200"})  # fmt: skip
    judge.refresh_from_db()
    assert resp.status_code == 302 and judge.config["rubric"] == "Is it right?" and judge.config["max_attempts"] == 3


def test_a_viewer_may_not_edit_an_evaluator() -> None:
    evaluator = make_evaluator("regex", pattern="a")
    client = login(make_user("viewer"))
    assert client.get(reverse("evaluation-evaluator-edit", args=[evaluator.uuid])).status_code == 403
    assert client.post(reverse("evaluation-evaluator-edit", args=[evaluator.uuid]), {"pattern": "b"}).status_code == 403


def test_editing_an_evaluator_never_changes_what_a_run_used(
    operator: Any, django_capture_on_commit_callbacks: Any
) -> None:
    dataset = make_dataset([("yes", None), ("no", None)])
    evaluator = make_evaluator("regex", name="says-yes", pattern="^yes$")
    with django_capture_on_commit_callbacks(execute=False):
        run = evalrun_create(dataset=dataset, target="echo", evaluators=[evaluator], user=operator)
    evaluator_update(evaluator=evaluator, name="says-no", config={"pattern": "^no$"}, user=operator)
    with django_capture_on_commit_callbacks(execute=False):
        assert evalrun_execute_batch(run_id=run.pk) == "succeeded"
    run = EvalRun.objects.get(pk=run.pk)
    scores = {r.item.input: r.scores["says-yes"]["value"] for r in run.results.select_related("item")}
    assert scores == {"yes": 1.0, "no": 0.0}  # the pattern the run started with
    assert run.evaluator_names == ["says-yes"]
    page = login(operator).get(reverse("evaluation-run-detail", args=[run.uuid]))
    assert b"says-yes" in page.content and b"^yes$" in page.content and b"says-no" not in page.content
