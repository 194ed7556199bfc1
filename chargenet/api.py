"""Kernel pieces every REST API shares (settings.REST_FRAMEWORK): pagination and the two
throttles, per authenticated principal and per client address.

Rates come from settings at each request (``API_THROTTLE_USER`` / ``API_THROTTLE_IP``,
e.g. ``120/min``), so an operator (or a test) can change them without a restart of DRF's
class attributes.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.throttling import SimpleRateThrottle


class Pagination(LimitOffsetPagination):
    default_limit = 20
    max_limit = 100


class _SettingsRateThrottle(SimpleRateThrottle):
    setting = ""

    def get_rate(self) -> str | None:
        return getattr(settings, self.setting) or None


class PrincipalRateThrottle(_SettingsRateThrottle):
    """Requests per authenticated principal (a driver, a partner, a staff account)."""

    scope = "principal"
    setting = "API_THROTTLE_USER"

    def get_cache_key(self, request, view) -> str | None:
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return None
        ident = f"{type(user).__name__}:{user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AddressRateThrottle(_SettingsRateThrottle):
    """Requests per client address, logged in or not (a login form, a scraper)."""

    scope = "address"
    setting = "API_THROTTLE_IP"

    def get_cache_key(self, request, view) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


ERROR_SCHEMA = {
    "type": "object",
    "description": "The one error shape of every API (chargenet.errors).",
    "properties": {
        "code": {"type": "string", "description": "Stable, for programs (e.g. pile_offline)."},
        "message": {"type": "string", "description": "For people, in the request's language."},
        "details": {
            "description": "More about the error (e.g. field messages), or {}.",
            "oneOf": [{"type": "object"}, {"type": "array"}],
        },
    },
    "required": ["code", "message", "details"],
}


def error_responses_hook(result: dict, generator, request, public) -> dict:
    """drf-spectacular post-processing: every operation documents its errors, in the one
    error shape, as its ``default`` response."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    default = {
        "description": "An error (4xx, 5xx)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault("default", default)
    return result
