"""skyhooks on asyncio: ``Registry``, ``WebhookASGI`` (any ASGI 3 server), and ``Publisher``, which
sends with aiohttp (``skyhooks[asyncio]``). Tornado builds on them (its IOLoop is asyncio's)."""

from ._asgi import WebhookASGI
from ._publisher import Publisher
from ._registry import Registry

__all__ = ["Publisher", "Registry", "WebhookASGI"]
