"""Delivering one request to one URL: the retry policy and how a POST ended."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import TransportError
from ..wire import OutgoingMessage, parse_reply
from .effects import Flow, Send, Sleep

__all__ = ["GONE_STATUSES", "RETRY_STATUSES", "DeliveryOutcome", "RetryPolicy", "counts_of", "deliver"]

log = logging.getLogger("skyhooks.publisher")


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry one URL.

    Connection failures, timeouts, 408, 429 and 5xx are retried, up to
    ``attempts`` tries in all, with exponential backoff (``backoff`` doubling up
    to ``max_backoff``) and full jitter, never past ``deadline`` seconds after
    the first try. A 429 or 503 with ``Retry-After`` waits what it asks, if that
    fits in the deadline. Other 4xx are final at once. ``timeout`` bounds each
    attempt (connect and response).
    """

    attempts: int = 3
    backoff: float = 0.1
    max_backoff: float = 2.0
    deadline: float = 10.0
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.backoff, self.max_backoff, self.deadline, self.timeout) <= 0:
            raise ValueError("backoff, max_backoff, deadline and timeout must be positive")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed try number *attempt* (1-based)."""
        exponential: float = self.backoff * 2.0 ** (attempt - 1)
        return rand() * min(self.max_backoff, exponential)


RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
#: After its retries, a URL answering these (or refusing connections) is gone: prune it.
GONE_STATUSES = frozenset({404, 410})


@dataclass(frozen=True)
class DeliveryOutcome:
    """How delivering to one URL ended."""

    url: str
    delivered: bool
    notified: int = 0
    duplicate: bool = False
    reason: str = ""
    gone: bool = False
    #: for a batch: per message, its count or None for a duplicate (see parse_reply)
    results: tuple[int | None, ...] | None = None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return None if when is None else max(0.0, when.timestamp() - time.time())


def deliver(
    url: str,
    message: OutgoingMessage,
    policy: RetryPolicy,
    clock: Callable[[], float] = time.monotonic,
) -> Flow[DeliveryOutcome]:
    """POST *message* to *url*, retrying as *policy* says; never raises."""
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        remaining = policy.deadline - (clock() - started)
        wait: float | None = None
        try:
            result = yield Send(
                url, message.headers, message.body, min(policy.timeout, max(remaining, 0.001))
            )
        except TransportError as exc:
            reason, retry, gone = f"{exc.kind}: {exc.detail}", True, exc.kind == "refused"
        except Exception as exc:  # an adapter bug must not lose the message silently
            log.exception("unexpected error sending %s to %s", message.id, url)
            reason, retry, gone = f"error: {exc!r}", False, False
        else:
            if 200 <= result.status < 300:
                reply = parse_reply(result.body)
                return DeliveryOutcome(url, True, reply.notified, reply.duplicate, results=reply.results)
            reason = f"HTTP {result.status}"
            retry = result.status in RETRY_STATUSES
            gone = result.status in GONE_STATUSES
            if result.status in (429, 503):
                wait = _retry_after(result.headers)
        if not retry or attempt >= policy.attempts:
            break
        wait = policy.delay(attempt) if wait is None else wait
        if clock() - started + wait >= policy.deadline:
            reason += " (deadline reached)"
            break
        yield Sleep(wait)
    tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
    return DeliveryOutcome(url, False, reason=f"{reason} after {tries}", gone=gone)


def counts_of(outcome: DeliveryOutcome, sent: int) -> list[int | None]:
    """Callbacks run per message sent to one URL; None for a duplicate."""
    if sent == 1:
        return [None if outcome.duplicate else outcome.notified]
    if outcome.results is None or len(outcome.results) != sent:
        return [1] * sent  # a receiver that does not say: count it as delivered, never as unused
    return list(outcome.results)
