"""The publisher base for callback-style frameworks (Twisted's Deferreds).

Its ``notify`` returns a *pending result* of the framework's (a Deferred) and drives
the flow with :class:`~skyhooks.core.delivery.CallbackRun`: no coroutine, and a result
that is in already goes straight back into the flow. The adapter says only how its
pending results are made, settled and waited on.

Waiters, and replies to POSTs, settle *flat* (:class:`~skyhooks.core.delivery.FlatCalls`):
at once, not a loop turn later (long under load), so a lane's next POST leaves at once;
and a waiter resolved by a flow that a firing resumed fires after that firing, not
inside it, so a chain of them never grows the stack.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Iterable
from typing import Any

from .delivery import CallbackRun, Effect, FlatCalls, Flow, Gather, Send
from .delivery.effects import Settle
from .keys import Keys
from .publisher import BasePublisher

__all__ = ["CallbackPublisher"]


class CallbackPublisher(BasePublisher):
    """A publisher whose calls return pending results, settled by the framework's callbacks.

    Subclasses set ``_pending_type`` and fill in ``_new_pending`` and ``_when_settled`` (and
    :class:`BasePublisher`'s ``_call``, ``_sleep`` and ``_default_transport``, which return
    pending results or plain values). A pending result must have a ``cancel()`` method.
    """

    #: The class of the framework's pending results (Twisted: ``Deferred``).
    _pending_type: type[Any]

    def __init__(self, store: Any, secret: str | bytes, **options: Any) -> None:
        self._flat = FlatCalls()
        super().__init__(store, secret, **options)

    @abc.abstractmethod
    def _new_pending(self, cancel: Callable[[Any], None] | None) -> tuple[Any, Settle]:
        """A new pending result, and ``settle(value, error)``, which settles it (and does nothing
        once it is settled or cancelled). Cancelling it calls ``cancel(pending)`` first, if given."""

    @staticmethod
    @abc.abstractmethod
    def _when_settled(pending: Any, settle: Settle) -> None:
        """Arrange ``settle(value, None)`` or ``settle(None, error)`` once *pending* settles."""

    def notify(self, keys: Keys, data: Any) -> Any:
        """Deliver *data* to every callback listening for any of *keys*: a pending result of the
        :class:`~skyhooks.DeliveryReport`. It fails with ``ValueError`` or :class:`~skyhooks.StoreError`
        before anything is sent; the report has every other failure."""
        return self._notify([(keys, data)], one=True)

    def notify_many(self, messages: Iterable[tuple[Keys, Any]]) -> Any:
        """Deliver several ``(keys, data)`` messages, a batch per instance: a pending result of a
        report per message."""
        return self._notify(messages, one=False)

    def close(self) -> Any:
        """Close pooled connections (and the store, if opened here): a pending result that
        settles once they are closed."""
        closing = self.transport.close()
        if self._owns_store:
            self.store.close()
        if isinstance(closing, self._pending_type):
            return closing
        closed, settle = self._new_pending(None)
        settle(None, None)
        return closed

    def _notify(self, messages: Iterable[tuple[Keys, Any]], one: bool) -> Any:
        try:
            flow = self._flow(messages)
        except Exception as exc:  # bad input fails the pending result like any other error
            failed, settle = self._new_pending(None)
            settle(None, exc)
            return failed
        return self._run(flow, first=one)

    def _run(self, flow: Flow[Any], first: bool = False) -> Any:
        """Start *flow*: a pending result of its value (its first item, if *first*). Cancelling it
        closes the flow (a lane hands its work on) and cancels the pending result the flow waited on."""

        def cancel(_: Any) -> None:
            if (waited := run.cancel()) is not None:
                waited.cancel()

        result, settle = self._new_pending(cancel)
        if first:
            settle = functools.partial(_first, settle)
        run = CallbackRun(flow, self._perform, self._pending_type, self._when_settled, settle)
        run.start()
        return result

    def _perform(self, effect: Effect) -> Any:
        done = super()._perform(effect)
        if not isinstance(effect, Send) or not isinstance(done, self._pending_type):
            return done
        relay, settle = self._new_pending(lambda _: done.cancel())  # a reply is taken in as a waiter fires
        self._when_settled(done, functools.partial(self._flat, settle))
        return relay

    def _gather(self, gather: Gather) -> Any:
        flows, results = gather.flows, [None] * len(gather.flows)
        runs: list[Any] = []
        lanes = len(flows) > gather.limit
        if lanes:  # then `limit` lanes, each running the next flow not yet started as it ends one
            queue = iter(enumerate(gather.flows))

            def lane() -> Flow[None]:
                for index, flow in queue:
                    results[index] = yield from flow

            flows = [lane() for _ in range(gather.limit)]
        left = [len(flows)]

        def ended(index: int, value: Any, error: BaseException | None) -> None:
            if not lanes:
                results[index] = value
            left[0] -= 1
            if error is not None or not left[0]:
                settle(None if error else results, error)

        def cancel(_: Any) -> None:
            for run in runs:
                run.cancel()

        gathered, settle = self._new_pending(cancel)
        if not flows:
            settle(results, None)
        for index, flow in enumerate(flows):
            runs.append(self._run(flow))
            self._when_settled(runs[-1], functools.partial(ended, index))
        return gathered

    def _new_waiter(self) -> tuple[Any, Callable[[Any], None]]:
        waiter, settle = self._new_pending(None)
        return waiter, lambda value: self._flat(settle, value, None)

    def _linger(self) -> Any:
        # Fires after what is queued to fire already: a lane's next lead, handed the lane with
        # a POST's reply, first lets the callers that reply answered send again (see Coalescer).
        waiter, resolve = self._new_waiter()
        resolve(None)
        return waiter


def _first(settle: Settle, value: Any, error: BaseException | None) -> None:
    # notify's flow delivers one message: its pending result is the one report.
    settle(None if error else value[0], error)
