"""The `no_network` fixture: any attempt to reach a machine other than this one fails the test loudly.

Loopback (127.0.0.0/8, ::1, localhost) and local sockets (AF_UNIX) stay allowed, so test servers on
127.0.0.1, Qt and subprocess pipes keep working. Use it with
``pytestmark = pytest.mark.usefixtures("no_network")`` after ``from tests.support.network_guard import no_network``.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest


class NetworkAccessBlocked(RuntimeError):
    """Not an OSError on purpose: HTTP clients turn OSErrors into retries and quiet failures."""


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def no_network(monkeypatch):
    """Yields the list of blocked attempts (host, port) so a test can also assert that none was made."""
    attempts: list[tuple[object, object]] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            attempts.append((address[0], address[1]))
            raise NetworkAccessBlocked(f"a test tried to connect to {address[0]}:{address[1]}")

    def connect(self, address):
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, port, *args, **kwargs):
        # Resolving a public name is already a network access (a DNS query).
        if host is not None and not _is_loopback(host if isinstance(host, str) else host.decode()):
            attempts.append((host, port))
            raise NetworkAccessBlocked(f"a test tried to resolve {host}")
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
