"""Reverse proxies: believe X-Forwarded-For and X-Forwarded-Proto only from the configured proxy
addresses, and remember that the request came through one (proxy header sign-in needs that).
uvicorn's own proxy handling is switched off (`mailagent web`): it trusts 127.0.0.1 by default."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

VIA_PROXY = "mailagent.via_proxy"       # scope key: the address of the trusted proxy that sent it

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(items: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def trusted(address: str | None, among: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in net for net in among)


def client_address(forwarded_for: str, among: Sequence[Network]) -> str | None:
    """The nearest address in X-Forwarded-For that is not one of our proxies (the rightmost ones
    were added by our proxies; anything further left was written by the client)."""
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not trusted(hop, among):
            return hop if _is_ip(hop) else None
    return hops[0] if hops and _is_ip(hops[0]) else None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class TrustedProxies:
    def __init__(self, app: ASGIApp, proxies: Sequence[str]) -> None:
        self.app = app
        self.networks = networks(proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = (scope.get("client") or (None, 0))[0]
        if scope["type"] == "http" and trusted(peer, self.networks):
            scope = dict(scope)
            scope[VIA_PROXY] = peer
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if forwarded := client_address(headers.get("x-forwarded-for", ""), self.networks):
                scope["client"] = (forwarded, 0)
            proto = headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
            if proto in ("http", "https"):
                scope["scheme"] = proto
        await self.app(scope, receive, send)
