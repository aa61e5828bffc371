"""The asyncio publisher's transport: aiohttp's ``ClientSession``, measured against
httpx's ``AsyncClient`` and chosen by the figures (``docs/asyncio-client.md``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
from zope.interface import implementer

from ..core.delivery import HTTPResult, ITransport, transport_errors
from ..core.errors import TransportError
from ..core.forks import reset_in_child

__all__ = ["AiohttpTransport"]

#: A skyhooks reply is a few dozen bytes: a longer one is refused, not buffered.
MAX_REPLY = 1024 * 1024

# First match wins: a connect timeout is a ServerTimeoutError, and both are ClientErrors.
_KINDS: dict[type[BaseException], str] = {
    asyncio.TimeoutError: "timeout",  # (TimeoutError itself from Python 3.11 on)
    aiohttp.ClientError: "error",
    OSError: "error",
    ValueError: "error",  # a header aiohttp will not send (a line break in it)
}


@implementer(ITransport)
class AiohttpTransport:
    """POSTs through one ``aiohttp.ClientSession``, made on the running loop at
    the first ``post`` (anew on each new loop), with at most *limit*
    connections, kept alive. No redirects, and one retry only: a request the
    instance closed the connection on before any reply (most often a kept-alive
    connection it let go while idle) goes once more; receivers drop a
    ``webhook-id`` they have seen, so a resend is safe. The rest is the core's."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: set[asyncio.Future[None]] = set()
        self._inherited: list[aiohttp.ClientSession | None] = []
        reset_in_child(self)

    def _after_fork(self) -> None:
        # Forgotten, never closed nor collected (which closes too): its connections are the
        # parent's as well, registered in the parent's loop's epoll, which the child shares.
        self._inherited.append(self._session)
        self._session = self._loop = None

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> HTTPResult:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop:  # a session works on its own loop only
            self.close()
            connector = aiohttp.TCPConnector(limit=self.limit)
            self._session, self._loop = aiohttp.ClientSession(connector=connector, trust_env=False), loop
        with transport_errors(_KINDS):
            try:
                try:
                    return await self._post(self._session, url, headers, body, timeout)
                except aiohttp.ServerDisconnectedError:  # closed unanswered: once more, on a new connection
                    return await self._post(self._session, url, headers, body, timeout)
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, ConnectionRefusedError):
                    raise TransportError("refused", str(exc)) from exc
                raise

    @staticmethod
    async def _post(
        session: aiohttp.ClientSession, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> HTTPResult:
        limit = aiohttp.ClientTimeout(total=timeout)
        post = session.post(url, data=body, headers=headers, allow_redirects=False, timeout=limit)
        async with post as response:
            return HTTPResult(response.status, response.headers, await _read(response))

    async def aclose(self) -> None:
        """Close the session and wait until its connections are closed (on its loop)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def close(self) -> None:
        """Close the session without waiting: on its loop, where one runs; else by running
        a loop until it is closed."""
        session, loop, self._session = self._session, self._loop, None
        if session is None or loop is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop.is_closed():  # its connections ended with their loop: any loop can mark it closed
            loop = running
        if loop is None:
            asyncio.run(session.close())
        elif loop is running:
            task = loop.create_task(session.close())
            self._closing.add(task)  # (the loop holds tasks weakly)
            task.add_done_callback(self._closing.discard)
        elif loop.is_running():  # another thread's
            asyncio.run_coroutine_threadsafe(session.close(), loop)
        else:
            loop.run_until_complete(session.close())


async def _read(response: aiohttp.ClientResponse) -> bytes:
    if response.content_length is not None and response.content_length <= MAX_REPLY:
        return await response.read()
    data = bytearray()
    async for chunk in response.content.iter_any():  # declared too long, or not at all: up to the limit
        data += chunk
        if len(data) > MAX_REPLY:
            response.close()  # (unread: the connection cannot be reused)
            raise TransportError("error", f"a reply over {MAX_REPLY} bytes from {response.url}")
    return bytes(data)
