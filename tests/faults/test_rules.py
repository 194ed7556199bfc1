"""The anomaly rules as pure functions: exact codes, reasons and proposals."""

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from faults.codes import FaultCode, blocks_payment
from faults.rules import (
    Period,
    Reason,
    Sample,
    SessionFacts,
    StatusChange,
    Thresholds,
    detect,
    explain,
    pile_values,
    platform_values,
    propose_lost_bill,
)

T0 = dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def samples(*pairs) -> tuple[Sample, ...]:
    return tuple(Sample(at=at(m), energy_wh=Decimal(wh)) for m, wh in pairs)


def statuses(*pairs) -> tuple[StatusChange, ...]:
    return tuple(StatusChange(received_at=at(m), status=s, pile_time=at(m)) for m, s in pairs)


NORMAL = SessionFacts(
    started_at=at(0),
    start_received_at=at(0),
    meter_start_wh=Decimal(1000),
    now=at(120),
    stopped_at=at(60),
    stop_received_at=at(60),
    meter_stop_wh=Decimal(21000),
    samples=samples((10, 4000), (30, 11000), (59, 20900)),
    statuses=statuses((-2, "Preparing"), (0, "Charging"), (60, "Finishing"), (62, "Available")),
)
# A session whose StopTransaction never came: charging, then silence.
OPEN = dataclasses.replace(
    NORMAL,
    stopped_at=None,
    stop_received_at=None,
    meter_stop_wh=None,
    now=at(100),
    statuses=statuses((-2, "Preparing"), (0, "Charging")),
)


def codes(facts, limits=None):
    return [f.code for f in detect(facts, limits)]


def test_a_normal_session_has_no_fault():
    assert codes(NORMAL) == []


def test_full_still_plugged_then_stop_from_phone_then_unplug_is_not_a_fault():
    facts = dataclasses.replace(
        NORMAL,
        statuses=statuses(
            (-2, "Preparing"),
            (0, "Charging"),
            (40, "SuspendedEV"),  # full, still plugged
            (60, "Finishing"),  # stopped from the phone
            (65, "Available"),  # unplugged
        ),
        samples=samples((10, 4000), (30, 11000), (40, 21000), (59, 21000)),
    )
    assert codes(facts) == []


@pytest.mark.parametrize(
    ("change", "expected_code", "expected_keys"),
    [
        # silent for 41 minutes after the last sample at 59
        ({}, FaultCode.BILL_LOST, ["silent"]),
        (
            {"statuses": statuses((-2, "Preparing"), (0, "Charging"), (70, "Available"))},
            FaultCode.BILL_LOST,
            ["connector_available", "silent"],
        ),
        ({"boots": (at(65),), "now": at(66)}, FaultCode.BILL_LOST, ["pile_rebooted"]),
        (
            {"next_start_received_at": at(80), "now": at(81)},
            FaultCode.BILL_LOST,
            ["new_transaction"],
        ),
        (
            {"offline": (Period(at(61), at(95)),)},
            FaultCode.BILL_LOST_OFFLINE,
            ["silent", "offline"],
        ),
        (
            {"offline": (Period(at(61)),), "boots": (at(70),), "now": at(71)},
            FaultCode.BILL_LOST_OFFLINE,
            ["pile_rebooted", "offline"],
        ),
    ],
)
def test_bill_lost(change, expected_code, expected_keys):
    findings = detect(dataclasses.replace(OPEN, **change))
    assert [f.code for f in findings] == [expected_code]
    assert [r.key for r in findings[0].reasons] == expected_keys


def test_open_session_still_charging_is_not_lost():
    assert codes(dataclasses.replace(OPEN, now=at(80))) == []


def test_offline_before_the_last_sample_does_not_make_it_code_2():
    facts = dataclasses.replace(OPEN, offline=(Period(at(20), at(25)),))
    assert codes(facts) == [FaultCode.BILL_LOST]


def test_silence_reason_explains_itself():
    (finding,) = detect(OPEN)
    assert explain(finding.reasons[0]) == (
        "No meter values for 41.0 minutes (since 2026-11-01 10:59:00)."
    )


@pytest.mark.parametrize(
    ("change", "expected_keys"),
    [
        ({"stopped_at": at(-5)}, ["stop_before_start", "stop_clock_behind"]),
        ({"started_at": at(15)}, ["start_in_future"]),
        ({"started_at": at(-30)}, ["start_clock_behind"]),
        ({"stopped_at": at(80)}, ["stop_in_future"]),
    ],
)
def test_time_anomaly(change, expected_keys):
    findings = {f.code: f for f in detect(dataclasses.replace(NORMAL, **change))}
    assert [r.key for r in findings[FaultCode.TIME_ANOMALY].reasons] == expected_keys


def test_late_start_after_an_offline_period_is_not_a_clock_anomaly():
    facts = dataclasses.replace(
        NORMAL,
        started_at=at(-30),
        stopped_at=at(30),
        stop_received_at=at(31),
        offline=(Period(at(-40), at(-1)),),
        statuses=(),
        samples=(),
    )
    assert codes(facts) == []


def test_clock_reason_text():
    (finding,) = [f for f in detect(dataclasses.replace(NORMAL, started_at=at(15)))][:1]
    assert explain(finding.reasons[0]) == (
        "The pile's start time 2026-11-01 10:15:00 is 15.0 minutes ahead of the platform's "
        "clock (2026-11-01 10:00:00)."
    )


@pytest.mark.parametrize(
    ("change", "expected_key"),
    [
        ({"stopped_at": at(0), "stop_received_at": at(0), "statuses": ()}, "zero_duration"),
        (
            {"stopped_at": at(25 * 60), "stop_received_at": at(25 * 60), "statuses": ()},
            "too_long",
        ),
    ],
)
def test_duration_anomaly(change, expected_key):
    findings = {f.code: f for f in detect(dataclasses.replace(NORMAL, **change))}
    assert [r.key for r in findings[FaultCode.DURATION_ANOMALY].reasons] == [expected_key]


def test_duration_limit_is_the_operators():
    facts = dataclasses.replace(NORMAL, statuses=())
    assert codes(facts, Thresholds(max_duration=dt.timedelta(minutes=30))) == [
        FaultCode.DURATION_ANOMALY
    ]


@pytest.mark.parametrize(
    ("meter_stop", "expected"),
    [
        ("21000", []),  # pile 20000 Wh, samples 19900 Wh: within 500 Wh
        ("21800", []),  # 900 Wh apart: within 5 % of 20800 Wh
        ("24000", [FaultCode.ENERGY_MISMATCH]),  # 3100 Wh apart
        ("12000", [FaultCode.ENERGY_LOST]),  # below the samples: a reset, not a mismatch
    ],
)
def test_energy_mismatch(meter_stop, expected):
    assert codes(dataclasses.replace(NORMAL, meter_stop_wh=Decimal(meter_stop))) == expected


def test_energy_mismatch_reason_has_exact_figures():
    facts = dataclasses.replace(NORMAL, meter_stop_wh=Decimal(24000))
    (finding,) = detect(facts)
    assert finding.reasons == (
        Reason(
            "energy_mismatch",
            {"pile": "23000", "platform": "19900", "diff": "3100", "tolerance": "1150"},
        ),
    )


def test_charging_time_mismatch_and_occupancy_mismatch():
    # The pile says 90 minutes of charging, the status history shows 60.
    facts = dataclasses.replace(NORMAL, pile_charging_seconds=90 * 60, pile_occupancy_seconds=10)
    findings = detect(facts)
    assert [f.code for f in findings] == [
        FaultCode.DURATION_MISMATCH,
        FaultCode.OCCUPANCY_MISMATCH,
    ]
    assert findings[0].reasons[0].params == {
        "pile": "90.0",
        "platform": "60.0",
        "tolerance": "10.0",
    }
    assert findings[1].reasons[0].params == {
        "pile": "0.2",
        "platform": "64.0",
        "tolerance": "15.0",
    }


def test_occupancy_from_late_status_delivery():
    # Statuses stamped by the pile at 62 but received 30 minutes later.
    late = (
        StatusChange(at(-2), "Preparing", at(-2)),
        StatusChange(at(0), "Charging", at(0)),
        StatusChange(at(60), "Finishing", at(60)),
        StatusChange(at(92), "Available", at(62)),
    )
    assert codes(dataclasses.replace(NORMAL, statuses=late)) == [FaultCode.OCCUPANCY_MISMATCH]
    assert not blocks_payment([FaultCode.OCCUPANCY_MISMATCH])
    assert blocks_payment([FaultCode.OCCUPANCY_MISMATCH, FaultCode.DURATION_MISMATCH])


def test_register_reset_is_energy_lost():
    facts = dataclasses.replace(
        NORMAL, samples=samples((10, 4000), (30, 150), (59, 2000)), meter_stop_wh=Decimal(2100)
    )
    findings = {f.code: f for f in detect(facts)}
    assert sorted(findings) == [FaultCode.ENERGY_LOST]
    assert findings[FaultCode.ENERGY_LOST].reasons == (
        Reason(
            "register_backwards",
            {"at": "2026-11-01 10:30:00", "before": "4000", "after": "150"},
        ),
    )


def test_zero_energy_while_charging_is_energy_lost():
    facts = dataclasses.replace(NORMAL, meter_stop_wh=Decimal(1000), samples=())
    findings = {f.code: f for f in detect(facts)}
    assert sorted(findings) == [FaultCode.ENERGY_LOST]
    assert [r.key for r in findings[FaultCode.ENERGY_LOST].reasons] == [
        "zero_energy_while_charging"
    ]


def test_several_codes_on_one_bill():
    facts = dataclasses.replace(
        NORMAL,
        meter_stop_wh=Decimal(1000),
        samples=(),
        pile_charging_seconds=120 * 60,
        pile_occupancy_seconds=5 * 60,
    )
    assert codes(facts) == [
        FaultCode.DURATION_MISMATCH,
        FaultCode.OCCUPANCY_MISMATCH,
        FaultCode.ENERGY_LOST,
    ]


def test_side_by_side_values():
    pile = pile_values(NORMAL)
    platform = platform_values(NORMAL)
    assert (pile.duration, pile.charging_time, pile.energy_wh, pile.occupancy) == (
        dt.timedelta(minutes=60),
        dt.timedelta(minutes=60),
        Decimal(20000),
        dt.timedelta(minutes=64),
    )
    assert (platform.duration, platform.charging_time, platform.energy_wh, platform.occupancy) == (
        dt.timedelta(minutes=60),
        dt.timedelta(minutes=60),
        Decimal(19900),
        dt.timedelta(minutes=64),
    )


@pytest.mark.parametrize(
    ("change", "stop", "register", "basis"),
    [
        # Status left the session at 70 (Available): last sample before it is at 59.
        (
            {"statuses": statuses((0, "Charging"), (45, "SuspendedEV"), (70, "Finishing"))},
            at(70),
            "20900",
            "proposal_from_status",
        ),
        ({"offline": (Period(at(35)),)}, at(35), "11000", "proposal_from_offline"),
        ({"statuses": ()}, at(59), "20900", "proposal_from_sample"),
        ({"statuses": (), "samples": ()}, at(0), "1000", "proposal_from_start"),
    ],
)
def test_lost_bill_proposal(change, stop, register, basis):
    proposal = propose_lost_bill(dataclasses.replace(OPEN, **change))
    assert proposal.stopped_at == stop
    assert proposal.meter_stop_wh == Decimal(register)
    assert proposal.energy_wh == Decimal(register) - Decimal(1000)
    assert proposal.basis.key == basis


@pytest.mark.parametrize(
    ("max_power_w", "meter_stop", "expected"),
    [
        # Samples end at 30 min, the stop is at 60: 30 minutes unseen.
        (None, "40000", []),  # no power rating: more energy than sampled is plausible
        (Decimal(60000), "40000", []),  # 60 kW × 0.5 h = 30 kWh could have flowed
        # 7 kW × 0.5 h = 3.5 kWh; 39 kWh in the hour is beyond 7 kW as well (13)
        (Decimal(7000), "40000", [FaultCode.ENERGY_MISMATCH, FaultCode.ENERGY_IMPLAUSIBLE]),
        (None, "8000", [FaultCode.ENERGY_LOST]),  # below a sampled register: a reset
    ],
)
def test_energy_after_the_last_sample_is_bounded_by_the_pile_power(
    max_power_w, meter_stop, expected
):
    facts = dataclasses.replace(
        NORMAL,
        samples=samples((10, 4000), (30, 11000)),
        meter_stop_wh=Decimal(meter_stop),
        max_power_w=max_power_w,
    )
    assert codes(facts) == expected
