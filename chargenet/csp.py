"""The Content-Security-Policy of every page (on in production; settings.CSP_ENABLED).

Scripts only from our own origin, plus inline scripts that carry the request's nonce
(``<script nonce="{{ csp_nonce }}">``); nothing from a CDN, no plugins, no framing. Styles
allow 'unsafe-inline' because the admin and our charts use style attributes, which a nonce
cannot cover; style injection is far less dangerous than script injection.
"""

from __future__ import annotations

import secrets

from django.conf import settings


def content_security_policy(nonce: str) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.csp_nonce = secrets.token_urlsafe(16)
        response = self.get_response(request)
        if settings.CSP_ENABLED:
            response.setdefault(
                "Content-Security-Policy", content_security_policy(request.csp_nonce)
            )
        return response


def csp_nonce(request) -> dict:
    """Template context: the nonce inline scripts carry."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
