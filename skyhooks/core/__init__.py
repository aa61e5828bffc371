"""skyhooks' framework-free core.

Imports no web framework, HTTP client or database driver at module level
(``tests/test_imports.py`` proves it): keys and topics, the callback table, the
store interface and stores, the wire protocol, delivery planning and retries,
and the registry and publisher logic that every adapter subclasses.
"""

from .callbacks import CallbackTable
from .delivery import RetryPolicy
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
from .interfaces import IHookStore
from .keys import Topic, topics_of, validate_keys
from .protocol import Signer, generate_secret, parse_request
from .publisher import BasePublisher
from .registry import BaseRegistry
from .stores import open_store
from .urls import UrlPolicy
from .values import DeliveryReport, Message, Subscription

__all__ = [
    "BadRequest",
    "BasePublisher",
    "BaseRegistry",
    "CallbackTable",
    "ConfigurationError",
    "DeliveryReport",
    "IHookStore",
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
    "Topic",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "UrlPolicy",
    "generate_secret",
    "open_store",
    "parse_request",
    "topics_of",
    "validate_keys",
]
