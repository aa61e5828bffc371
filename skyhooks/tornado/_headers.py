"""The request headers the core reads, taken from Tornado's ``HTTPHeaders``."""

from __future__ import annotations

from tornado.httputil import HTTPHeaders

from ..core.protocol import REQUEST_HEADERS

__all__ = ["core_headers"]

_NAMES = (*REQUEST_HEADERS, "content-length")


def core_headers(headers: HTTPHeaders) -> dict[str, str]:
    """``{lower-case name: value}`` for :data:`REQUEST_HEADERS` and ``content-length``.

    Five lookups rather than a copy of every header: iterating ``HTTPHeaders``
    is slow. (One pass over ``get_all()``, which skips ``get``'s re-normalising
    of each name, measured no faster: 1.07 us against 0.92 in-process, the same
    3.0 us in a server under wrk.) A header sent more than once arrives joined
    by ``","``, as ``HTTPHeaders.get`` joins field lines.
    """
    get = headers.get
    return {name: value for name in _NAMES if (value := get(name)) is not None}
