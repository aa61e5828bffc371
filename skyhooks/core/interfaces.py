"""The seams of skyhooks, as zope.interface interfaces.

Methods are documented the zope way (no ``self``). Implementations declare
themselves with ``@implementer(IHookStore)``; the contract suite checks every one
with ``verifyObject``.
"""

from __future__ import annotations

# zope.interface's method definitions have no "self" and no bodies; mypy-zope
# understands them, plain mypy needs these ignores.
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from .keys import Topic
    from .values import Subscription

__all__ = ["HookStore", "IHookStore"]


class IHookStore(Interface):
    """Where instances publish which topics they listen for, and publishers look.

    Every method is blocking and thread-safe; adapters call them off their event
    loop. Every method raises :class:`skyhooks.StoreError` (chained to the driver's
    exception) when the store cannot be reached or refuses the operation, and
    nothing else on purpose. Expired rows are invisible to :meth:`lookup` and
    :meth:`subscriptions` whether or not :meth:`purge` has run.

    Example::

        store.add("http://10.0.0.5:8001/skyhooks", {Topic("account_id", "42")}, ttl=90)
        store.lookup({Topic("account_id", "42")})
        # -> {"http://10.0.0.5:8001/skyhooks": frozenset({Topic("account_id", "42")})}
    """

    def add(url, topics, ttl):  # type: ignore[no-untyped-def]
        """Subscribe *url* to each of *topics* (an iterable of ``Topic``) for *ttl*
        seconds from now, creating or refreshing each subscription. Idempotent."""

    def remove(url, topics):  # type: ignore[no-untyped-def]
        """Unsubscribe *url* from each of *topics*; topics it lacks are ignored."""

    def remove_url(url):  # type: ignore[no-untyped-def]
        """Remove every subscription of *url*; return how many were removed."""

    def renew(url, topics, ttl):  # type: ignore[no-untyped-def]
        """Make *url*'s subscriptions exactly *topics*, each expiring *ttl* seconds
        from now: refreshes the ones present, re-adds lost ones (so a store that
        was wiped heals) and drops ones *url* no longer listens for."""

    def lookup(topics):  # type: ignore[no-untyped-def]
        """Return ``{url: frozenset(matching topics)}`` for the unexpired
        subscriptions to any of *topics*; an empty dict when nobody listens."""

    def lookup_nowait(topics):  # type: ignore[no-untyped-def]
        """:meth:`lookup`'s answer if it can be had without waiting (on a lock,
        a socket, a disk), else raise :class:`skyhooks.core.errors.WouldBlock`.
        Event loops try it in place before handing :meth:`lookup` to a thread.
        A store that never answers at once simply always raises ``WouldBlock``."""

    blocks_natively = Attribute(
        """True when a call may block its whole OS thread in C code, out of reach
        of gevent's monkey-patching (sqlite3): gevent then runs it in a thread
        pool. False when its waiting is on sockets and locks (pymongo, redis-py,
        memory), which patching makes cooperative, so it runs in the greenlet."""
    )

    def purge():  # type: ignore[no-untyped-def]
        """Delete expired subscriptions; return how many were deleted."""

    def subscriptions(topics=None):  # type: ignore[no-untyped-def]
        """Return the unexpired ``Subscription`` rows (all, or those for *topics*),
        sorted by url then topic, for operators and tools."""

    def close():  # type: ignore[no-untyped-def]
        """Release connections. The store may not be used afterwards."""


class HookStore(Protocol):
    """:class:`IHookStore` as a static type, for the core's annotations.

    zope.interface declares and verifies the contract at run time
    (``verifyObject``); mypy reads this. Keep the two in step.
    """

    blocks_natively: bool

    def add(self, url: str, topics: Iterable[Topic], ttl: float) -> None: ...
    def remove(self, url: str, topics: Iterable[Topic]) -> None: ...
    def remove_url(self, url: str) -> int: ...
    def renew(self, url: str, topics: Iterable[Topic], ttl: float) -> None: ...
    def lookup(self, topics: Iterable[Topic]) -> Mapping[str, frozenset[Topic]]: ...
    def lookup_nowait(self, topics: Iterable[Topic]) -> Mapping[str, frozenset[Topic]]: ...
    def purge(self) -> int: ...
    def subscriptions(self, topics: Iterable[Topic] | None = None) -> list[Subscription]: ...
    def close(self) -> None: ...
