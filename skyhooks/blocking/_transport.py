"""The blocking publisher's transport: urllib3's ``PoolManager``."""

from __future__ import annotations

from collections.abc import Mapping

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from zope.interface import implementer

from ..core.delivery import HTTPResult, ITransport, transport_errors
from ..core.errors import TransportError
from ..core.forks import reset_in_child

__all__ = ["Urllib3Transport"]

#: A skyhooks reply is a few dozen bytes: a longer one is refused, not buffered.
MAX_REPLY = 1024 * 1024

#: First match wins: to urllib3 a NewConnectionError is a ConnectTimeoutError,
#: though it means "no connection" (a refused one is told apart in _send).
_KINDS: dict[type[BaseException], str] = {
    NewConnectionError: "error",
    ConnectTimeoutError: "timeout",
    ReadTimeoutError: "timeout",
    TimeoutError: "timeout",
    HTTPError: "error",
    OSError: "error",
    ValueError: "error",  # http.client refuses a header or path with a line break in it
}


@implementer(ITransport)
class Urllib3Transport:
    """POSTs over one ``urllib3.PoolManager``, at most *per_origin* kept-alive connections
    per instance; thread-safe, and it starts no thread. No redirects, and one retry only:
    a request that met a kept-alive connection the instance had closed (no reply begun)
    goes once more, on a fresh one; receivers drop a ``webhook-id`` they have seen, so a
    resend is safe. Everything else is the core's retry policy's to decide."""

    def __init__(self, per_origin: int = 10) -> None:
        self._per_origin = per_origin
        self._after_fork()
        reset_in_child(self)

    def _after_fork(self) -> None:
        # Also in a forked child, which must never write into its parent's
        # connections (each would read the other's replies) nor wait on a lock
        # a parent's thread held: it drops what it inherited, unclosed.
        self._pools = urllib3.PoolManager(
            num_pools=256,  # instances with kept-alive connections (urllib3 keeps 10)
            maxsize=self._per_origin,
            retries=False,
        )

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> HTTPResult:
        with transport_errors(_KINDS):
            try:
                response = self._send(url, headers, body, timeout)
            except ProtocolError as exc:
                if not isinstance(exc.__context__, ConnectionError):
                    raise  # garbled, or a send that timed out: not a closed connection
                response = self._send(url, headers, body, timeout)
            data = response.read(MAX_REPLY + 1)
            if len(data) > MAX_REPLY:
                response.close()  # (unread: the connection cannot be reused)
                raise TransportError("error", f"a reply over {MAX_REPLY} bytes from {url}")
            response.release_conn()
        return HTTPResult(response.status, response.headers, data)

    def _send(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> urllib3.BaseHTTPResponse:
        try:
            return self._pools.urlopen(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                preload_content=False,
                redirect=False,
            )
        except NewConnectionError as exc:
            if isinstance(exc.__cause__, ConnectionRefusedError):
                raise TransportError("refused", str(exc)) from exc
            raise

    def close(self) -> None:
        self._pools.clear()
