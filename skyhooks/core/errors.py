"""The exceptions skyhooks raises.

One root, :class:`SkyhooksError`. Errors about an incoming webhook request carry
the HTTP status they map to (as h11 and gidgethub do), so a handler in any
framework turns them into a response mechanically. Driver and framework
exceptions are translated at the boundary and chained with ``raise ... from``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import ClassVar

__all__ = [
    "BadRequest",
    "ConfigurationError",
    "InvalidDataError",
    "InvalidKeysError",
    "MethodNotAllowed",
    "PayloadTooLarge",
    "RequestError",
    "SkyhooksError",
    "StoreError",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "WouldBlock",
    "map_exceptions",
]


class SkyhooksError(Exception):
    """The root of every exception skyhooks raises on purpose."""


class ConfigurationError(SkyhooksError, ValueError):
    """A constructor argument (store URL, secret, webhook URL...) is unusable."""


class InvalidKeysError(SkyhooksError, ValueError):
    """Keys do not follow the rules: names ``[A-Za-z0-9_.:-]{1,64}``, values str
    or int (not bool) of at most 256 characters, at least one key."""


class InvalidDataError(SkyhooksError, ValueError):
    """The message data cannot be encoded as JSON."""


class StoreError(SkyhooksError):
    """The subscription store could not be read or written.

    ``Publisher.notify`` raises it before sending anything, so a caller (a Celery
    task, say) can retry the whole notification.
    """


class WouldBlock(StoreError):
    """A store's ``lookup_nowait`` could only answer by waiting (for a lock, say).

    Event-loop publishers try ``lookup_nowait`` on the loop first, because a
    thread hand-off costs more than a fast local read, and fall back to
    ``lookup`` in a worker thread when this is raised.
    """


class TransportError(SkyhooksError):
    """One HTTP attempt failed below HTTP (refused, timed out, reset...).

    Adapters raise it from their "send one request" hook, so the core's retry
    policy can decide without knowing any HTTP client. ``kind`` is one of
    ``"refused"``, ``"timeout"`` or ``"error"``.
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class RequestError(SkyhooksError):
    """An incoming webhook request was refused; ``status`` is the HTTP status."""

    status: ClassVar[int] = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadRequest(RequestError):
    """Malformed body, JSON or keys."""

    status = 400


class Unauthorized(RequestError):
    """Missing or invalid signature, or a timestamp outside the tolerance."""

    status = 401


class MethodNotAllowed(RequestError):
    """Anything but POST."""

    status = 405


class PayloadTooLarge(RequestError):
    """The body is over the size limit."""

    status = 413


class UnsupportedMediaType(RequestError):
    """The body is not declared as JSON."""

    status = 415


@contextlib.contextmanager
def map_exceptions(mapping: Mapping[type[BaseException], type[SkyhooksError]], what: str) -> Iterator[None]:
    """Re-raise driver exceptions as skyhooks ones (httpcore's idiom).

    ``what`` says what was being done, so the message stands on its own:
    ``StoreError: sqlite store lookup failed: database is locked``.
    """
    try:
        yield
    except SkyhooksError:
        raise
    except tuple(mapping) as exc:
        for source, target in mapping.items():
            if isinstance(exc, source):
                raise target(f"{what} failed: {exc}") from exc
        raise  # pragma: no cover - unreachable: exc matched one of the sources
