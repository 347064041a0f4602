from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from evaluation.models import Dataset, EvalResult, EvalRun
from evaluation.selectors import get_dataset_for_user
from evaluation.services import dataset_item_delete, dataset_item_update, dataset_upload
from tests.evaluation.factories import make_dataset
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db


def test_a_jsonl_upload_creates_a_dataset_with_its_items(operator: Any) -> None:
    data = b'{"input": "2+2?", "expected": "4"}\n\n{"input": {"messages": []}, "metadata": {"src": "x"}}\n'
    dataset = dataset_upload(name="math", filename="math.jsonl", data=data, user=operator)
    items = list(dataset.items.values_list("input", "expected", "metadata"))
    assert items == [("2+2?", "4", {}), ({"messages": []}, None, {"src": "x"})]


def test_a_csv_upload_puts_extra_columns_in_the_metadata(operator: Any) -> None:
    data = b'input,expected,metadata,topic\nCapital of France?,Paris,"{""lang"": ""en""}",geo\n'
    dataset = dataset_upload(name="geo", filename="geo.csv", data=data, user=operator)
    item = dataset.items.get()
    assert (item.input, item.expected, item.metadata) == ("Capital of France?", "Paris", {"lang": "en", "topic": "geo"})


def test_an_upload_with_bad_lines_names_each_line_and_writes_nothing(operator: Any) -> None:
    data = b'{"input": "ok"}\nnot json\n{"expected": "x"}\n{"input": "a", "metadata": []}\n{"input": "b", "z": 1}\n'
    with pytest.raises(ValidationError) as err:
        dataset_upload(name="bad", filename="bad.jsonl", data=data, user=operator)
    messages = err.value.message_dict["file"]
    assert [m.split(":")[0] for m in messages] == ["line 2", "line 3", "line 4", "line 5"]
    assert "not a JSON object" in messages[0] and "input" in messages[1]
    assert not Dataset.objects.exists()


def test_a_csv_upload_without_an_input_column_is_refused(operator: Any) -> None:
    with pytest.raises(ValidationError, match="input"):
        dataset_upload(name="x", filename="x.csv", data=b"question,answer\na,b\n", user=operator)
    with pytest.raises(ValidationError, match="metadata must be a JSON object"):
        dataset_upload(name="x", filename="x.csv", data=b"input,metadata\na,[1]\n", user=operator)


def test_an_upload_of_another_file_type_or_an_empty_file_is_refused(operator: Any) -> None:
    with pytest.raises(ValidationError, match=r"\.csv or \.jsonl"):
        dataset_upload(name="x", filename="x.xlsx", data=b"input\n", user=operator)
    with pytest.raises(ValidationError, match="no items"):
        dataset_upload(name="x", filename="x.jsonl", data=b"\n", user=operator)


# --- datasets by hand -----------------------------------------------------------------------------------


def test_an_operator_creates_an_empty_dataset_and_adds_edits_and_deletes_items_on_its_page(operator: Any) -> None:
    client = login(operator)
    assert client.post(reverse("evaluation-dataset-create"), {"name": ""}).status_code == 422
    resp = client.post(reverse("evaluation-dataset-create"), {"name": "by hand", "description": "typed in"})
    dataset = Dataset.objects.get(name="by hand")
    assert resp.status_code == 302 and resp["Location"] == reverse("evaluation-dataset-detail", args=[dataset.uuid])
    add = reverse("evaluation-dataset-item-add", args=[dataset.uuid])
    bad = client.post(add, {"input": "", "metadata": "[1]"})
    assert bad.status_code == 422 and b"input" in bad.content and not dataset.items.exists()
    assert client.post(add, {"input": "What is 2+2?", "expected": "4"}).status_code == 302
    assert client.post(add, {"input": '{"host": "db1"}', "metadata": '{"tag": "json"}'}).status_code == 302
    text, structured = dataset.items.order_by("id")
    assert (text.input, text.expected, structured.input, structured.metadata) == (
        "What is 2+2?", "4", {"host": "db1"}, {"tag": "json"}
    )  # fmt: skip
    edit = reverse("evaluation-dataset-item-edit", args=[text.uuid])
    assert client.get(edit).status_code == 200
    assert client.post(edit, {"input": "What is 3+3?", "expected": "6"}).status_code == 302
    text.refresh_from_db()
    assert (text.input, text.expected) == ("What is 3+3?", "6")
    assert client.post(reverse("evaluation-dataset-item-delete", args=[structured.uuid])).status_code == 302
    assert list(dataset.items.values_list("input", flat=True)) == ["What is 3+3?"]
    page = client.get(reverse("evaluation-dataset-detail", args=[dataset.uuid]))
    assert b"What is 3+3?" in page.content and b'id="item-form"' in page.content


def test_a_viewer_reads_a_dataset_but_may_not_change_it(viewer: Any) -> None:
    dataset = make_dataset([("a", "a")])
    item = dataset.items.get()
    client = login(viewer)
    page = client.get(reverse("evaluation-dataset-detail", args=[dataset.uuid]))
    assert page.status_code == 200 and b'id="item-form"' not in page.content
    assert client.post(reverse("evaluation-dataset-create"), {"name": "x"}).status_code == 403
    assert client.post(reverse("evaluation-dataset-item-add", args=[dataset.uuid]), {"input": "b"}).status_code == 403
    assert client.post(reverse("evaluation-dataset-item-delete", args=[item.uuid])).status_code == 403


def test_the_api_creates_a_dataset_and_manages_its_items_naming_bad_fields(operator: Any) -> None:
    client = login(operator)

    def call(method: str, url: str, body: Any = None) -> Any:
        return getattr(client, method)(url, data=json.dumps(body), content_type="application/json")

    assert call("post", "/api/evaluation/datasets", {"name": ""}).status_code == 422
    created = call("post", "/api/evaluation/datasets", {"name": "api", "description": "d"})
    assert created.status_code == 201
    dataset_id = created.json()["id"]
    assert call("post", "/api/evaluation/datasets", {"name": "api"}).status_code == 422  # the name is taken
    items = f"/api/evaluation/datasets/{dataset_id}/items"
    bad = call("post", items, {"input": None})
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "input"
    bad = call("post", items, {"input": "q", "metadata": [1]})
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "metadata"
    item = call("post", items, {"input": {"messages": [{"role": "user", "content": "hi"}]}, "expected": "hello"})
    assert item.status_code == 201 and item.json()["expected"] == "hello"
    item_url = f"/api/evaluation/dataset-items/{item.json()['id']}"
    changed = call("put", item_url, {"input": "hi", "expected": "hey", "metadata": {"k": 1}})
    assert changed.status_code == 200 and changed.json()["input"] == "hi"
    assert client.get(items).json()["items"][0]["expected"] == "hey"
    assert client.delete(item_url).status_code == 204
    assert client.get(items).json() == {"items": [], "next": None}
    assert client.delete(item_url).status_code == 404
    viewer = login(make_user("viewer"))
    assert viewer.post(items, data='{"input": "x"}', content_type="application/json").status_code == 403


def test_an_item_a_run_has_scored_is_retired_not_rewritten_so_past_results_keep_their_input(operator: Any) -> None:
    dataset = make_dataset([("old question", "old answer")])
    item = dataset.items.get()
    run = EvalRun.objects.create(dataset=dataset, target="echo", items_total=1, status="succeeded")
    EvalResult.objects.create(run=run, item=item, output="old question")
    new = dataset_item_update(item=item, input="new question", expected="new answer", metadata={}, user=operator)
    item.refresh_from_db()
    assert new.pk != item.pk and item.retired_at is not None and item.input == "old question"
    assert [i.input for i in dataset.items.active()] == ["new question"]
    dataset_item_delete(item=new, user=operator)  # never used: really deleted
    assert not dataset.items.active().exists() and dataset.items.count() == 1
    assert get_dataset_for_user(operator, dataset.uuid).item_count == 0
