from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from aios_core.errors import ConflictError
from evaluation.models import AnnotationItem
from evaluation.services import ItemToAdd, annotation_items_add, annotation_next, annotation_skip, annotation_submit
from tests.evaluation.factories import GOOD_REVIEW, make_queue
from tests.factories import make_user


@pytest.mark.django_db(transaction=True)
def test_concurrent_next_item_claims_never_return_the_same_item() -> None:
    queue = make_queue(items=40)
    annotators = [make_user("annotator") for _ in range(2)]
    claimed: dict[int, list[int]] = {a.pk: [] for a in annotators}
    barrier = threading.Barrier(2)

    def work(user: Any) -> None:
        try:
            barrier.wait()
            for _ in range(20):
                item = annotation_next(queue=queue, user=user)
                assert item is not None
                claimed[user.pk].append(item.pk)
                annotation_submit(item=item, user=user, scores=GOOD_REVIEW)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(a,)) for a in annotators]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first, second = (claimed[a.pk] for a in annotators)
    assert len(first) == len(second) == 20
    assert not set(first) & set(second)
    assert AnnotationItem.objects.filter(status="done").count() == 40


@pytest.mark.django_db
def test_next_item_returns_the_annotators_own_claim_until_it_is_submitted() -> None:
    queue, ann, other = make_queue(items=2), make_user("annotator"), make_user("annotator")
    item = annotation_next(queue=queue, user=ann)
    assert annotation_next(queue=queue, user=ann) == item
    assert annotation_next(queue=queue, user=other) != item


@pytest.mark.django_db
def test_an_expired_lock_lets_another_annotator_claim_the_item_and_refuses_the_late_submit() -> None:
    queue, slow, fast = make_queue(items=1), make_user("annotator"), make_user("annotator")
    item = annotation_next(queue=queue, user=slow)
    assert annotation_next(queue=queue, user=fast) is None  # locked
    AnnotationItem.objects.filter(pk=item.pk).update(lock_expires_at=timezone.now() - timedelta(seconds=1))
    assert annotation_next(queue=queue, user=fast) == item
    item.refresh_from_db()
    assert item.locked_by == fast and item.lock_expires_at > timezone.now()
    with pytest.raises(ConflictError):
        annotation_submit(item=item, user=slow, scores=GOOD_REVIEW)
    annotation_submit(item=item, user=fast, scores=GOOD_REVIEW)


@pytest.mark.django_db
def test_an_item_is_done_only_after_its_number_of_reviewers_and_never_twice_by_one_person() -> None:
    queue = make_queue(items=1, reviewers=2)
    first, second = make_user("annotator"), make_user("annotator")
    item = annotation_next(queue=queue, user=first)
    annotation_submit(item=item, user=first, scores=GOOD_REVIEW, comment="fine")
    item.refresh_from_db()
    assert (item.status, item.reviews_done, item.locked_by) == ("pending", 1, None)
    assert annotation_next(queue=queue, user=first) is None
    assert annotation_next(queue=queue, user=second) == item
    annotation_submit(item=item, user=second, scores=GOOD_REVIEW)
    item.refresh_from_db()
    assert (item.status, item.reviews_done) == ("done", 2)
    assert annotation_next(queue=queue, user=second) is None


@pytest.mark.django_db
def test_a_skipped_item_goes_to_someone_else() -> None:
    queue, ann, other = make_queue(items=1), make_user("annotator"), make_user("annotator")
    item = annotation_next(queue=queue, user=ann)
    annotation_skip(item=item, user=ann)
    assert annotation_next(queue=queue, user=ann) is None
    assert annotation_next(queue=queue, user=other) == item


@pytest.mark.django_db
def test_a_review_must_fill_every_score_within_its_config() -> None:
    queue, ann = make_queue(items=1), make_user("annotator")
    item = annotation_next(queue=queue, user=ann)
    with pytest.raises(ValidationError) as err:
        annotation_submit(item=item, user=ann, scores={"quality": 9, "tone": "meh"})
    assert set(err.value.message_dict) == {"quality", "tone", "correct"}


@pytest.mark.django_db
def test_a_queue_holds_one_item_per_object() -> None:
    queue = make_queue(items=0)
    span = ItemToAdd(content={"input": "x"}, trace_id=__import__("uuid").uuid4(), span_id=42)
    assert annotation_items_add(queue=queue, items=[span]) == 1
    assert annotation_items_add(queue=queue, items=[span]) == 0


@pytest.mark.django_db
def test_an_expired_claim_nobody_took_over_can_still_be_submitted() -> None:
    queue, slow = make_queue(items=1), make_user("annotator")
    item = annotation_next(queue=queue, user=slow)
    AnnotationItem.objects.filter(pk=item.pk).update(lock_expires_at=timezone.now() - timedelta(seconds=1))
    annotation_submit(item=item, user=slow, scores=GOOD_REVIEW)
    item.refresh_from_db()
    assert item.status == "done"
