"""Which webhook URLs an instance may register and a publisher may call.

A registry is shared data: anything that can write to the store can make every
publisher POST to the URL it wrote. By default only plain ``http``/``https``
URLs without credentials are allowed, and never link-local addresses
(169.254.0.0/16, fe80::/10), where cloud metadata services live. Loopback and
private ranges stay allowed: that is where instances normally are.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from .errors import TransportError

__all__ = ["Origin", "UrlPolicy", "split_target"]

#: (scheme, host, port): what publishers pool keep-alive connections by.
Origin = tuple[str, str, int]


@dataclass(frozen=True)
class UrlPolicy:
    """Rules for webhook URLs; ``UrlPolicy(allow_link_local=True)`` relaxes one."""

    schemes: frozenset[str] = frozenset({"http", "https"})
    allow_credentials: bool = False
    allow_link_local: bool = False

    def refusal(self, url: str) -> str | None:
        """Why *url* is refused, or None if it is acceptable."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            return f"refused by URL policy: malformed URL ({exc})"
        if parts.scheme.lower() not in self.schemes:
            return f"refused by URL policy: scheme {parts.scheme!r} is not one of {sorted(self.schemes)}"
        if not host:
            return "refused by URL policy: no host"
        if (parts.username or parts.password) and not self.allow_credentials:
            return "refused by URL policy: URLs with credentials are not allowed"
        if not self.allow_link_local:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                address = None
            if address is not None and address.is_link_local:
                return f"refused by URL policy: {host} is link-local (cloud metadata lives there)"
        return None


@lru_cache(maxsize=1024)
def split_target(url: str) -> tuple[Origin, str]:
    """*url*'s origin (port made explicit) and request path (with its query).

    Raises :class:`TransportError` for anything but an http(s) URL with a host
    (publishers call it where a failed send is reported). Cached: a publisher
    sends to the same few URLs over and over.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port out of range, say
        raise TransportError("error", f"cannot POST to {url!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransportError("error", f"cannot POST to {url!r}: not an http(s) URL with a host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, port), path
