"""DRF glue for drivers: ``Authorization: Bearer <token>`` authentication and the
`IsDriver` permission. Any DRF view (driver API, wallet, invoices) uses these; the token
rules live in `orgs.drivers`."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from .drivers import DriverPrincipal, driver_token_member

KEYWORD = "Bearer"


class DriverTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Malformed token header."))
        try:
            key = parts[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed(_("Malformed token header.")) from None
        member = driver_token_member(key=key)
        if member is None:
            raise exceptions.AuthenticationFailed(_("Your login has expired; please log in again."))
        return DriverPrincipal(member), key

    def authenticate_header(self, request) -> str:
        return KEYWORD  # a 401 (with WWW-Authenticate), not a 403, asks the page to log in


class IsDriver(BasePermission):
    """The request is a logged-in driver (never a staff account)."""

    message = _("Please log in.")

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, DriverPrincipal)


class DriverTokenScheme(OpenApiAuthenticationExtension):
    target_class = DriverTokenAuthentication
    name = "driverToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "Driver API token"}
