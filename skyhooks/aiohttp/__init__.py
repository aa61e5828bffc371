"""skyhooks for aiohttp: ``WebhookHandler``, and the asyncio ``Registry`` and ``Publisher``.

>>> registry = Registry(url="http://10.0.0.5:8000/skyhooks", store="sqlite:////var/lib/app/hooks.db",
...                     secret="whsec_...")
>>> app.router.add_route("*", "/skyhooks", WebhookHandler(registry))
>>> registry.start()                                  # e.g. in app.on_startup, on the running loop
>>> await registry.register({"account_id": 42}, on_message)

``Registry`` and ``Publisher`` are :mod:`skyhooks.asyncio`'s, which sends with aiohttp already.
"""

from __future__ import annotations

try:
    import aiohttp  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a process without aiohttp
    raise ImportError("skyhooks.aiohttp needs aiohttp: pip install 'skyhooks[aiohttp]'") from exc

from ..asyncio import Publisher, Registry
from ._handler import WebhookHandler

__all__ = ["Publisher", "Registry", "WebhookHandler"]
