"""Property-based fuzzing of the driver API from its own OpenAPI schema (schemathesis),
authenticated as a driver: no request makes a 5xx, and every documented answer matches
the schema. Kept fast: a few examples per operation, no example database."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from billing.services.settlement import bill_settle
from billing.services.wallet import wallet_recharge
from integrations.wechat.fake import FakeWeChat
from orgs.drivers import driver_token_issue
from protocol import intents
from stations.models import ConnectorState, Pile
from tests.billing.factories import stopped_session, tariffed_station
from tests.drivers import PileStandIn
from tests.factories import ConnectorFactory, MemberFactory, PileFactory
from tests.wechatpay import pay_keys_fixture, wechat_pay_fixture  # noqa: F401

pytestmark = pytest.mark.django_db


# Loaded once, from the project itself (the schema view needs no database); one test per
# operation of the driver API.
SCHEMA = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application()).include(
    path_regex="^/api/v1/"
)
OPERATIONS = sorted(result.ok().label for result in SCHEMA.get_all_operations())


@pytest.fixture
def driver_headers(settings, monkeypatch, wechat_pay):
    """A driver with a network and a bill, and WeChat Pay (its local fake) configured: a
    valid recharge is a 201 there, not a 503 "payment unavailable"; the headers the
    fuzzed requests carry."""
    monkeypatch.setitem(intents.ADAPTERS, Pile.Protocol.OCPP16J, PileStandIn())
    station = tariffed_station()
    ConnectorFactory(
        pile=PileFactory(station=station, is_published=True, is_online=True),
        status=ConnectorState.PREPARING,
    )
    member = MemberFactory(operator=station.operator)
    wallet_recharge(member=member, amount=Decimal("20.00"), reference=f"fuzz-{member.pk}")
    t0 = dt.datetime(2026, 11, 1, 10, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
    samples = [(t0, "0"), (t0 + dt.timedelta(hours=1), "5000")]
    bill_settle(session_id=stopped_session(station=station, member=member, samples=samples).pk)
    # As Django's test client does: the in-process WSGI app must not close the test's
    # database connection (and its transaction) at the end of each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        with FakeWeChat(secret="s3cret") as wechat:
            settings.WECHAT_API_BASE = wechat.url
            settings.WECHAT_APP_SECRET = "s3cret"
            yield {
                "Authorization": f"Bearer {driver_token_issue(member=member).key}",
                "Accept-Language": "en",
            }
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def test_every_driver_operation_is_fuzzed():
    assert len(OPERATIONS) >= 17
    assert "POST /api/v1/connectors/{connector_id}/start/" in OPERATIONS


@pytest.mark.parametrize("label", OPERATIONS)
def test_the_driver_api_never_fails_and_answers_as_documented(label, driver_headers):
    operation = SCHEMA.find_operation_by_label(label)

    @given(case=operation.as_strategy())
    @settings(
        max_examples=5,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        # Zero 5xx, and every answer (errors too: the schema's default response) as
        # documented. Not positive_data_acceptance: a schema-valid phone number or pile code
        # may still be one the platform refuses (400/404), which is the right answer.
        case.call_and_validate(
            headers=driver_headers,
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )

    fuzz()
