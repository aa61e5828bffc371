"""The sans-IO request reader every endpoint reads through: the size limit, the
early 413, and the ways an adapter may hand it a request."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from skyhooks.core.wire import RequestReader, Response, ok_response

LIMIT = 10


class Handler:
    """Records what reaches the registry's verdict."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], bytes]] = []

    def __call__(self, method: str, headers: Mapping[str, str], body: bytes) -> Response:
        self.seen.append((method, dict(headers), body))
        return ok_response(1)


HEADERS = {
    "content-type": "application/json",
    "webhook-id": "msg_1",
    "webhook-timestamp": "1",
    "webhook-signature": "v1,x",
}


def reader(handler: Handler, headers: dict[str, str], *, as_getter: bool = True) -> RequestReader:
    return RequestReader(handler, LIMIT, "POST", headers.get if as_getter else headers)


@pytest.mark.parametrize("as_getter", [True, False], ids=["getter", "dict"])
def test_a_declared_length_over_the_limit_is_refused_before_the_body(as_getter: bool) -> None:
    handler = Handler()
    read = reader(handler, {**HEADERS, "content-length": str(LIMIT + 1)}, as_getter=as_getter)
    assert read.refusal is not None and read.refusal.status == 413 and read.refusal.close
    assert read.feed(b"x" * 5) is None and read.finish(b"more") is None  # answered already
    assert handler.seen == []


@pytest.mark.parametrize("as_getter", [True, False], ids=["getter", "dict"])
def test_a_whole_body_may_come_to_finish_alone(as_getter: bool) -> None:
    handler = Handler()
    read = reader(handler, {**HEADERS, "content-length": "4"}, as_getter=as_getter)
    assert read.refusal is None and read.declared == 4
    response = read.finish(b"body")
    assert response is not None and response.status == 200
    ((method, headers, body),) = handler.seen
    assert (method, body) == ("POST", b"body")
    assert {name: headers[name] for name in HEADERS} == HEADERS
    assert read.finish(b"again") is None  # one answer per request


def test_chunks_then_a_last_piece_make_one_body() -> None:
    handler = Handler()
    read = reader(handler, HEADERS)
    assert read.feed(b"ab") is None and read.feed(b"") is None and read.feed(b"cd") is None
    assert read.finish(b"ef") is not None
    assert handler.seen[0][2] == b"abcdef"


@pytest.mark.parametrize(
    "pieces",
    [[], [b"x" * 6]],
    ids=["alone", "after chunks"],
)
def test_a_body_over_the_limit_is_refused_however_it_comes(pieces: list[bytes]) -> None:
    handler = Handler()
    read = reader(handler, HEADERS)  # no content-length: measured as it arrives
    for piece in pieces:
        assert read.feed(piece) is None
    refusal = read.finish(b"y" * (LIMIT + 1 - sum(map(len, pieces))))
    assert refusal is not None and refusal.status == 413 and refusal.close
    assert handler.seen == [] and read.finish() is None


def test_a_body_over_the_limit_mid_stream_is_refused_at_once_and_the_rest_dropped() -> None:
    handler = Handler()
    read = reader(handler, HEADERS)
    assert read.feed(b"x" * LIMIT) is None
    refusal = read.feed(b"x")
    assert refusal is not None and refusal.status == 413
    assert read.feed(b"more") is None and read.finish() is None and handler.seen == []


@pytest.mark.parametrize("value", ["abc", "-1", "", " 12 x"])
def test_a_malformed_content_length_is_ignored_and_the_body_measured(value: str) -> None:
    read = reader(Handler(), {**HEADERS, "content-length": value})
    assert read.declared is None and read.refusal is None
    assert read.read_limit == LIMIT + 1


def test_a_bug_behind_the_reader_is_a_json_500_never_a_traceback() -> None:
    def broken(method: str, headers: Mapping[str, str], body: bytes) -> Response:
        raise RuntimeError("a bug")

    response = RequestReader(broken, LIMIT, "POST", HEADERS.get).finish(b"{}")
    assert response is not None and response.status == 500
    assert json.loads(response.body)["status"] == "error" and b"a bug" not in response.body
