"""skyhooks' framework-free core.

Imports no web framework, HTTP client or database driver at module level
(``tests/test_imports.py`` proves it). The layers, bottom up:

- ``keys``, ``values``, ``errors``, ``callbacks``: the vocabulary;
- ``interfaces`` and ``stores``: :class:`IHookStore` and the stores;
- ``wire``: signing, verifying, the request reader, replies, batches (sans-IO);
- ``delivery``: effects and drivers, the transport seam, retries, the one
  coalescer, the notification flow;
- ``registry`` and ``publisher``: the logic every adapter subclasses (and
  ``callback_publisher``: the base for callback-style frameworks, Twisted's Deferreds).
"""

from .callbacks import CallbackTable
from .delivery import ITransport, RetryPolicy
from .errors import (
    BadRequest,
    ConfigurationError,
    InvalidDataError,
    InvalidKeysError,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestError,
    SkyhooksError,
    StoreError,
    TransportError,
    Unauthorized,
    UnsupportedMediaType,
)
from .interfaces import HookStore, IHookStore
from .keys import Topic, topics_of, validate_keys
from .publisher import BasePublisher, SyncPublisher
from .registry import BaseRegistry, BlockingRegistry
from .stores import open_store
from .urls import UrlPolicy
from .values import DeliveryReport, Message, Subscription
from .wire import Signer, Verifier, generate_secret

__all__ = [
    "BadRequest",
    "BasePublisher",
    "BaseRegistry",
    "BlockingRegistry",
    "CallbackTable",
    "ConfigurationError",
    "DeliveryReport",
    "HookStore",
    "IHookStore",
    "ITransport",
    "InvalidDataError",
    "InvalidKeysError",
    "Message",
    "MethodNotAllowed",
    "PayloadTooLarge",
    "RequestError",
    "RetryPolicy",
    "Signer",
    "SkyhooksError",
    "StoreError",
    "Subscription",
    "SyncPublisher",
    "Topic",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "UrlPolicy",
    "Verifier",
    "generate_secret",
    "open_store",
    "topics_of",
    "validate_keys",
]
