"""Test helper: an API client logged in as a driver with a real token (the same
`Authorization: Bearer` path a phone uses)."""

from __future__ import annotations

from rest_framework.test import APIClient

from orgs.drivers import driver_token_issue
from orgs.models import Member


def driver_client(member: Member) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {driver_token_issue(member=member).key}")
    return client
