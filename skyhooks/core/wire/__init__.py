"""The wire, version 1 (``docs/protocol.md``), sans-IO: no sockets anywhere.

Outgoing: :class:`Signer` encodes and signs. Incoming: :class:`RequestReader`
takes a request's parts as an adapter receives them, :class:`Verifier` turns
``(method, headers, body)`` into messages or a refusal carrying its status,
:class:`RecentIds` spots duplicates. Replies: :class:`Response` for the
instance to write, :func:`parse_reply` for the publisher to read.
"""

from .duplicates import RecentIds
from .incoming import DEFAULT_MAX_BODY_SIZE, REQUEST_HEADERS, ParsedMessage, ParsedRequest, Verifier
from .outgoing import MAX_BATCH, EncodedMessage, OutgoingMessage, Signer
from .reader import HeaderGetter, RequestReader
from .replies import (
    Reply,
    Response,
    batch_response,
    error_response,
    internal_error_response,
    ok_response,
    parse_reply,
)
from .signing import TOLERANCE, decode_secret, generate_secret

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "MAX_BATCH",
    "REQUEST_HEADERS",
    "TOLERANCE",
    "EncodedMessage",
    "HeaderGetter",
    "OutgoingMessage",
    "ParsedMessage",
    "ParsedRequest",
    "RecentIds",
    "Reply",
    "RequestReader",
    "Response",
    "Signer",
    "Verifier",
    "batch_response",
    "decode_secret",
    "error_response",
    "generate_secret",
    "internal_error_response",
    "ok_response",
    "parse_reply",
]
