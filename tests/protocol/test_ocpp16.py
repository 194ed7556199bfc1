"""The OCPP 1.6 adapter's translations: sampled values, pile times, ChargePointStatus and
idTagInfo in the core's words and back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from ocpp.v16.enums import AuthorizationStatus, ChargePointStatus

from billing.services.sessions import AuthDecision, Credential, CredentialKind, Sample
from protocol.ocpp16 import words
from protocol.ocpp16.values import parse_pile_time, samples_from_ocpp
from stations.models import ConnectorState

T0 = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)


def test_sampled_values_are_converted_to_platform_units():
    values = [
        {
            "timestamp": "2026-11-27T02:05:00Z",
            "sampledValue": [
                {"value": "1.5", "unit": "kWh"},
                {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
                {"value": "80", "measurand": "SoC", "unit": "Percent"},
                {"value": "n/a", "measurand": "Voltage"},
                # Beyond Decimal's range: skipped like text, not an exception that leaves
                # the pile's MeterValues unanswered (and retried) forever.
                {"value": "1e999999999", "measurand": "Current.Import"},
            ],
        },
        {"timestamp": "not a time", "sampledValue": [{"value": "1"}]},
    ]
    assert samples_from_ocpp(values) == [
        Sample(
            at=T0 + dt.timedelta(minutes=5),
            energy_wh=Decimal("1500.0"),
            power_w=Decimal("7200.0"),
            soc=80,
        )
    ]


def test_pile_times_without_a_zone_are_utc_and_non_times_are_none():
    assert (
        parse_pile_time("2026-11-27T02:00:00"),
        parse_pile_time("2026-11-27T10:00:00+08:00"),
        parse_pile_time("yesterday"),
        parse_pile_time(17),
    ) == (T0, T0, None, None)


def test_every_charge_point_status_has_its_own_connector_state():
    states = [words.connector_state(str(s)) for s in ChargePointStatus]
    assert len(set(states)) == len(states)
    assert set(states) == set(ConnectorState) - {ConnectorState.UNKNOWN}


def test_no_error_is_no_error_code_and_other_codes_are_kept():
    assert (words.connector_error("NoError"), words.connector_error("OverVoltage")) == (
        "",
        "OverVoltage",
    )


@pytest.mark.parametrize(
    "decision, status",
    [
        (AuthDecision.ACCEPTED, AuthorizationStatus.accepted),
        (AuthDecision.BLOCKED, AuthorizationStatus.blocked),
        (AuthDecision.EXPIRED, AuthorizationStatus.expired),
        (AuthDecision.INVALID, AuthorizationStatus.invalid),
        (AuthDecision.CONCURRENT, AuthorizationStatus.concurrent_tx),
    ],
)
def test_each_decision_is_answered_as_its_id_tag_info(decision, status):
    assert words.id_tag_info(decision) == {"status": status.value}


def test_an_id_tag_is_a_presented_credential_and_a_transaction_id_a_reference():
    assert words.credential("04A1B2C3") == Credential(CredentialKind.PRESENTED, "04A1B2C3")
    assert (words.protocol_ref(42), words.protocol_ref(None), words.transaction_id("42")) == (
        "42",
        None,
        42,
    )


def test_a_huge_soc_stays_a_decimal_for_the_bounds_to_refuse():
    """int() of a million-digit SoC would hold the gateway's event loop; it is left a
    Decimal, which the gateway's bounds refuse with a CALLERROR."""
    (sample,) = samples_from_ocpp(
        [
            {
                "timestamp": "2026-11-27T02:05:00Z",
                "sampledValue": [{"value": "1e999999", "measurand": "SoC"}, {"value": "5"}],
            }
        ]
    )
    assert (sample.soc, sample.energy_wh) == (Decimal("1e999999"), Decimal(5))
