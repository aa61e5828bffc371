"""Effects and their drivers: how the core's delivery flows ask adapters for I/O.

Delivery is written once, as generator *flows* that yield effects
(:class:`Send`, :class:`Sleep`, :class:`Call`, :class:`Gather`, :class:`Wait`)
and receive their results, in the sans-IO manner. Each publisher performs an
effect in its own idiom and runs a flow with :func:`run_sync` or
:func:`run_async` (or, for Twisted, with Deferreds), so the retry policy, the
pruning rules and the report cannot drift between frameworks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Call", "Effect", "Flow", "Gather", "HTTPResult", "Send", "Sleep", "Wait", "run_async", "run_sync"]

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """POST ``body`` with ``headers`` to ``url``; the result is an :class:`HTTPResult`.
    Failures below HTTP must be raised as :class:`TransportError`."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    timeout: float


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` without blocking other work; the result is ignored."""

    seconds: float


@dataclass(frozen=True)
class Call:
    """Run the blocking ``fn(*args)`` (a store call) off the event loop; the
    result is its return value, or its exception thrown back into the flow.

    ``nowait``, if given, answers the same without ever waiting, or raises
    :class:`~skyhooks.core.errors.WouldBlock`: an event loop may try it in
    place before handing ``fn`` to a thread."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    nowait: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Gather:
    """Run ``flows`` concurrently, at most ``limit`` at a time; the result is the
    list of their return values, in order. Flows must not raise."""

    flows: Sequence[Generator[Any, Any, Any]]
    limit: int


@dataclass(frozen=True)
class Wait:
    """Wait until *waiter* (made by the publisher's ``_new_waiter``) is resolved;
    the result is the value it was resolved with. Used by coalescing lanes."""

    waiter: Any


Effect = Send | Sleep | Call | Gather | Wait
Flow = Generator[Effect, Any, T]


@dataclass(frozen=True)
class HTTPResult:
    status: int
    headers: Mapping[str, str]
    body: bytes


def run_sync(flow: Flow[T], perform: Callable[[Effect], Any]) -> T:
    """Drive *flow* to completion with a blocking ``perform``: :func:`run_async`,
    whose every await is answered at once, so it runs to its end in one step."""
    driver = run_async(flow, lambda effect: _Ready(perform(effect)))
    try:
        driver.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    driver.close()
    raise RuntimeError("a blocking perform returned something that waits")


class _Ready:
    """An awaitable that is done already: awaiting it gives *value* without suspending."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, Any]:
        return self.value
        yield  # (never reached: it makes this a generator, as __await__ must be)


async def run_async(flow: Flow[T], perform: Callable[[Effect], Awaitable[Any]]) -> T:
    """Drive *flow* to completion with a ``perform`` that returns awaitables
    (asyncio futures under Tornado, Deferreds under Twisted)."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value, error = await perform(effect), None
        except Exception as exc:
            value, error = None, exc
        except BaseException:  # cancelled or interrupted: the flow cleans up now (lanes hand on work)
            flow.close()
            raise
