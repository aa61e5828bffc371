"""The webhook endpoint as a twisted.web resource, and the request that refuses big bodies early."""
# mypy: allow-untyped-calls
# (much of twisted.web and treq is unannotated)

from __future__ import annotations

import os
from io import BytesIO
from typing import Any, BinaryIO, cast
from urllib.parse import unquote_to_bytes

from twisted.internet.interfaces import ITransport
from twisted.web.http import RESPONSES
from twisted.web.resource import Resource
from twisted.web.server import Request

from ..core.protocol import Response
from ..core.registry import BaseRegistry

__all__ = ["WebhookRequest", "WebhookResource"]


class WebhookResource(Resource):
    """Answers webhook requests at the path it is mounted at, for any method.

    ``root.putChild(b"skyhooks", WebhookResource(registry))``, served by
    ``Site(root, requestFactory=WebhookRequest)``.

    twisted.web reads a whole body before rendering, spooling any of 100 kB
    or more to a temporary file, so memory is never at risk and this resource
    reads at most ``registry.max_body_size`` of it. With :class:`WebhookRequest`
    as the site's request factory, a declared ``Content-Length`` over the limit
    is answered 413 from the headers, and the body is discarded unread; without
    it (or for a chunked body) the 413 comes once the body is in.
    """

    isLeaf = True

    def __init__(self, registry: BaseRegistry[Any]) -> None:
        super().__init__()
        self.registry = registry

    def render(self, request: Request) -> bytes:
        content = cast(BinaryIO, request.content)  # twisted.web sets it before rendering
        size = content.seek(0, os.SEEK_END)
        response = self.registry.refuse_size(size)
        if response is None:
            content.seek(0)
            headers = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in request.getAllHeaders().items()
            }
            response = self.registry.handle_request(request.method.decode("latin-1"), headers, content.read())
        request.setResponseCode(response.status)
        for name, value in response.headers.items():
            request.setHeader(name, value)
        return response.body


class WebhookRequest(Request):
    """A twisted.web ``Request`` that answers 413 as soon as the headers of a
    request for a :class:`WebhookResource` declare a body over its limit."""

    _refused = False

    def gotLength(self, length: int | None) -> None:
        registry = _webhook_registry(self)
        refusal = registry.refuse_size(length) if registry is not None else None
        if refusal is None:
            super().gotLength(length)
            return
        self._refused = True
        self.content = BytesIO()  # stays empty: twisted.web still expects a file here
        # After a final answer, the channel must not invite the body with "100 Continue".
        self.requestHeaders.removeHeader(b"Expect")
        cast(ITransport, self.channel.transport).write(_raw(refusal))

    def handleContentChunk(self, data: bytes) -> None:
        if not self._refused:  # a refused body is dropped as it arrives, never stored
            super().handleContentChunk(data)

    def process(self) -> None:
        if self._refused:
            # Closing only now that the body is in, not right after answering,
            # keeps the kernel from resetting the connection over unread bytes
            # before the client has read its 413.
            self.channel.loseConnection()
        else:
            super().process()


def _webhook_registry(request: Request) -> BaseRegistry[Any] | None:
    """The registry of the WebhookResource the request is for, if putChild reaches it.

    twisted.web has not parsed the request's path yet when its length is known;
    only the channel has it, so this walks the site's static children (never
    user code, unlike getChild) along the raw path.
    """
    path = getattr(request.channel, "_path", None)
    site = getattr(request.channel, "site", None)
    if path is None or site is None:
        return None
    resource = site.resource
    for segment in path.split(b"?", 1)[0][1:].split(b"/"):
        if isinstance(resource, WebhookResource) or getattr(resource, "isLeaf", True):
            break
        resource = getattr(resource, "children", {}).get(unquote_to_bytes(segment))
    return resource.registry if isinstance(resource, WebhookResource) else None


def _raw(response: Response) -> bytes:
    head = [f"HTTP/1.1 {response.status} {RESPONSES[response.status].decode()}"]
    head += [f"{name}: {value}" for name, value in response.headers.items()]
    head += [f"Content-Length: {len(response.body)}", "Connection: close", "", ""]
    return "\r\n".join(head).encode("latin-1") + response.body
