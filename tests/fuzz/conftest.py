from tests.reliability.conftest import measure  # noqa: F401 - the JSON-lines report fixture
