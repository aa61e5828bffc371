"""Reading one webhook request the same way in every adapter, sans-IO.

An adapter hands over what its framework gives it, in order: the method and a
header getter, then the body in chunks (or whole), then the end; the reader
says when to answer and what. It owns the body size limit: a declared
``Content-Length`` over it is refused at once, before any byte of the body is
read, and a body that grows past it while streaming (chunked, or lying about
its length) is refused the moment it does. Either refusal asks the adapter to
close the connection, since the rest of the body was never read.

    reader = registry.reader(method, headers.get)  # or a dict of the lower-case headers
    if reader.refusal is not None:
        answer(reader.refusal)                     # 413, the body left unread
    for chunk in body:
        if (refusal := reader.feed(chunk)) is not None:
            answer(refusal)                        # 413 mid-body
    if (response := reader.finish()) is not None:  # or reader.finish(whole_body), without feed
        answer(response)                           # the core's verdict
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ..errors import PayloadTooLarge
from .incoming import REQUEST_HEADERS
from .replies import Response, error_response, internal_error_response

__all__ = ["HeaderGetter", "RequestHandler", "RequestReader"]

log = logging.getLogger("skyhooks.registry")

#: ``get(lower_case_name)``: a request header's value, or None. Tornado's
#: ``HTTPHeaders.get``, aiohttp's ``request.headers.get`` and Twisted's
#: ``request.getHeader`` all are one, case-insensitive already.
HeaderGetter = Callable[[str], "str | None"]
#: ``handle(method, headers, body)``: the registry's verdict on a whole request.
RequestHandler = Callable[[str, Mapping[str, str], bytes], Response]


class RequestReader:
    """One request's reading; see the module's docs. Not thread-safe (one request, one reader)."""

    __slots__ = (
        "_chunks",
        "_done",
        "_handle",
        "_headers",
        "_limit",
        "_size",
        "declared",
        "method",
        "refusal",
    )

    def __init__(
        self, handle: RequestHandler, max_body_size: int, method: str, header: HeaderGetter | dict[str, str]
    ) -> None:
        self._handle = handle
        self._limit = max_body_size
        self.method = method
        if isinstance(header, dict):  # the headers by lower-case name, gathered by the adapter already
            self._headers = header
            header = header.get
        else:
            self._headers = {name: value for name in REQUEST_HEADERS if (value := header(name)) is not None}
        self._chunks: list[bytes] = []
        self._size = 0
        #: The body's declared length (``Content-Length``), or None when absent or malformed.
        self.declared = declared = self.declared_length(header("content-length"))
        #: The 413 to answer before reading the body, when its declared length is over the limit.
        self.refusal: Response | None = None
        if declared is not None and declared > max_body_size:
            self.refusal = self._too_large(declared)
        self._done = self.refusal is not None

    @property
    def read_limit(self) -> int:
        """Bytes worth reading from a body of unknown length: one past the
        limit, enough to tell a body over it."""
        return self._limit + 1

    @staticmethod
    def declared_length(value: str | None) -> int | None:
        """A ``Content-Length`` header's value, or None when absent or malformed
        (then the body is read up to :attr:`read_limit` and measured)."""
        if value is None or not value.strip().isdigit():
            return None
        return int(value)

    def feed(self, chunk: bytes) -> Response | None:
        """Take a piece of the body; the 413 to answer if it takes the body over the limit."""
        if self._done:
            return None  # answered already: what still arrives is dropped
        self._size += len(chunk)
        if self._size > self._limit:
            self._done, self._chunks = True, []
            return self._too_large(self._size)
        self._chunks.append(chunk)
        return None

    def finish(self, last: bytes = b"") -> Response | None:
        """The body is complete, *last* its final piece (a whole body read at once may
        come here alone, with no :meth:`feed`): the answer, or None if the request
        was refused already."""
        if self._done:
            return None
        if self._chunks:
            if last and (refusal := self.feed(last)) is not None:
                return refusal
            body = b"".join(self._chunks)
            self._chunks = []
        elif len(last) > self._limit:
            return self.feed(last)
        else:
            body = last
        self._done = True
        try:
            return self._handle(self.method, self._headers, body)
        except Exception:  # a bug of ours (bad input is answered, never raised): JSON, no traceback
            log.exception("webhook request failed")
            return internal_error_response()

    def _too_large(self, size: int) -> Response:
        error = PayloadTooLarge(f"body of {size} bytes is over the limit of {self._limit}")
        return error_response(error, close=True)
