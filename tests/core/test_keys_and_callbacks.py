from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyhooks import InvalidKeysError, StoreError, Topic
from skyhooks.core import CallbackTable, topics_of, validate_keys
from skyhooks.core.keys import checked_topics


def test_topics_compare_values_as_strings():
    assert topics_of({"account_id": 42}) == topics_of({"account_id": "42"}) == {Topic("account_id", "42")}
    assert topics_of({"account_id": 42, "user_id": "7"}) == {Topic("account_id", "42"), Topic("user_id", "7")}


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({}, "at least one key"),
        ([("a", 1)], "must be a mapping"),
        ({"": 1}, "key name ''"),
        ({"has space": 1}, "key name 'has space'"),
        ({"x" * 65: 1}, "is invalid"),
        ({"ok": True}, "key 'ok' has a bool value"),
        ({"ok": 1.5}, "key 'ok' has a float value"),
        ({"ok": None}, "key 'ok' has a NoneType value"),
        ({"ok": [1]}, "key 'ok' has a list value"),
        ({"ok": "v" * 257}, "longer than 256"),
        ({"ok": 10**300}, "longer than 256"),
        ({f"k{i}": i for i in range(65)}, "at most 64 keys"),
    ],
)
def test_bad_keys_say_which_key_and_why(keys, message):
    with pytest.raises(InvalidKeysError, match=message):
        validate_keys(keys)
    assert issubclass(InvalidKeysError, ValueError)


def test_allowed_characters():
    assert validate_keys({"A-z_0.9:x": "anything at all, even spaces"})
    assert validate_keys({"n": "v" * 256, "m": -5})


@given(
    st.dictionaries(
        st.text(max_size=70),
        st.one_of(st.integers(), st.text(max_size=300), st.booleans(), st.none(), st.floats()),
        max_size=70,
    )
)
def test_validation_either_accepts_or_raises_invalid_keys(keys):
    try:
        topics = topics_of(keys)
    except InvalidKeysError:
        return
    assert len(topics) == len(keys) > 0


def test_callback_table_live_and_dead_topics():
    table = CallbackTable()
    t42, t7 = Topic("a", "42"), Topic("a", "7")

    def one(message): ...

    def two(message): ...

    assert table.add({t42, t7}, one) in ([t42, t7], [t7, t42])
    assert table.add({t42}, two) == []
    assert table.remove({t42}, one) == []  # two still listens
    assert table.remove({t42}, two) == [t42]
    assert table.remove({t42}, two) == []  # not registered: a no-op
    assert table.topics() == {t7}
    assert table.remove({t7}, one) == [t7]
    assert len(table) == 0


def test_each_callback_once_per_message_in_registration_order():
    table = CallbackTable()
    t1, t2 = Topic("a", "1"), Topic("b", "2")

    def first(message): ...

    def second(message): ...

    table.add({t1, t2}, first)
    table.add({t2}, second)
    assert table.match([t1, t2]) == [first, second]
    assert table.match([Topic("c", "3")]) == []


def test_registering_twice_needs_two_unregisters():
    table = CallbackTable()
    topic = Topic("a", "1")

    def cb(message): ...

    table.add({topic}, cb)
    table.add({topic}, cb)
    assert table.remove({topic}, cb) == []
    assert table.match({topic}) == [cb]
    assert table.remove({topic}, cb) == [topic]


def test_lone_surrogates_are_refused():
    """Regression: a str that is not encodable text poisoned every store write of its instance."""
    with pytest.raises(InvalidKeysError, match="not valid Unicode"):
        validate_keys({"account_id": "\ud800"})
    assert validate_keys({"account_id": "café ☕"})


def test_remembered_one_key_answers_never_admit_what_validation_refuses():
    # A remembered {"ok": 1} must not let True (== 1, same hash) or 1.0 through.
    assert checked_topics({"ok": 1}) == ({"ok": 1}, frozenset({Topic("ok", "1")}))
    assert checked_topics({"ok": 1})[1] == topics_of({"ok": "1"})  # the remembered answer
    for value in (True, 1.0):
        with pytest.raises(InvalidKeysError):
            checked_topics({"ok": value})


def test_remembered_answers_match_validation_for_any_keys():
    class Name(str):
        pass

    for keys in ({"a": "x"}, {"a": "x"}, {Name("a"): Name("x")}, {"a": 7, "b": "7"}):
        checked, topics = checked_topics(keys)
        assert checked == validate_keys(keys) and topics == topics_of(keys)


def test_topic_is_a_hashable_ordered_value():
    topic = Topic("account_id", "42")
    assert str(topic) == "account_id=42" and topic.name == "account_id" and topic.value == "42"
    assert sorted([Topic("b", "1"), Topic("a", "2"), Topic("a", "1")])[0] == Topic("a", "1")
    assert {topic: 1}[Topic("account_id", "42")] == 1
    with pytest.raises(AttributeError):
        topic.name = "other"  # type: ignore[misc]


def test_a_backlog_groups_what_queues_while_drains_run():
    from concurrent.futures import Future

    from skyhooks.core.delivery import Backlog
    from skyhooks.core.values import DeliveryReport
    from skyhooks.core.wire import Signer

    drains: list[Callable[[], None]] = []
    groups: list[list[str]] = []

    def deliver(messages: list[Any]) -> list[DeliveryReport]:
        groups.append([m.id for m in messages])
        if any(str(topic) == "fail=1" for m in messages for topic in m.topics):
            raise StoreError("store down")
        return [DeliveryReport(message_id=m.id) for m in messages]

    backlog = Backlog(drains.append, deliver, most=1, size=3)
    signer = Signer("whsec_" + "A" * 43 + "=")
    messages = [signer.encode({"a": i}, i) for i in range(5)]
    futures: list[Future[DeliveryReport]] = [backlog.put(messages[0])]
    assert len(drains) == 1  # nobody drained: this put started one
    futures += [backlog.put(m) for m in messages[1:4]]
    assert len(drains) == 1 and len(backlog) == 4  # one drain at most: the others wait for it
    futures[2].cancel()  # cancelled while queued: never sent
    drains.pop()()
    assert groups == [[messages[0].id, messages[1].id], [messages[3].id]] and len(backlog) == 0
    assert [f.result().message_id for f in futures if not f.cancelled()] == [m.id for m in messages[:2]] + [
        messages[3].id
    ]
    failing = backlog.put(signer.encode({"fail": 1}, None))  # the drain ended: this put starts one
    drains.pop()()
    assert isinstance(failing.exception(), StoreError)  # a store error reaches each submitter

    def shut(drain: Callable[[], None]) -> None:
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    exiting = Backlog(shut, deliver)
    assert exiting.put(messages[4]).result().message_id == messages[4].id  # drained by the caller
