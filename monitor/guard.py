"""Which addresses may be fetched, checked on the resolved address at connect time.

"Internal" means loopback, RFC 1918, link-local (cloud metadata), CGNAT, ULA, site-local,
unspecified, multicast, reserved, documentation and benchmarking blocks, the rest of the IANA
special-purpose registries that is not globally reachable, and IPv6 forms that embed an internal
IPv4 address (IPv4-mapped, NAT64, 6to4). The
check runs inside the HTTP connection itself (``GuardedBackend.connect_tcp``): the host is
resolved once, every answer checked, and the socket opened to the checked address, so no spelling
(``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]``) and no DNS rebinding gets through.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpcore
from httpcore._backends.sync import SyncBackend

from monitor.errors import BlockedAddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# The IANA special-purpose registries (IPv4 and IPv6), written out so the answer does not depend
# on the Python version (``ipaddress.is_global`` changed in 3.11.10, 3.12.4 and 3.13). Every
# block that is not globally reachable, or that reaches something local, is internal.
_INTERNAL_V4 = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the host itself
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
    "100.64.0.0/10",  # CGNAT (shared address space)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local: cloud metadata (169.254.169.254)
    "192.0.0.0/24",  # IETF protocol assignments (DS-Lite, NAT64 discovery, PCP...)
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relay anycast (deprecated): whichever relay is nearest
    "198.18.0.0/15",  # benchmarking
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255 (broadcast)
))
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")  # outside it, nothing is public (fec0::/10
# site-local, fc00::/7 ULA, fe80::/10 link-local, ff00::/8 multicast, 100::/64 discard, ::1...)
_INTERNAL_V6 = tuple(ipaddress.IPv6Network(n) for n in (
    "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) and benchmarking among them
    "2001:db8::/32", "3fff::/20",  # documentation
))
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")  # IPv4-mapped: the IPv4 address itself
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix: to the IPv4 address
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")  # 6to4: via the IPv4 address


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_internal(ip: IPAddress) -> bool:
    """Whether ``ip`` may reach this host or its networks: every IPv4 block of the IANA
    special-purpose registry that is not globally reachable; in IPv6 everything outside global
    unicast (2000::/3) and the special blocks inside it; and the IPv6 forms that carry an IPv4
    address (IPv4-mapped, NAT64's 64:ff9b::/96, 6to4) as that address is."""
    if isinstance(ip, ipaddress.IPv4Address):
        return any(ip in net for net in _INTERNAL_V4)
    if ip in _MAPPED or ip in _NAT64:
        return is_internal(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in _SIX_TO_FOUR:
        return is_internal(ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF))
    return ip not in _GLOBAL_UNICAST or any(ip in net for net in _INTERNAL_V6)


@dataclass(frozen=True)
class AddressPolicy:
    allow_private: bool = False
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, allow_private: bool, allowed_hosts: Iterable[str]) -> AddressPolicy:
        return cls(allow_private, frozenset(h.strip().lower() for h in allowed_hosts))

    def host_opened(self, host: str, port: int) -> bool:
        """Entries are "host", "host:port" or "[v6]:port", compared case-insensitively."""
        host = host.lower().strip("[]")
        spellings = {host, f"{host}:{port}", f"[{host}]", f"[{host}]:{port}"}
        return self.allow_private or not spellings.isdisjoint(self.allowed_hosts)

    def check(self, host: str, port: int, addresses: list[str]) -> str:
        """Return the first address we may connect to, or raise BlockedAddress."""
        if not addresses:
            raise BlockedAddress(f"{host} did not resolve to any address")
        opened = self.host_opened(host, port)
        for raw in addresses:
            ip = ipaddress.ip_address(raw.split("%", 1)[0])
            if is_internal(ip) and not opened:
                raise BlockedAddress(
                    f"refused {host}:{port}: resolves to internal address {ip} "
                    f"(allow it with fetch.allowed_hosts)"
                )
        return addresses[0]


_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux


class _QuickAck(httpcore.NetworkStream):
    """A connection that acknowledges what it receives at once (TCP_QUICKACK, re-armed at every
    read and write, as the kernel drops it). A server that writes a response's head and body
    separately without TCP_NODELAY (Python's http.server, among others) otherwise waits for our
    delayed ACK before sending the body: 40 ms on every reused keep-alive connection."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    def _arm(self) -> None:
        if self._socket is not None and _TCP_QUICKACK is not None:
            with contextlib.suppress(OSError):
                self._socket.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max_bytes, timeout)
        self._arm()
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._arm()
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _QuickAck(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore network backend that resolves, checks and connects to the checked address."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self.resolver = resolver
        self._inner = SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            addresses = self.resolver(host, port)
        except (OSError, UnicodeError) as e:
            raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from e
        address = self.policy.check(host, port, addresses)
        stream = self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
        return _QuickAck(stream) if _TCP_QUICKACK is not None else stream

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise BlockedAddress("unix sockets are never fetched")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)
