"""Where the Publisher connects (its own HTTP client, or a treq Agent)."""
# mypy: allow-untyped-calls
# (much of twisted.web and treq is unannotated)

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.web.client import URI, BrowserLikePolicyForHTTPS
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from ..core.urls import Origin

__all__ = ["DirectToAddresses", "endpoint_for"]


@implementer(IAgentEndpointFactory)
class DirectToAddresses:
    """The Agent's usual endpoints, except that IP-literal hosts are dialled directly.

    Twisted's ``HostnameEndpoint`` reports a refused connection only at its
    next attempt tick, 0.3 s later: longer than a short per-attempt timeout,
    which would then report a dead instance (refused, so pruned) as a slow one
    (timeout, kept). Webhook URLs are mostly IP literals; they need no name
    resolution, hence no attempts to race.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._tls = BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        if uri.scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
        origin = (uri.scheme.decode("ascii"), uri.host.decode("ascii").strip("[]"), uri.port)
        return endpoint_for(self._reactor, origin, self._tls)


def endpoint_for(reactor: Any, origin: Origin, tls: Any, timeout: float = 30) -> IStreamClientEndpoint:
    """The endpoint for an (http or https) origin: IP literals dialled directly (see
    :class:`DirectToAddresses`), names through ``HostnameEndpoint``."""
    scheme, host, port = origin
    endpoint: IStreamClientEndpoint
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna")
        endpoint = HostnameEndpoint(reactor, name, port, timeout=timeout)
    else:
        name = host.encode("ascii")
        direct = TCP6ClientEndpoint if address.version == 6 else TCP4ClientEndpoint
        endpoint = direct(reactor, host, port, timeout=timeout)
    if scheme == "https":
        endpoint = wrapClientTLS(tls.creatorForNetloc(name, port), endpoint)
    return endpoint
