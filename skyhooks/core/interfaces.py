"""The seams of skyhooks, as zope.interface interfaces.

Methods are documented the zope way (no ``self``). Implementations declare
themselves with ``@implementer(IHookStore)``; the contract suite checks every one
with ``verifyObject``.
"""

from __future__ import annotations

# zope.interface's method definitions have no "self" and no bodies; mypy-zope
# understands them, plain mypy needs these ignores.
from zope.interface import Interface

__all__ = ["IHookStore"]


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

    def purge():  # type: ignore[no-untyped-def]
        """Delete expired subscriptions; return how many were deleted."""

    def subscriptions(topics=None):  # type: ignore[no-untyped-def]
        """Return the unexpired ``Subscription`` rows (all, or those for *topics*),
        sorted by url then topic, for operators and tools."""

    def close():  # type: ignore[no-untyped-def]
        """Release connections. The store may not be used afterwards."""
