"""skyhooks for Twisted: ``Registry``, ``WebhookResource`` (a twisted.web resource; with
``WebhookRequest`` for early 413s) and ``Publisher`` (treq), all speaking Deferreds."""

try:
    import treq  # noqa: F401
    import twisted.web  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by tests/test_imports.py
    raise ImportError("skyhooks.twisted needs twisted: pip install 'skyhooks[twisted]'") from exc

from ._publisher import Publisher
from ._registry import Registry, WebhookRequest, WebhookResource

__all__ = ["Publisher", "Registry", "WebhookRequest", "WebhookResource"]
