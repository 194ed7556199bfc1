"""Test helpers: an API client logged in as a driver with a real token (the same
`Authorization: Bearer` path a phone uses), and a stand-in for a pile protocol adapter."""

from __future__ import annotations

from rest_framework.test import APIClient

from orgs.drivers import driver_token_issue
from orgs.models import Member
from protocol.adapters import Outcome, PileAnswer


def driver_client(member: Member) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {driver_token_issue(member=member).key}")
    return client


class PileStandIn:
    """In the OCPP adapter's place: records what was asked, answers ``outcome``."""

    def __init__(self):
        self.outcome = Outcome.ACCEPTED
        self.starts: list[tuple] = []
        self.stops: list[int] = []

    def connector_start(self, *, connector, credential_value, credential_kind, timeout):
        self.starts.append((connector.pk, credential_value, str(credential_kind)))
        return PileAnswer(self.outcome)

    def session_stop_remote(self, *, session, timeout):
        self.stops.append(session.pk)
        return PileAnswer(self.outcome)
