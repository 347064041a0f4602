import pytest

from tests.observability.helpers import clean_slate


@pytest.fixture(autouse=True)
def _empty_span_tables(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("django_db"):
        request.getfixturevalue("django_db_blocker")
        clean_slate()
