"""Whose address a client counts against: one rule for STOMP sessions
(``--max-connections-per-ip``), the REST rate limits per client IP and the cap on seats held per
client IP.

A peer in ``--trusted-proxies`` is a reverse proxy, and the client is the address it forwards in
``X-Real-IP`` (the compose nginx sets it on every request; ingress-nginx does by default). A
trusted proxy that forwards none (STOMP/TCP through nginx's stream module) is not a client: the
address is ``None``, and each caller says what that means (no per-address cap: the proxy caps
its clients itself). Anyone else's ``X-Real-IP`` is ignored: a client cannot pick its bucket. An
IPv6 client counts by its /64, the block one subscriber line gets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from server.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The header a trusted proxy names the client in.
FORWARDED_HEADER = "X-Real-IP"


class ClientAddresses:
    def __init__(self, proxies: Sequence[IPNetwork]) -> None:
        self._proxies = tuple(proxies)

    def resolve(self, peer: str | None, forwarded: str | None = None) -> str | None:
        """The address a connection from ``peer`` (forwarding ``forwarded``) counts against."""
        peer_ip = _ip(peer)
        if peer_ip is None:
            return peer
        if any(peer_ip in network for network in self._proxies):
            client = _ip(forwarded.strip()) if forwarded else None
            return None if client is None else _address_key(client)
        return _address_key(peer_ip)


def _ip(text: str | None) -> IPAddress | None:
    """``text`` as an address (an IPv4-mapped IPv6 address as IPv4), or ``None``."""
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _address_key(ip: IPAddress) -> str:
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
