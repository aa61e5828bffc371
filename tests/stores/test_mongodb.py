"""What only the MongoDB store promises: its indexes, created once and idempotently."""

from __future__ import annotations

import pytest

from skyhooks import Topic, open_store


@pytest.fixture
def only_mongodb(request):
    names = request.config.getoption("--store")
    if names and "mongodb" not in names:
        pytest.skip("MongoDB-specific tests run in the mongodb store session")


pytestmark = pytest.mark.usefixtures("only_mongodb")


def test_indexes(mongodb_url):
    store = open_store(mongodb_url)
    store.add("http://127.0.0.1:1/h", {Topic("a", "1")}, ttl=10)
    info = store.collection.index_information()
    assert info["topic_url"]["key"] == [("name", 1), ("value", 1), ("url", 1)]
    assert info["topic_url"]["unique"] is True
    assert info["url"]["key"] == [("url", 1)]
    assert info["expires_at_ttl"]["expireAfterSeconds"] == 0
    # a second store on the same collection re-creates nothing and breaks nothing
    again = open_store(mongodb_url)
    again.add("http://127.0.0.1:2/h", {Topic("a", "1")}, ttl=10)
    assert again.collection.index_information().keys() == info.keys()
    assert len(again.lookup({Topic("a", "1")})) == 2
    store.close()
    again.close()


def test_one_document_per_subscription(mongodb_url):
    store = open_store(mongodb_url)
    store.add("http://127.0.0.1:1/h", {Topic("a", "1"), Topic("b", "2")}, ttl=10)
    store.add("http://127.0.0.1:1/h", {Topic("a", "1")}, ttl=10)
    docs = list(store.collection.find({}, {"_id": 0}))
    assert sorted((d["name"], d["value"], d["url"]) for d in docs) == [
        ("a", "1", "http://127.0.0.1:1/h"),
        ("b", "2", "http://127.0.0.1:1/h"),
    ]
    store.close()
