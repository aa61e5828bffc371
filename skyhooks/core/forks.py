"""What a forked child must not take over from its parent.

``fork()`` copies memory but only the thread that called it: in the child, a
lock another thread held stays locked for ever, a thread pool's workers and an
event loop's thread are gone though the objects still count them, and a
kept-alive socket is shared with the parent, so the two would read each
other's replies. Celery's prefork pool, gunicorn's ``--preload`` and
``multiprocessing`` all fork processes that go on using objects made before.

An object that holds such state calls :func:`reset_in_child` once, when it is
made; in every child forked later, its ``_after_fork()`` runs first thing
(``os.register_at_fork``), before any code of the child's can use it. It must
only make new locks and forget state: the child is single-threaded then, and
gevent's hub may not be ready yet, so nothing there may block or do I/O.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Protocol

__all__ = ["reset_in_child"]

log = logging.getLogger("skyhooks")


class ResetInChild(Protocol):
    def _after_fork(self) -> None: ...


# By id rather than in a WeakSet, which would need the objects hashable (a
# user's store subclass may define __eq__ and so lose its __hash__).
_OBJECTS: dict[int, weakref.ref[ResetInChild]] = {}


def reset_in_child(obj: ResetInChild) -> None:
    """Have ``obj._after_fork()`` run in every child forked from now on (held weakly)."""
    key = id(obj)

    def forget(ref: weakref.ref[ResetInChild]) -> None:
        if _OBJECTS.get(key) is ref:  # (not a newer object's, given the same id)
            del _OBJECTS[key]

    _OBJECTS[key] = weakref.ref(obj, forget)


def _in_child() -> None:
    for ref in list(_OBJECTS.values()):
        obj = ref()
        if obj is None:
            continue
        try:
            obj._after_fork()  # noqa: SLF001 - skyhooks' own hook, on its own objects
        except Exception:  # one object's trouble must not leave the others as they were
            log.exception("resetting %r in a forked child failed", obj)


if hasattr(os, "register_at_fork"):  # (not on Windows, which cannot fork)
    os.register_at_fork(after_in_child=_in_child)
