"""The client's address, the one way every part of the platform reads it (login lockout, API throttles, logs).

``X-Forwarded-For`` is whatever the client sent, plus one address appended by each proxy it passed. Only the
entries appended by our own proxies can be trusted, so the client is the address seen by the outermost trusted
proxy: the ``TRUSTED_PROXY_COUNT``-th entry from the right. With no trusted proxy (the default) the header is
ignored and the socket's peer (``REMOTE_ADDR``) is the client, so a forged header can neither dodge a lockout nor
spread one person's requests over many throttle buckets.
"""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The address of the client that sent ``request``, trusting ``TRUSTED_PROXY_COUNT`` proxies in front of us."""
    remote = request.META.get("REMOTE_ADDR", "")
    trusted_proxies = settings.TRUSTED_PROXY_COUNT
    if trusted_proxies <= 0:
        return remote
    forwarded = [address.strip() for address in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [address for address in forwarded if address]
    if not forwarded:
        return remote
    return forwarded[-min(trusted_proxies, len(forwarded))]
