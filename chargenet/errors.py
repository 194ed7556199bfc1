"""Domain errors and the one error shape every API speaks.

A service raises a `DomainError` (or a subclass) with a stable ``code`` and a message a
driver, a partner or a staff member can read; the message is translated (zh-hans / en)
when rendered. APIs turn it into ``{"code": ..., "message": ..., "details": ...}``; admin
views show it as an error message; the gateway maps it to the OCPP answer.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response


class DomainError(Exception):
    code = "invalid"
    http_status = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: Any, *, code: str | None = None, details: Any = None):
        super().__init__(str(message))
        self.message = message
        if code:
            self.code = code
        self.details = details or {}

    def __str__(self) -> str:
        return str(self.message)


class NotFound(DomainError):
    code = "not_found"
    http_status = status.HTTP_404_NOT_FOUND


class Conflict(DomainError):
    code = "conflict"
    http_status = status.HTTP_409_CONFLICT


def domain_error_from(exc: ValidationError, obj) -> DomainError:
    """A model's ValidationError as one DomainError whose message names each field."""
    messages = []
    for field, errors in exc.message_dict.items():
        label = (
            obj._meta.get_field(field).verbose_name
            if field != "__all__"
            else obj._meta.verbose_name
        )
        messages.extend(f"{label}: {error}" for error in errors)
    return DomainError(" ".join(messages), code="invalid", details=exc.message_dict)


def full_clean_or_raise(obj, *, exclude: list[str] | None = None) -> None:
    """Run model validation; a problem becomes a DomainError naming the field and rule."""
    try:
        obj.full_clean(exclude=exclude)
    except ValidationError as exc:
        raise domain_error_from(exc, obj) from None


def error_body(code: str, message: Any, details: Any = None) -> dict:
    return {"code": code, "message": str(message), "details": details or {}}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.http_status)
    if isinstance(exc, Http404 | drf_exceptions.NotFound):
        return Response(error_body("not_found", _("Not found.")), status=404)
    if isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.APIException):
        detail = exc.detail
        if isinstance(detail, dict | list):
            message = exc.default_detail
            details = detail
        else:
            message, details = detail, {}
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        # As DRF's own handler: a 401 says how to log in, a 429 when to come back.
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        return Response(error_body(code, message, details), status=exc.status_code, headers=headers)
    return None


def page_not_found(request, exception):
    """handler404: an unknown /api/ URL answers in the error shape, not an HTML page."""
    from django.http import JsonResponse
    from django.views import defaults

    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", _("Not found.")), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: an /api/ request that failed answers in the error shape (the cause is
    logged by Django as usual)."""
    from django.http import JsonResponse
    from django.views import defaults

    if request.path.startswith("/api/"):
        message = _("Something went wrong on our side; please try again later.")
        return JsonResponse(error_body("server_error", message), status=500)
    return defaults.server_error(request)
