"""skyhooks for Twisted: ``Registry``, ``WebhookResource`` (twisted.web) and
``Publisher`` (treq), all speaking Deferreds.

>>> registry = Registry(url="http://10.0.0.5:8001/skyhooks", store="sqlite:////var/lib/app/hooks.db",
...                     secret="whsec_...", ttl=90)
>>> root.putChild(b"skyhooks", WebhookResource(registry))
>>> site = Site(root, requestFactory=WebhookRequest)  # optional: early 413s
>>> registry.start()
>>> registry.stop_on_shutdown()
"""

from __future__ import annotations

try:
    import treq  # noqa: F401
    import twisted.web  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by tests/test_imports.py
    raise ImportError("skyhooks.twisted needs twisted: pip install 'skyhooks[twisted]'") from exc

from ._publisher import Publisher
from ._registry import Registry
from ._resource import WebhookRequest, WebhookResource

__all__ = ["Publisher", "Registry", "WebhookRequest", "WebhookResource"]
