"""The publisher logic every publisher shares; adapters add only ``perform``."""

from __future__ import annotations

import functools
from typing import Any

from .delivery import Flow, RetryPolicy, notify_flow
from .keys import Keys
from .protocol import Signer
from .stores import open_store
from .urls import UrlPolicy
from .values import DeliveryReport

__all__ = ["BasePublisher"]


class BasePublisher:
    """Holds the store, the signer and the policies; builds notification flows.

    Subclasses expose ``notify(keys, data)`` in their idiom: they run
    :meth:`_flow` with :func:`~skyhooks.core.delivery.run_sync` or
    :func:`~skyhooks.core.delivery.run_async` and a ``perform`` of their own.
    """

    def __init__(
        self,
        store: Any,
        secret: str | bytes,
        *,
        retry: RetryPolicy | None = None,
        concurrency: int = 32,
        url_policy: UrlPolicy | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.store = open_store(store)
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self.url_policy = url_policy or UrlPolicy()
        # URL parsing costs tens of microseconds per URL per message, and the set of
        # listening URLs changes slowly: remember the verdicts.
        self._refusal = functools.lru_cache(maxsize=4096)(self.url_policy.refusal)
        self._signer = Signer(secret)

    def _flow(self, keys: Keys, data: Any) -> Flow[DeliveryReport]:
        # Signing happens now, not when the flow first runs, so bad keys or data
        # raise from notify() itself, before anything is looked up or sent.
        message = self._signer.build(keys, data)
        return notify_flow(self.store, message, self.retry, self.concurrency, self._refusal)
