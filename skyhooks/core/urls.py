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
from urllib.parse import urlsplit, urlunsplit

__all__ = ["UrlPolicy", "shown_url"]


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


def shown_url(url: str) -> str:
    """*url* as it is safe to print or log: a password in it becomes ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.split("@")[-1] if "@" in url else url  # malformed: at least never its userinfo
    if password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
