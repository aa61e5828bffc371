"""Running blocking store calls from greenlets without stalling the hub."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import gevent
from gevent import monkey

from ..core.stores.sqlite import SQLiteStore

T = TypeVar("T")
StoreCaller = Callable[[Callable[[], T]], T]


def store_caller(store: Any) -> StoreCaller[Any]:
    """How to run *store*'s calls so that only the calling greenlet waits.

    With ``socket`` patched, pure-Python drivers (pymongo, and most user
    stores) already yield to the hub on I/O, and must stay in the hub's thread:
    their sockets and locks are gevent's, bound to this hub, so running them
    in a native thread would break them. sqlite3 is C that blocks the whole
    thread (up to its busy timeout on a locked file), so it always goes to
    gevent's thread pool; so does every store in an unpatched process, where
    drivers use native sockets and locks and are thread-safe as promised.
    """
    if monkey.is_module_patched("socket") and not isinstance(store, SQLiteStore):
        return _inline
    return _in_threadpool


def _inline(fn: Callable[[], T]) -> T:
    return fn()


def _in_threadpool(fn: Callable[[], T]) -> T:
    # apply() parks this greenlet on an AsyncResult that the worker thread
    # completes through the hub, so whatever follows runs in the hub's thread.
    return gevent.get_hub().threadpool.apply(fn)  # type: ignore[no-any-return]


def in_hub() -> bool:
    """True when running in the hub greenlet itself, where nothing may block."""
    return gevent.getcurrent() is gevent.get_hub()
