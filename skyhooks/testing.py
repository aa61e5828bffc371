"""Testing helpers: publishers and registries wired together in memory.

:class:`MemoryTransport` is an :class:`~skyhooks.core.delivery.ITransport` that
hands each POST straight to a registry's request handler in this process (what
treq's ``StubTreq`` does for Twisted, for every publisher), or answers with
what a test scripts: a status, a refused connection, a timeout. With it, any
publisher runs its whole delivery (lookup, coalescing, retries, pruning,
reports) with no socket and no server::

    transport = MemoryTransport()
    transport.route(registry.url, registry)
    publisher = Publisher(store, secret, transport=transport)
    report = publisher.notify({"account_id": 42}, {"progress": 100})
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zope.interface import implementer

from .core.delivery import HTTPResult, ITransport
from .core.errors import TransportError

__all__ = ["MemoryTransport", "SentRequest"]


@dataclass(frozen=True)
class SentRequest:
    """One POST a :class:`MemoryTransport` was given."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    timeout: float


@implementer(ITransport)
class MemoryTransport:
    """POSTs delivered in memory to registries, or answered as scripted. Thread-safe.

    A URL with scripted answers (:meth:`answer`, :meth:`fail`) gets them first,
    one per POST, in order; then its routed registry answers; a URL with
    neither is refused, like a port nobody listens on.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Any] = {}
        self._script: defaultdict[str, deque[HTTPResult | TransportError]] = defaultdict(deque)
        #: Every POST, in the order given.
        self.sent: list[SentRequest] = []
        self.closed = False

    def route(self, url: str, registry: Any) -> None:
        """Deliver POSTs to *url* to ``registry.handle_request``."""
        with self._lock:
            self._routes[url] = registry

    def answer(
        self, url: str, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """The next unscripted POST to *url* gets this HTTP answer."""
        with self._lock:
            self._script[url].append(HTTPResult(status, dict(headers or {}), body))

    def fail(self, url: str, kind: str, detail: str = "scripted") -> None:
        """The next unscripted POST to *url* fails below HTTP (``refused``, ``timeout``, ``error``)."""
        with self._lock:
            self._script[url].append(TransportError(kind, detail))

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> HTTPResult:
        if self.closed:
            raise RuntimeError("this MemoryTransport was closed")
        with self._lock:
            self.sent.append(SentRequest(url, dict(headers), body, timeout))
            scripted = self._script[url].popleft() if self._script.get(url) else None
            registry = self._routes.get(url)
        if isinstance(scripted, TransportError):
            raise scripted
        if scripted is not None:
            return scripted
        if registry is None:
            raise TransportError("refused", f"nothing listens at {url}")
        response = registry.handle_request("POST", headers, body)
        return HTTPResult(response.status, dict(response.headers), response.body)

    def close(self) -> None:
        self.closed = True
