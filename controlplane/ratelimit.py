"""Login rate limit: failed attempts counted per username + client address.

After FERRY_LOGIN_MAX_ATTEMPTS failures within FERRY_LOGIN_WINDOW seconds
(a fixed window that starts at the first failure) further attempts for that
pair are refused without checking the password, until the window expires.
The counter lives in the cache (Redis in production) so every web worker
sees it; a successful login clears it.
"""

import hashlib

from django.conf import settings
from django.core.cache import cache

KEY_PREFIX = "ferry:login-failures:"


def client_address(request) -> str:
    """The client's address, seen through FERRY_TRUSTED_PROXIES proxies.

    Behind N proxies of our own, each appends the address it saw to
    X-Forwarded-For, so the client is the N-th entry from the right; entries
    further left were written by the client and prove nothing. With no
    trusted proxy (the default) the header is ignored: anyone can send it.
    """
    if request is None:
        return "unknown"
    peer = request.META.get("REMOTE_ADDR") or "unknown"
    proxies = settings.FERRY_TRUSTED_PROXIES
    if proxies <= 0:
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    return hops[-proxies] if len(hops) >= proxies else peer


def _key(username: str, address: str) -> str:
    # Hash so that arbitrary user input never forms a raw cache key.
    raw = f"{(username or '').strip().lower()}|{address}"
    return KEY_PREFIX + hashlib.sha256(raw.encode()).hexdigest()


def login_failures(username: str, address: str) -> int:
    return int(cache.get(_key(username, address)) or 0)


def login_blocked(username: str, address: str) -> bool:
    return login_failures(username, address) >= settings.FERRY_LOGIN_MAX_ATTEMPTS


def login_failed(username: str, address: str) -> int:
    """Count one failure; return the count within the current window."""
    key = _key(username, address)
    if cache.add(key, 1, timeout=settings.FERRY_LOGIN_WINDOW):
        return 1
    try:
        return cache.incr(key)  # keeps the window's expiry
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.FERRY_LOGIN_WINDOW)
        return 1


def login_succeeded(username: str, address: str) -> None:
    cache.delete(_key(username, address))
