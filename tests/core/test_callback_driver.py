"""The callback-style flow driver (``CallbackRun``) and ``FlatCalls``, with a tiny
promise of our own: what Twisted's Deferreds get, without Twisted."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest

from skyhooks.core.delivery import CallbackRun, FlatCalls


class Promise:
    """Settles later, when the test says so; ``then`` registers the one listener."""

    def __init__(self) -> None:
        self.listener: Callable[[Any, BaseException | None], None] | None = None
        self.outcome: tuple[Any, BaseException | None] | None = None

    def then(self, listener: Callable[[Any, BaseException | None], None]) -> None:
        self.listener = listener
        if self.outcome is not None:
            listener(*self.outcome)

    def settle(self, value: Any = None, error: BaseException | None = None) -> None:
        self.outcome = (value, error)
        if self.listener is not None:
            self.listener(value, error)


def drive(
    flow: Generator[Any, Any, Any], perform: Callable[[Any], Any]
) -> tuple[CallbackRun[Any], list[Any]]:
    ended: list[Any] = []
    run: CallbackRun[Any] = CallbackRun(
        flow, perform, Promise, lambda p, settle: p.then(settle), lambda v, e: ended.append((v, e))
    )
    run.start()
    return run, ended


def adder(n: int) -> Generator[Any, Any, int]:
    total = 0
    for i in range(n):
        total += yield i
    return total


def test_values_and_promises_settled_already_go_straight_back_in() -> None:
    def perform(effect: int) -> Any:
        if effect % 2:
            done = Promise()
            done.settle(effect * 10)
            return done
        return effect * 10

    # Deep enough that a recursive driver would overflow the stack.
    _, ended = drive(adder(5000), perform)
    assert ended == [(sum(i * 10 for i in range(5000)), None)]


def test_a_pending_promise_resumes_the_flow_when_it_settles() -> None:
    promises: list[Promise] = []

    def perform(effect: int) -> Promise:
        promises.append(Promise())
        return promises[-1]

    _, ended = drive(adder(3), perform)
    for step, promise in enumerate(promises):
        assert not ended
        promise.settle(step + 1)
    assert ended == [(6, None)]


def test_errors_go_into_the_flow_and_out_of_it() -> None:
    caught: list[BaseException] = []

    def flow() -> Generator[Any, Any, str]:
        try:
            yield "boom"
        except ValueError as exc:
            caught.append(exc)
        yield "pending-failure"
        return "unreachable"

    def perform(effect: str) -> Any:
        if effect == "boom":
            raise ValueError("from perform")
        failed = Promise()
        failed.settle(error=KeyError("from a promise"))
        return failed

    _, ended = drive(flow(), perform)
    assert [str(exc) for exc in caught] == ["from perform"]
    ((value, error),) = ended
    assert value is None and isinstance(error, KeyError)


def test_cancel_closes_the_flow_and_hands_back_what_it_waited_on() -> None:
    cleaned: list[str] = []
    waited = Promise()

    def flow() -> Generator[Any, Any, None]:
        try:
            yield "wait"
        finally:
            cleaned.append("cleanup")

    run, ended = drive(flow(), lambda effect: waited)
    assert run.cancel() is waited
    assert cleaned == ["cleanup"]
    waited.settle("late")  # settling after the cancel reaches nobody
    assert ended == []


def test_flat_calls_run_in_order_and_never_nested() -> None:
    flat = FlatCalls()
    depth: list[int] = []
    order: list[int] = []
    level = [0]

    def call(n: int) -> None:
        level[0] += 1
        depth.append(level[0])
        order.append(n)
        if n < 1000:
            flat(call, n + 1)  # asked for within a call: made after it returns
        level[0] -= 1

    flat(call, 0)
    assert order == list(range(1001))
    assert set(depth) == {1}


def test_flat_calls_goes_on_after_a_call_that_raised() -> None:
    flat = FlatCalls()
    made: list[str] = []

    def bad() -> None:
        raise RuntimeError("oops")

    with pytest.raises(RuntimeError):
        flat(bad)
    flat(made.append, "next")
    assert made == ["next"]


def test_a_response_renders_as_http11_and_as_a_wsgi_status() -> None:
    from skyhooks.core.errors import PayloadTooLarge
    from skyhooks.core.wire import error_response

    refusal = error_response(PayloadTooLarge("too big"), close=True)
    head, _, body = refusal.http11().partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 413 ") and refusal.status_line == lines[0][len("HTTP/1.1 ") :]
    assert "Connection: close" in lines and f"Content-Length: {len(body)}" in lines
    assert (b"connection", b"close") in {(n.lower(), v) for n, v in refusal.raw_header_pairs}
