from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from evaluation.models import ABObservation, ABTest
from tests.browser.conftest import log_in
from tests.evaluation.factories import make_effect_dataset, make_evaluator
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)

TRACES = "(document.getElementById('abtest-chart').data || []).map((t) => t.y.length)"


def _observe(test: ABTest, a: list[float], b: list[float], start: int = 0) -> None:
    now = timezone.now()
    ABObservation.objects.bulk_create(
        [ABObservation(test=test, variant=arm, seq=start + i + 1, value=v, source="eval_run", observed_at=now)
         for arm, values in enumerate((a, b)) for i, v in enumerate(values)]
    )  # fmt: skip


def test_an_operator_sizes_creates_and_watches_an_ab_test(
    browser: Any, live_server_url: str, artifacts_dir: Path
) -> None:
    make_user("operator", username="olga")
    make_evaluator("contains")
    dataset = make_effect_dataset(120)
    page = log_in(browser, live_server_url, "olga", PASSWORD)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto("/evaluation/")
    page.click("#eval-abtests-link a")
    page.click("#new-abtest")
    page.fill("#id_name", "prefix the question")
    page.select_option("#id_scope", "eval_run")
    page.select_option("#id_dataset", str(dataset.uuid))
    page.select_option("#id_evaluator", "contains")
    page.fill("#id_minimum_detectable_effect", "0.2")
    page.fill("#id_baseline_rate", "0.5")
    page.fill("#id_a_model", "echo")
    page.fill("#id_b_model", "echo")
    page.fill("#id_b_template", "Q: {input}")
    page.click("#abtest-preview-button")
    assert "93" in page.locator("#abtest-preview").inner_text()
    page.click("button.btn-primary[type=submit]")
    page.wait_for_selector("#abtest-sample-size")
    test = ABTest.objects.get()
    assert page.locator("#abtest-status").inner_text() == "draft"

    ABTest.objects.filter(pk=test.pk).update(status="running")  # observations arrive as a batch would store them
    page.reload()
    page.wait_for_selector("#abtest-chart.chart-empty")
    page.evaluate("window.__marker = 'no reload'")
    _observe(test, [0.0, 1.0] * 10, [1.0] * 20)  # look 1 (20 per arm): B far ahead, 50% against 100%
    page.wait_for_function(f"{TRACES}.join() === '20,20'", timeout=15_000)  # the partial refreshes every 5 s
    # Look 1 of an O'Brien-Fleming plan needs p < 2e-6: a big early lead is not yet a verdict.
    assert page.locator("[data-field=verdict]").inner_text().startswith("Keep collecting: at look 1 of 5")
    _observe(test, [0.0, 1.0] * 10, [1.0] * 20, start=20)
    page.wait_for_function("document.querySelector('[data-field=verdict]').innerText.includes('Ship B.')",
                           timeout=15_000)  # fmt: skip
    assert "2 of 5" in page.locator("[data-field=look]").inner_text()
    assert page.evaluate("window.__marker") == "no reload"
    page.screenshot(path=str(artifacts_dir / "abtest-detail.png"), full_page=True)
    assert errors == []
