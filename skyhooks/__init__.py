"""skyhooks: deliver background-job results to live browsers over signed webhooks.

The framework is chosen by what you import: ``skyhooks.tornado``,
``skyhooks.gevent`` or ``skyhooks.twisted`` for the ``Registry``, handler and
async ``Publisher``; ``skyhooks.Publisher`` here is the blocking publisher for
code with no event loop (a Celery task, a script), from ``skyhooks.blocking``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core import (
    ConfigurationError,
    DeliveryReport,
    IHookStore,
    InvalidDataError,
    InvalidKeysError,
    Message,
    RequestError,
    RetryPolicy,
    SkyhooksError,
    StoreError,
    Subscription,
    Topic,
    UrlPolicy,
    generate_secret,
    open_store,
)

if TYPE_CHECKING:
    from .blocking import Publisher

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DeliveryReport",
    "IHookStore",
    "InvalidDataError",
    "InvalidKeysError",
    "Message",
    "Publisher",
    "RequestError",
    "RetryPolicy",
    "SkyhooksError",
    "StoreError",
    "Subscription",
    "Topic",
    "UrlPolicy",
    "__version__",
    "generate_secret",
    "open_store",
]


def __getattr__(name: str) -> Any:
    # Lazy, so "import skyhooks" never drags in an HTTP client (urllib3).
    if name == "Publisher":
        from .blocking import Publisher

        return Publisher
    raise AttributeError(f"module 'skyhooks' has no attribute {name!r}")
