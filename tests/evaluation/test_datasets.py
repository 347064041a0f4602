from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from evaluation.models import Dataset
from evaluation.services import dataset_upload

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
