"""Effects and their drivers: how the core's delivery flows ask adapters for I/O.

Delivery is written once, as generator *flows* that yield effects
(:class:`Send`, :class:`Sleep`, :class:`Call`, :class:`Gather`, :class:`Wait`)
and receive their results, in the sans-IO manner. Each publisher performs an
effect in its own idiom and runs a flow with :func:`run_sync`,
:func:`run_async` or :class:`CallbackRun` (for callback-style frameworks:
Twisted's Deferreds), so the retry policy, the pruning rules and the report
cannot drift between frameworks.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = [
    "Call",
    "CallbackRun",
    "Effect",
    "FlatCalls",
    "Flow",
    "Gather",
    "HTTPResult",
    "Send",
    "Sleep",
    "Wait",
    "run_async",
    "run_sync",
]

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


#: ``settle(value, error)``: how a pending result reports its outcome.
Settle = Callable[[Any, "BaseException | None"], None]


class CallbackRun(Generic[T]):
    """Drive *flow* with a ``perform`` that returns plain values or *pending*
    results (instances of *pending_type*, a Deferred say), without a coroutine.

    ``wait(pending, settle)`` must arrange ``settle(value, error)`` once the
    pending result settles. A result settled already, within ``wait``, goes
    straight back into the flow (inlineCallbacks' trick: no stack growth, no
    reactor turn); one still waiting costs the framework one callback. The
    flow's end goes to ``finish(value, error)``. :meth:`cancel` closes the flow
    at once (its cleanups run: a coalescing lane hands its work on) and returns
    the pending result it waited on, for the caller to cancel in its own idiom.
    """

    __slots__ = ("_finish", "_flow", "_pending_type", "_perform", "_wait", "_waiting")

    def __init__(
        self,
        flow: Flow[T],
        perform: Callable[[Effect], Any],
        pending_type: type,
        wait: Callable[[Any, Settle], None],
        finish: Callable[[T | None, BaseException | None], None],
    ) -> None:
        self._flow, self._perform, self._pending_type = flow, perform, pending_type
        self._wait, self._finish = wait, finish
        self._waiting: list[Any] = []  # the pending result now waited on, if any

    def start(self) -> None:
        self._advance(None, None)

    def cancel(self) -> Any:
        """Close the flow; return the pending result it waited on, or None."""
        self._flow.close()
        return self._waiting.pop() if self._waiting else None

    def _advance(self, value: Any, error: BaseException | None) -> None:
        while True:
            try:
                effect = self._flow.send(value) if error is None else self._flow.throw(error)
            except StopIteration as stop:
                return self._finish(stop.value, None)
            except BaseException as exc:
                return self._finish(None, exc)
            try:
                value, error = self._perform(effect), None
            except Exception as exc:
                value, error = None, exc
            if error is None and isinstance(value, self._pending_type):
                now: list[tuple[Any, BaseException | None]] = []  # settled within wait()?
                self._wait(value, functools.partial(self._settle, value, now))
                if not now:
                    now.append((None, None))  # "not at once": _settle() takes it from here
                    self._waiting.append(value)
                    return None
                value, error = now[0]

    def _settle(self, pending: Any, now: list[Any], value: Any, error: BaseException | None) -> None:
        if not now:
            now.append((value, error))  # within wait(): _advance's loop takes it
        elif self._waiting and self._waiting[-1] is pending:  # (else cancelled: ignored)
            self._waiting.pop()
            self._advance(value, error)


class FlatCalls:
    """Makes calls in order and never nested: a call asked for while another
    runs is queued and made once that one returns, from the outer loop.

    For firing waiters at once rather than a loop turn later, without the stack
    growing as each fired waiter resumes a flow that fires the next. The calls
    must not raise (one that does stops the loop, and the rest wait for the
    next call)."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()

    def __call__(self, fn: Callable[..., None], *args: Any) -> None:
        self._queue.append((fn, args))
        if len(self._queue) > 1:
            return  # the loop below, further up the stack, makes it
        while self._queue:
            call, call_args = self._queue[0]  # (left queued while it runs: see above)
            try:
                call(*call_args)
            finally:
                self._queue.popleft()
