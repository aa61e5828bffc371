"""skyhooks on a plain asyncio loop: ``Registry`` and an async ``Publisher``.

Tornado builds on these (its IOLoop runs on asyncio); they need nothing but the
standard library. ``Publisher`` has no HTTP client of its own yet: give it a
``transport=``, or use :class:`skyhooks.tornado.Publisher`.

>>> registry = Registry(url="http://10.0.0.5:8001/skyhooks", store="sqlite:////var/lib/app/hooks.db",
...                     secret="whsec_...")
>>> registry.start()                                  # on the running loop
>>> await registry.register({"account_id": 42}, on_message)
"""

from ._publisher import Publisher
from ._registry import Registry

__all__ = ["Publisher", "Registry"]
