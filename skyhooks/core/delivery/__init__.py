"""Delivery, written once for every publisher.

- :mod:`.effects`: the effects a flow yields and the drivers that run flows;
- :mod:`.transport`: :class:`ITransport`, the seam to each framework's HTTP client;
- :mod:`.retry`: one POST to one URL, retried as :class:`RetryPolicy` says;
- :mod:`.coalescer`: the one coalescer: lanes of POSTs in flight per URL, and a
  backlog of queued messages that leave as one notification;
- :mod:`.batches`: splitting a URL's messages into batches a receiver takes;
- :mod:`.notify`: the whole notification (lookup, fan-out, pruning, reports).
"""

from .coalescer import Backlog, Coalescer
from .effects import (
    Call,
    CallbackRun,
    Effect,
    FlatCalls,
    Flow,
    Gather,
    HTTPResult,
    Send,
    Sleep,
    Wait,
    run_async,
    run_sync,
)
from .notify import notify_flow
from .retry import DeliveryOutcome, RetryPolicy, deliver
from .transport import ITransport, transport_errors

__all__ = [
    "Backlog",
    "Call",
    "CallbackRun",
    "Coalescer",
    "DeliveryOutcome",
    "Effect",
    "FlatCalls",
    "Flow",
    "Gather",
    "HTTPResult",
    "ITransport",
    "RetryPolicy",
    "Send",
    "Sleep",
    "Wait",
    "deliver",
    "notify_flow",
    "run_async",
    "run_sync",
    "transport_errors",
]
