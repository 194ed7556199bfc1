"""The partner message log is kept INTERCONNECT_MESSAGE_RETENTION_DAYS (a nightly job, as
the protocol journal's retention); the replay guard and expired tokens go with it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from interconnect.models import AccessToken, Interconnection, Message, SeenRequest
from interconnect.services import inbound
from interconnect.tasks import messages_prune_task

from .conftest import partner_add
from .world import network, operator_id

pytestmark = pytest.mark.usefixtures("live_db")


def test_messages_older_than_the_retention_are_pruned_with_the_replay_guard(settings):
    settings.INTERCONNECT_MESSAGE_RETENTION_DAYS = 30
    net = network()
    wire_id = operator_id()
    partner_add(
        "--name", "粤易充", "--operator-id", wire_id, "--base-url", "http://127.0.0.1:9/",
        "--operator", net.operator.code,
    )  # fmt: skip
    link = Interconnection.objects.get(operator_id_wire=wire_id)
    now = timezone.now()
    ages = [40, 31, 30.5, 29, 1, 0]  # days
    Message.objects.bulk_create(
        [
            Message(interconnection=link, operator_id=link.operator_id,
                    at=now - dt.timedelta(days=age), direction="in",
                    operation="query_station_status", ret=0)
            for age in ages
        ]
    )  # fmt: skip
    SeenRequest.objects.bulk_create(
        [
            SeenRequest(interconnection=link, timestamp="20261101000000", seq="0001",
                        at=now - dt.timedelta(minutes=11)),
            SeenRequest(interconnection=link, timestamp="20261101000000", seq="0002",
                        at=now - dt.timedelta(minutes=9)),
        ]
    )  # fmt: skip
    AccessToken.objects.bulk_create(
        [
            AccessToken(interconnection=link, token_hash="a" * 64, expires_at=now),
            AccessToken(interconnection=link, token_hash="b" * 64,
                        expires_at=now + dt.timedelta(hours=1)),
        ]
    )  # fmt: skip
    inbound.PRUNE_CHUNK = 2  # several chunks
    try:
        assert inbound.messages_prune(now=now + dt.timedelta(seconds=1)) == 3
    finally:
        inbound.PRUNE_CHUNK = 10_000
    kept = Message.objects.filter(interconnection=link).order_by("at")
    assert [round((now - m.at).total_seconds() / 86400, 1) for m in kept] == [29.0, 1.0, 0.0]
    # Past twice the clock skew (2 × 300 s) a request cannot be replayed: forgotten.
    assert list(SeenRequest.objects.filter(interconnection=link).values_list("seq", flat=True)) == [
        "0002"
    ]
    assert list(
        AccessToken.objects.filter(interconnection=link).values_list("token_hash", flat=True)
    ) == ["b" * 64]
    assert messages_prune_task() == 0  # the nightly task: nothing more to prune
    assert kept.count() == 3
