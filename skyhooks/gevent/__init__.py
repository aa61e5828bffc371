"""skyhooks for gevent: ``Registry``, ``WebhookApp`` (WSGI), ``Publisher``, ``WSGIServer``.

gevent only works if it replaces the blocking standard library before anything
else imports it, so the first lines of your program (before any other import,
including this one) must be::

    from gevent import monkey
    monkey.patch_all()

    from skyhooks.gevent import Publisher, Registry, WebhookApp, WSGIServer

    registry = Registry(url="http://10.0.0.5:8001/skyhooks", store="sqlite:////var/lib/app/hooks.db",
                        secret="whsec_...")
    WSGIServer(("0.0.0.0", 8001), WebhookApp(registry)).start()   # or mount it in your WSGI app
    registry.start()

Importing this module into a process whose ``socket`` module is not patched
raises ``RuntimeError``: it nearly always means ``patch_all()`` came too late
(after this import or after something that imported ``ssl``), which breaks in
subtle ways later. A program that deliberately runs gevent without
monkey-patching may set ``SKYHOOKS_GEVENT_UNPATCHED=1`` in its environment:
skyhooks then runs every store call in gevent's thread pool, and nothing of
skyhooks blocks the hub (its HTTP server and client use gevent's own sockets).
"""

from __future__ import annotations

import os

try:
    import gevent.monkey
except ImportError as exc:  # pragma: no cover - exercised by tests/test_imports.py
    raise ImportError("skyhooks.gevent needs gevent: pip install 'skyhooks[gevent]'") from exc

#: Set to "1" to use skyhooks.gevent in a process that is not monkey-patched on purpose.
UNPATCHED_ENV = "SKYHOOKS_GEVENT_UNPATCHED"

if not gevent.monkey.is_module_patched("socket") and os.environ.get(UNPATCHED_ENV) != "1":
    raise RuntimeError(
        "skyhooks.gevent was imported into a process whose socket module is not monkey-patched: "
        "call `from gevent import monkey; monkey.patch_all()` first thing in your program, before "
        f"any other import (or set {UNPATCHED_ENV}=1 if you run gevent unpatched on purpose)"
    )

from ._publisher import Publisher  # noqa: E402 - only once the process is known to be patched
from ._registry import Registry  # noqa: E402
from ._wsgi import WebhookApp, WSGIServer  # noqa: E402

__all__ = ["Publisher", "Registry", "WSGIServer", "WebhookApp"]
