"""An annotator works a queue in the browser with the keyboard alone (run with `pytest -m browser`)."""

from __future__ import annotations

from typing import Any

import pytest

from evaluation.models import Annotation
from tests.browser.conftest import log_in
from tests.evaluation.factories import make_queue
from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_annotator_skips_one_item_and_works_three_with_the_keyboard_alone(
    browser: Any,
    live_server_url: str,
) -> None:
    queue = make_queue(items=4)
    make_user("annotator", username="anna")
    page = log_in(browser, live_server_url, "anna", PASSWORD)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"/evaluation/queues/{queue.uuid}/")
    page.locator("#start-annotating").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/evaluation/items/*/")
    page.keyboard.press("s")  # skip the first item
    for n in range(3):
        page.wait_for_selector(f"#review-content >> text=q{n + 1}")
        # quality 4 (numeric: the number itself), tone "polite" (option 1), correct "yes" (option 1); submit.
        for key in ("4", "1", "1", "Enter"):
            page.keyboard.press(key)
    page.wait_for_url(f"**/evaluation/queues/{queue.uuid}/")
    reviews = Annotation.objects.filter(skipped=False).order_by("item_id")
    assert [a.scores for a in reviews] == [{"quality": 4.0, "tone": "polite", "correct": True}] * 3
    assert Annotation.objects.filter(skipped=True).count() == 1
    assert errors == []
