"""Test helpers: an API client logged in as a driver with a real token (the same
`Authorization: Bearer` path a phone uses), and a stand-in for a pile protocol adapter."""

from __future__ import annotations

import json
import uuid

import redis
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from orgs.drivers import driver_token_issue
from orgs.models import Member
from protocol import routing
from protocol.adapters import Outcome, PileAnswer, Sent


def driver_client(member: Member) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {driver_token_issue(member=member).key}")
    return client


class PileStandIn:
    """In the OCPP adapter's place: records what was asked, answers ``outcome``. A start
    sent without waiting gets its answer the way a gateway node gives it: a reply in Redis
    under the request id (none for *timeout*: its deadline is already past)."""

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

    def connector_start_send(self, *, connector, credential_value, credential_kind, timeout):
        self.starts.append((connector.pk, credential_value, str(credential_kind)))
        if self.outcome in (Outcome.OFFLINE, Outcome.NOT_SUPPORTED, Outcome.INVALID):
            return PileAnswer(self.outcome)  # not sent at all
        request_id = uuid.uuid4().hex
        if self.outcome == Outcome.TIMEOUT:
            return Sent("RemoteStart", request_id, timezone.now().timestamp() - 60)
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.rpush(routing.reply_key(request_id), json.dumps({"outcome": self.outcome}))
        client.expire(routing.reply_key(request_id), routing.REPLY_TTL)
        client.close()
        return Sent("RemoteStart", request_id, timezone.now().timestamp() + timeout)

    def start_answer(self, *, sent, reply):
        return PileAnswer(Outcome(reply["outcome"]))
