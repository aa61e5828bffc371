"""skyhooks for Tornado: ``Registry``, the endpoint (``WebhookDelegate``, or
``WebhookHandler`` as a ``RequestHandler``) and an async ``Publisher``.

>>> registry = Registry(url="http://10.0.0.5:8001/skyhooks", store="sqlite:////var/lib/app/hooks.db",
...                     secret="whsec_...")
>>> app = tornado.web.Application([(r"/skyhooks", WebhookDelegate(registry))])
>>> registry.start()
>>> await registry.register({"account_id": 42}, on_message)

``Registry`` is :class:`skyhooks.asyncio.Registry`: Tornado's IOLoop runs on asyncio.
"""

from __future__ import annotations

try:
    import tornado  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a process without tornado
    raise ImportError("skyhooks.tornado needs tornado: pip install 'skyhooks[tornado]'") from exc

from ..asyncio import Registry
from ._delegate import WebhookDelegate
from ._handler import WebhookHandler
from ._publisher import Publisher

__all__ = ["Publisher", "Registry", "WebhookDelegate", "WebhookHandler"]
