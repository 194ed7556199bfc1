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
    implausible_times,
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


# ---- issue 8: whole-Wh stops, metering after the stop, power, implausible times ----------


def whole_wh_stop(*pairs, stop="21000"):
    return dataclasses.replace(NORMAL, samples=samples(*pairs), meter_stop_wh=Decimal(stop))


@pytest.mark.parametrize(
    ("pairs", "stop", "expected"),
    [
        # The stop is the last sample truncated to whole Wh: not a fault.
        (((30, "11000"), (59, "21000.41")), "21000", []),
        (((30, "11000"), (59, "21000.99")), "21000", []),
        # A sample 300 ms after the stop with the same reading: not a fault either.
        (((30, "11000"), (59, "20999.5"), (60.005, "21000.41")), "21000", []),
        # A whole Wh or more below the last sample: the register went backwards.
        (((30, "11000"), (59, "21001")), "21000", [FaultCode.ENERGY_LOST]),
    ],
)
def test_a_whole_wh_stop_under_a_decimal_sample_is_rounding(pairs, stop, expected):
    assert codes(whole_wh_stop(*pairs, stop=stop)) == expected


def test_a_pile_metering_after_its_stop_is_named_samples_after_the_stop():
    facts = whole_wh_stop((30, "11000"), (59, "20990"), (65, "21500"), stop="21000")
    (finding,) = detect(facts)
    assert finding.code == FaultCode.ENERGY_LOST
    assert finding.reasons == (
        Reason(
            "samples_after_stop",
            {
                "stop": "2026-11-01 11:00:00",
                "stop_wh": "21000",
                "at": "2026-11-01 11:05:00",
                "after": "21500",
            },
        ),
    )
    assert explain(finding.reasons[0]).startswith("Samples after the stop: the pile kept")


@pytest.mark.parametrize(
    ("connector_w", "pile_w", "stop", "expected"),
    [
        # 20 000 Wh in the hour: 7 kW × 1 h × 1.2 + 100 = 8500 Wh at most.
        (Decimal(7000), Decimal(60000), "21000", [FaultCode.ENERGY_IMPLAUSIBLE]),
        (None, Decimal(7000), "21000", [FaultCode.ENERGY_IMPLAUSIBLE]),
        (Decimal(7000), Decimal(60000), "9500", []),  # 8500 Wh: exactly the limit
        (Decimal(22000), Decimal(60000), "21000", []),  # 22 kW: 26 500 Wh could flow
        (None, None, "21000", []),  # no rating known: nothing to compare with
    ],
)
def test_energy_beyond_rated_power_times_duration_is_code_13(connector_w, pile_w, stop, expected):
    facts = dataclasses.replace(
        NORMAL,
        samples=samples((10, 2000), (30, 5000), (59, stop)),
        meter_stop_wh=Decimal(stop),
        connector_power_w=connector_w,
        max_power_w=pile_w,
    )
    assert codes(facts) == expected


def test_energy_beyond_power_reason_and_the_operators_tolerance():
    facts = dataclasses.replace(NORMAL, connector_power_w=Decimal(7000))
    (finding,) = detect(facts)
    assert finding.reasons == (
        Reason(
            "energy_beyond_power",
            {"energy": "20000", "minutes": "60.0", "kw": "7", "limit": "8500"},
        ),
    )
    generous = Thresholds(power_tolerance_ratio=Decimal(3), power_tolerance_wh=Decimal(0))
    assert codes(facts, generous) == []


@pytest.mark.parametrize(
    ("start", "end", "keys"),
    [
        (at(0), at(60), []),
        (at(0), at(60 + 24 * 60 + 1), [["not_priced_future"], ["not_priced_too_long"]]),
        (at(0), at(24 * 60 + 1), [["not_priced_too_long"]]),
        (dt.datetime(2014, 12, 31, 23, 30, tzinfo=dt.UTC), at(60), None),
    ],
)
def test_implausible_times_are_decided_before_pricing(start, end, keys):
    # received at 11:00 (NORMAL's stop_received_at); the maximum duration is 24 h.
    found = implausible_times(NORMAL, Thresholds(), start=start, end=end)
    if keys is None:  # before any pile could charge on the platform, and so too long
        assert [f.code for f in found] == [FaultCode.TIME_ANOMALY, FaultCode.DURATION_ANOMALY]
        assert found[0].reasons[0].params == {
            "pile": "2014-12-31 23:30:00",
            "earliest": "2015-01-01 00:00:00",
        }
    else:
        assert [[r.key for r in f.reasons] for f in found] == keys
