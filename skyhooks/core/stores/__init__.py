"""Stores, chosen by URL through an alias table (the kombu way) or passed as objects.

>>> store = open_store("memory://")
>>> open_store(store) is store
True
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any
from urllib.parse import urlsplit

from zope.interface import Invalid
from zope.interface.verify import verifyObject

from ..errors import ConfigurationError
from ..interfaces import HookStore, IHookStore

__all__ = ["STORE_ALIASES", "open_store"]

#: scheme -> "module:Class". Lazy strings, so that choosing SQLite never imports pymongo.
STORE_ALIASES: dict[str, str] = {
    "memory": "skyhooks.core.stores.memory:MemoryStore",
    "sqlite": "skyhooks.core.stores.sqlite:SQLiteStore",
    "mongodb": "skyhooks.core.stores.mongodb:MongoStore",
    "mongodb+srv": "skyhooks.core.stores.mongodb:MongoStore",
    "redis": "skyhooks.core.stores.redis:RedisStore",
    "rediss": "skyhooks.core.stores.redis:RedisStore",
    "redis+cluster": "skyhooks.core.stores.redis:RedisStore",
    "rediss+cluster": "skyhooks.core.stores.redis:RedisStore",
}

#: The pip extra that brings each store's driver.
_EXTRAS = {
    "mongodb": "mongodb",
    "mongodb+srv": "mongodb",
    "redis": "redis",
    "rediss": "redis",
    "redis+cluster": "redis",
    "rediss+cluster": "redis",
}


def open_store(store: Any) -> HookStore:
    """Return an ``IHookStore`` for a store URL, or *store* itself if it provides one.

    Raises :class:`ConfigurationError` for an unknown scheme (suggesting the
    closest known one), a missing driver (naming the extra to install), or an
    object that does not provide ``IHookStore``.
    """
    if not isinstance(store, str):
        if IHookStore.providedBy(store):
            try:
                verifyObject(IHookStore, store)
            except Invalid as exc:
                raise ConfigurationError(f"{store!r} does not keep the IHookStore contract: {exc}") from exc
            return store
        raise ConfigurationError(
            f"{store!r} is not a store: pass a store URL (memory://, sqlite:///path.db, "
            "mongodb://host/db) or an object whose class is declared with "
            "@implementer(skyhooks.core.IHookStore)"
        )
    scheme = urlsplit(store).scheme.lower()
    target = STORE_ALIASES.get(scheme)
    if target is None:
        known = ", ".join(sorted(STORE_ALIASES))
        close = difflib.get_close_matches(scheme, STORE_ALIASES, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        if not scheme:
            raise ConfigurationError(f"store URL {store!r} has no scheme; known stores: {known}")
        raise ConfigurationError(f"No such store {scheme!r}.{hint} Known stores: {known}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _EXTRAS.get(scheme, scheme)
        raise ConfigurationError(
            f"the {scheme} store needs a driver that is not installed ({exc.name or exc}): "
            f"pip install 'skyhooks[{extra}]'"
        ) from exc
    opened: HookStore = getattr(module, class_name).from_url(store)
    return opened
