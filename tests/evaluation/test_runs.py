from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from aios_core.errors import ConflictError
from evaluation.models import EvalRun
from evaluation.services import evalrun_cancel, evalrun_create
from tests.evaluation.factories import make_dataset, make_evaluator
from tests.factories import make_user
from tests.seeds import ensure_seed_data


def _wait_finished(run: EvalRun, timeout_s: float = 60) -> EvalRun:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_finished:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run still {run.status} after {timeout_s}s")


@pytest.mark.django_db(transaction=True)
def test_an_echo_run_goes_through_a_real_worker_in_batches(celery_worker: Any, settings: Any) -> None:
    # The worker reads its own settings: 200 items per batch there; 450 items make three batches.
    items = [(f"answer {n}", f"answer {n}" if n % 3 else "other") for n in range(450)]
    dataset = make_dataset(items)
    evaluators = [make_evaluator("exact_match"), make_evaluator("regex", pattern=r"\d+$")]
    run = _wait_finished(evalrun_create(dataset=dataset, target="echo", evaluators=evaluators,
                                        user=make_user("operator")))  # fmt: skip
    assert (run.status, run.items_done, run.items_failed) == ("succeeded", 450, 0)
    results = list(run.results.all())
    assert len(results) == 450
    exact = [r.scores["exact_match"]["value"] for r in results]
    assert exact.count(0.0) == 150 and exact.count(1.0) == 300
    assert all(r.scores["regex"]["value"] == 1.0 and r.latency_ms is not None for r in results)


@pytest.mark.django_db(transaction=True)
def test_a_model_run_with_a_judge_records_unparseable_verdicts_as_errors(celery_worker: Any) -> None:
    ensure_seed_data()  # transactional tests truncate the seeded model catalog
    dataset = make_dataset([("What is 2+2?", "4"), ("Capital of France?", "Paris")], name="judge")
    judge = make_evaluator("llm_judge", rubric="Is the answer right?", model="sim/simple", max_attempts=2)
    run = _wait_finished(evalrun_create(dataset=dataset, target="sim/simple",
                                        evaluators=[judge, make_evaluator("contains")], user=None))  # fmt: skip
    assert (run.status, run.items_done) == ("succeeded", 2)
    for result in run.results.all():
        assert result.error == "" and result.output.startswith("[simulated") and result.trace_id, result.error
        # The simulator answers prose, never JSON: both attempts fail to parse.
        assert result.scores["llm_judge"]["value"] is None
        assert "after 2 attempts" in result.scores["llm_judge"]["error"]
        assert result.scores["contains"]["value"] in (0.0, 1.0)


@pytest.mark.django_db
def test_cancelling_a_queued_run_stops_it_and_a_finished_run_cannot_be_cancelled(
    django_capture_on_commit_callbacks: Any,
) -> None:
    operator = make_user("operator")
    dataset = make_dataset([("a", "a")])
    with django_capture_on_commit_callbacks(execute=False):
        run = evalrun_create(dataset=dataset, target="echo", evaluators=[make_evaluator()], user=operator)
    run = evalrun_cancel(run=run, user=operator)
    assert (run.status, run.cancel_requested) == ("cancelled", True)
    with pytest.raises(ConflictError):
        evalrun_cancel(run=run, user=operator)


@pytest.mark.django_db
def test_a_run_needs_a_known_target_and_an_evaluator() -> None:
    dataset = make_dataset([("a", "a")])
    with pytest.raises(ValidationError, match="Unknown model"):
        evalrun_create(dataset=dataset, target="nope/model", evaluators=[make_evaluator()], user=None)
    with pytest.raises(ValidationError, match="evaluator"):
        evalrun_create(dataset=dataset, target="echo", evaluators=[], user=None)


@pytest.mark.django_db
def test_an_agent_action_target_runs_each_item_in_forensic_mode_and_records_bad_payloads_as_item_errors(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from evaluation.services import evalrun_execute_batch

    operator = make_user("operator")
    dataset = make_dataset(
        [({"keys": ["kernel.hostname"]}, None), ('{"keys": ["kernel.ostype"]}', None), ({"keys": []}, None),
         ("read the hostname", None)],
        name="sysctl",
    )  # fmt: skip
    evaluator = make_evaluator("contains", substring="parameter(s) read")
    with django_capture_on_commit_callbacks(execute=False):
        run = evalrun_create(dataset=dataset, target="agent:kernel.sysctl_read", evaluators=[evaluator], user=operator)
        assert evalrun_execute_batch(run_id=run.pk) == "succeeded"
    run.refresh_from_db()
    assert (run.items_done, run.items_failed) == (4, 2)
    results = list(run.results.order_by("item_id"))
    for result in results[:2]:
        assert result.error == "" and result.output["success"] is True, result.error
        assert result.scores["contains"]["value"] == 1.0 and result.trace_id is not None
    assert result.output["metadata"]["planned_changes"] == []  # forensic: a plan, never a change
    assert "payload.keys" in results[2].error and not results[2].scores
    assert "not a JSON object" in results[3].error


@pytest.mark.django_db
def test_an_agent_target_is_checked_when_the_run_is_created() -> None:
    dataset, evaluator, operator = make_dataset([("{}", None)]), make_evaluator(), make_user("operator")
    for target, message in (("agent:kernel.nope", "no action"), ("agent:nobody.info", "no agent"),
                            ("agent:kernel", "agent:<agent>.<action>"), ("agent:chaos.flaky", "no agent")):  # fmt: skip
        with pytest.raises(ValidationError, match=message) as caught:
            evalrun_create(dataset=dataset, target=target, evaluators=[evaluator], user=operator)
        assert set(caught.value.message_dict) == {"target"}
