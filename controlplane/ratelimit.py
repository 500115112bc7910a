"""Login rate limit: failed attempts counted per username + client address,
and per client address alone.

After FERRY_LOGIN_MAX_ATTEMPTS failures within FERRY_LOGIN_WINDOW seconds
(a fixed window that starts at the first failure) further attempts for that
pair are refused without checking the password, until the window expires.
An address that fails FERRY_LOGIN_MAX_ATTEMPTS_PER_ADDRESS times in a window,
whatever the user names, is refused for every user: trying many names from
one place is guessing too. The counters live in the cache (Redis in
production) so every web worker sees them; a successful login clears the
pair's count only (one working account must not reset an address's).
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


def _key(username: str | None, address: str) -> str:
    # Hash so that arbitrary user input never forms a raw cache key.
    if username is None:
        return KEY_PREFIX + "address:" + hashlib.sha256(address.encode()).hexdigest()
    raw = f"{(username or '').strip().lower()}|{address}"
    return KEY_PREFIX + hashlib.sha256(raw.encode()).hexdigest()


def login_failures(username: str | None, address: str) -> int:
    """Failures in the window for the pair (username None: the address)."""
    return int(cache.get(_key(username, address)) or 0)


def login_block(username: str, address: str) -> str | None:
    """Why the next attempt is refused: "user" (this pair), "address", or None."""
    if login_failures(username, address) >= settings.FERRY_LOGIN_MAX_ATTEMPTS:
        return "user"
    limit = settings.FERRY_LOGIN_MAX_ATTEMPTS_PER_ADDRESS
    if login_failures(None, address) >= limit:
        return "address"
    return None


def login_blocked(username: str, address: str) -> bool:
    return login_block(username, address) is not None


def login_failed(username: str, address: str) -> int:
    """Count one failure (pair and address); return the pair's count."""
    _count(_key(None, address))
    return _count(_key(username, address))


def _count(key: str) -> int:
    if cache.add(key, 1, timeout=settings.FERRY_LOGIN_WINDOW):
        return 1
    try:
        return cache.incr(key)  # keeps the window's expiry
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.FERRY_LOGIN_WINDOW)
        return 1


def login_succeeded(username: str, address: str) -> None:
    cache.delete(_key(username, address))
