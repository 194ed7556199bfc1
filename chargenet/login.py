"""The back office's sign-in, throttled: after a few failed passwords for one username, or
many from one client address, sign-in is refused for a while, even with the right password
(a guessed password must not get through on attempt 41).

Counters live in the shared cache (Redis), so every web process counts the same failures.
A lock lasts LOGIN_LOCK_MINUTES from the last failure; a successful sign-in clears the
username's counter.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, or the header the proxy in front of us sets
    (LOGIN_CLIENT_ADDRESS_HEADER, e.g. HTTP_X_REAL_IP) when there is one."""
    header = settings.LOGIN_CLIENT_ADDRESS_HEADER
    value = request.META.get(header, "") if header else ""
    return value.split(",")[0].strip() or request.META.get("REMOTE_ADDR", "")


def _counters(request, username: str) -> list[tuple[str, int]]:
    name = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [
        (f"login-failures:user:{name}", settings.LOGIN_FAILURES_PER_USERNAME),
        (f"login-failures:addr:{client_address(request)}", settings.LOGIN_FAILURES_PER_ADDRESS),
    ]


def _failed(key: str) -> None:
    seconds = settings.LOGIN_LOCK_MINUTES * 60
    cache.add(key, 0, timeout=seconds)
    try:
        cache.incr(key)  # atomic in Redis: parallel guesses all count
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=seconds)
    cache.touch(key, timeout=seconds)  # locked until LOGIN_LOCK_MINUTES after the last one


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    def clean(self):
        counters = _counters(self.request, self.data.get("username") or "")
        if any((cache.get(key) or 0) >= limit for key, limit in counters):
            raise ValidationError(
                _(
                    "Too many failed sign-ins for this account or from this address. "
                    "Try again in %(minutes)d minutes."
                ),
                code="locked",
                params={"minutes": settings.LOGIN_LOCK_MINUTES},
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            for key, _limit in counters:
                _failed(key)
            raise
        cache.delete(counters[0][0])
        return cleaned
