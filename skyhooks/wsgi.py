"""The webhook endpoint as a plain WSGI application (PEP 3333): no framework.

``skyhooks.gevent.WebhookApp`` is :class:`WebhookWSGI`, served by gevent's pywsgi.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .core.errors import BadRequest
from .core.registry import BaseRegistry
from .core.wire import REQUEST_HEADERS, error_response

__all__ = ["WebhookWSGI"]

# Where the environ keeps each header the request reader asks for (PEP 3333).
_ENVIRON_KEYS = {name: "HTTP_" + name.upper().replace("-", "_") for name in REQUEST_HEADERS}
_ENVIRON_KEYS.update({"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"})
_FROM_ENVIRON = tuple((key, name) for name, key in _ENVIRON_KEYS.items())


class WebhookWSGI:
    """A WSGI app that takes every request it is given for a webhook: mount it at the
    registry URL's path. *registry* is called in the server's thread (gevent's ``Registry``
    under pywsgi: the hub's). A ``Content-Length`` over the limit is answered 413, the body
    unread; one of no declared length is read to one byte past the limit, never more. The
    server must end ``wsgi.input`` at the body's end and honour the ``Connection: close`` a
    refusal carries (the rest of the body is unread): pywsgi does both."""

    def __init__(self, registry: BaseRegistry[Any]) -> None:
        self.registry = registry

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # A dict by lower-case name, in one pass (the reader's other way, a getter, is called per name).
        headers = {name: environ[key] for key, name in _FROM_ENVIRON if key in environ}
        reader = self.registry.reader(environ["REQUEST_METHOD"], headers)
        response = reader.refusal
        if response is None:
            declared = reader.declared
            try:
                body = environ["wsgi.input"].read(reader.read_limit if declared is None else declared)
            except OSError as exc:  # a body the server cannot decode (pywsgi: bad chunked encoding)
                response = error_response(BadRequest(f"unreadable body: {exc}"), close=True)
            else:
                response = reader.finish(body)
        assert response is not None  # finish() answers whatever was not refused
        start_response(response.status_line, list(response.header_pairs))
        return [response.body]
