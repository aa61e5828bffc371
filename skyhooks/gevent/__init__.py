"""skyhooks for gevent: ``Registry``, ``WebhookApp`` (WSGI), ``Publisher``, ``WSGIServer``.

Patch first, before any other import (this one included)::

    from gevent import monkey
    monkey.patch_all()

    from skyhooks.gevent import Registry, WebhookApp, WSGIServer

    registry = Registry("http://10.0.0.5:8001/skyhooks", "sqlite:////var/lib/app/hooks.db", "whsec_...")
    WSGIServer(("0.0.0.0", 8001), WebhookApp(registry)).start()   # or mount it in your WSGI app
    registry.start()

Imported unpatched, this raises ``RuntimeError``, unless ``SKYHOOKS_GEVENT_UNPATCHED=1`` says it is on
purpose: store calls then go to gevent's thread pool, the client and server use gevent's own sockets.
"""

import os

try:
    import gevent.monkey
    import geventhttpclient  # noqa: F401 - the Publisher's client
except ImportError as exc:  # pragma: no cover - exercised by tests/test_imports.py
    raise ImportError("skyhooks.gevent needs gevent: pip install 'skyhooks[gevent]'") from exc

if not gevent.monkey.is_module_patched("socket") and os.environ.get("SKYHOOKS_GEVENT_UNPATCHED") != "1":
    raise RuntimeError(
        "skyhooks.gevent was imported into a process whose socket module is not monkey-patched: call "
        "`from gevent import monkey; monkey.patch_all()` first thing in your program, before any other "
        "import (or set SKYHOOKS_GEVENT_UNPATCHED=1 if you run gevent unpatched on purpose)"
    )

# Only now that the process is known to be patched.
from ..wsgi import WebhookWSGI as WebhookApp
from ._publisher import Publisher
from ._registry import Registry, WSGIServer

__all__ = ["Publisher", "Registry", "WSGIServer", "WebhookApp"]
