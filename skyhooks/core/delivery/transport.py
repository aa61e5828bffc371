"""The one seam between the core and an HTTP client: :class:`ITransport`.

Every publisher sends through its framework's own well-kept client (urllib3,
Tornado's ``AsyncHTTPClient``, treq, geventhttpclient) wrapped in a small
transport that maps the client's exceptions to :class:`TransportError` kinds
right there, at the seam (httpcore's ``map_exceptions`` pattern, here
:func:`transport_errors`), so the core's retry policy never sees a client's
exception types. Tests swap in an in-memory transport
(:class:`skyhooks.testing.MemoryTransport`) the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from zope.interface import Interface

from ..errors import TransportError

__all__ = ["ITransport", "transport_errors"]


class ITransport(Interface):
    """POSTs one request at a time for a publisher.

    Example (a blocking transport)::

        result = transport.post("http://10.0.0.5:8001/skyhooks", headers, body, timeout=5.0)
        result.status, result.headers, result.body
    """

    def post(url, headers, body, timeout):  # type: ignore[no-untyped-def]
        """POST *body* (bytes) with *headers* (a mapping of str) to *url*, once,
        with no redirects and no retries of its own, within *timeout* seconds
        (connecting and answering).

        Returns an :class:`~skyhooks.core.delivery.HTTPResult` for every HTTP
        status, or, in an asynchronous publisher, an awaitable of one (an
        asyncio Future, a Deferred). Failures below HTTP raise (or fail the
        awaitable with) :class:`TransportError`: kind ``"refused"`` when the
        connection was refused (the instance is gone: it may be pruned),
        ``"timeout"``, or ``"error"`` for anything else (reset, DNS, TLS)."""

    def close():  # type: ignore[no-untyped-def]
        """Release pooled connections. The transport may not be used afterwards."""


@contextlib.contextmanager
def transport_errors(kinds: Mapping[type[BaseException], str], what: str = "") -> Iterator[None]:
    """Re-raise a client's exceptions as :class:`TransportError` of the kind they map to.

    *kinds* maps exception classes to ``"refused"``, ``"timeout"`` or
    ``"error"``, most specific first (the first match wins); anything not in
    it goes on as it is (a bug, which the core logs and reports).

        with transport_errors({urllib3.exceptions.NewConnectionError: "refused", ...}):
            response = pool.request("POST", url, body=body, headers=headers)
    """
    try:
        yield
    except TransportError:
        raise
    except tuple(kinds) as exc:
        kind = next(kind for cls, kind in kinds.items() if isinstance(exc, cls))
        detail = str(exc) or type(exc).__name__
        raise TransportError(kind, f"{what}: {detail}" if what else detail) from exc
