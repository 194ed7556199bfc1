import datetime as dt
from decimal import Decimal as D
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.pricing import (
    NegativeEnergy,
    PeriodPrice,
    PricingError,
    RegisterBackwards,
    TariffMissing,
    TariffSpec,
    TimeReversed,
    TooManySegments,
    price_session,
    schedule_from_text,
)
from chargenet.money import MoneyError

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
# peak 14–17 & 19–22, flat 8–14 & 17–19 & 22–24, valley 0–8 (DOMAIN.md)
DOMAIN = schedule_from_text("3" * 16 + "2" * 12 + "1" * 6 + "2" * 4 + "1" * 6 + "2" * 4)
AC = (
    PeriodPrice(D("1.10"), D("0.60")),
    PeriodPrice(D("0.98"), D("0.60")),
    PeriodPrice(D("0.64"), D("0.51")),
    PeriodPrice(D("0.33"), D("0.55")),
)


def spec(since=dt.datetime(2019, 1, 1, tzinfo=SH), schedule=DOMAIN, prices=AC, version_id=1):
    return TariffSpec(effective_from=since, schedule=schedule, prices=prices, version_id=version_id)


def at(*args, tz=SH):
    return dt.datetime(*args, tzinfo=tz)


def by_period(pricing):
    return {(line.version_id, line.period): line.energy_wh for line in pricing.lines}


def test_domain_worked_example_is_33_02():
    # AC 2019-09-06 23:26:13 → 2019-09-07 10:40:40: flat 8.84 kWh, valley 25.98 kWh.
    samples = [
        (at(2019, 9, 6, 23, 26, 13), D("0")),
        (at(2019, 9, 7, 0, 0), D("1000")),
        (at(2019, 9, 7, 8, 0), D("26980")),
        (at(2019, 9, 7, 10, 40, 40), D("34820")),
    ]
    pricing = price_session(samples=samples, tariffs=[spec()], zone=SH)
    assert pricing.total == D("33.02")
    assert pricing.exact_total == Fraction("33.0284")
    assert pricing.energy_wh == D("34820.000")
    assert by_period(pricing) == {(1, 2): D("8840.000"), (1, 3): D("25980.000")}
    assert [(ln.electricity_fee, ln.service_fee) for ln in pricing.lines] == [
        (D("5.65"), D("4.51")),
        (D("8.57"), D("14.29")),
    ]
    assert pricing.electricity_fee + pricing.service_fee == D("33.02")


def test_each_fee_cell_is_its_exact_amount_to_the_fen():
    # flat 148.466 kWh × (1.8401 + 0.60), valley 1.997 kWh × (0.33 + 0.55): exact cells
    # 273.1922866, 89.0796, 0.65901, 1.09835 = 364.02924466 → total 364.02. Floors
    # 273.19 + 89.07 + 0.65 + 1.09 = 364.00; the 2 fen left go to the largest remainders
    # (89.0796: .0096, 0.65901: .00901). Shared in proportion to the total, the first cell
    # was 273.18, more than a fen below what a driver recomputes.
    prices = (*AC[:2], PeriodPrice(D("1.8401"), D("0.60")), PeriodPrice(D("0.33"), D("0.55")))
    samples = [
        (at(2019, 9, 7, 7, 0), D("0")),
        (at(2019, 9, 7, 8, 0), D("1997")),
        (at(2019, 9, 7, 9, 0), D("150463")),
    ]
    pricing = price_session(samples=samples, tariffs=[spec(prices=prices)], zone=SH)
    assert pricing.total == D("364.02")
    assert [(ln.period, ln.electricity_fee, ln.service_fee) for ln in pricing.lines] == [
        (2, D("273.19"), D("89.08")),
        (3, D("0.66"), D("1.09")),
    ]


def test_autumn_dst_samples_are_compared_as_instants():
    # 02:30 CEST (first pass, fold=0) = 00:30 UTC; 02:10 CET (second pass, fold=1) =
    # 01:10 UTC: 40 real minutes later, though earlier on the wall clock.
    samples = [
        (dt.datetime(2024, 10, 27, 2, 30, tzinfo=BERLIN, fold=0), D("0")),
        (dt.datetime(2024, 10, 27, 2, 10, tzinfo=BERLIN, fold=1), D("1000")),
    ]
    pricing = price_session(
        samples=samples,
        tariffs=[spec(since=at(2024, 1, 1, tz=BERLIN), schedule=NIGHT)],
        zone=BERLIN,
    )
    # valley until 03:00 local: all 40 minutes; 1 kWh × (0.33 + 0.55) = 0.88
    assert (by_period(pricing), pricing.total) == ({(1, 3): D("1000.000")}, D("0.88"))


def test_dst_times_going_back_as_instants_are_still_reversed():
    samples = [
        (dt.datetime(2024, 10, 27, 2, 10, tzinfo=BERLIN, fold=1), D("0")),
        (dt.datetime(2024, 10, 27, 2, 30, tzinfo=BERLIN, fold=0), D("1000")),
    ]
    tariffs = [spec(since=at(2024, 1, 1, tz=BERLIN), schedule=NIGHT)]
    with pytest.raises(TimeReversed):
        price_session(samples=samples, tariffs=tariffs, zone=BERLIN)


@pytest.mark.parametrize(
    ("stop", "priced"),
    [(at(2019, 12, 15, 1, 0), True), (at(2999, 1, 1), False), (at(2019, 12, 16, 1, 0), False)],
)
def test_the_engine_refuses_to_walk_more_than_its_bound(stop, priced):
    # From 2019-09-06 01:00: 100 days (4800 half hours) is priced, a day more is not.
    start = at(2019, 9, 6, 1, 0)
    samples = [(start, D("0")), (stop, D("1000"))]
    if priced:
        assert price_session(samples=samples, tariffs=[spec()], zone=SH).energy_wh == D("1000.000")
    else:
        with pytest.raises(TooManySegments) as error:
            price_session(samples=samples, tariffs=[spec()], zone=SH)
        assert str(error.value).startswith("Not priced: the session runs from 2019-09-06 01:00:00")


def test_half_up_is_an_operator_choice():
    samples = [(at(2019, 9, 7, 1, 0), D("0")), (at(2019, 9, 7, 2, 0), D("10010"))]
    # valley 10.01 kWh × 0.88 = 8.8088
    assert price_session(samples=samples, tariffs=[spec()], zone=SH).total == D("8.80")
    half_up = price_session(samples=samples, tariffs=[spec()], zone=SH, rounding="ROUND_HALF_UP")
    assert half_up.total == D("8.81")


def test_a_pair_straddling_midnight_is_split_in_proportion_to_time():
    # 23:30 → 00:30, 3000 Wh evenly: half flat (before midnight), half valley.
    samples = [(at(2019, 9, 6, 23, 30), D("500")), (at(2019, 9, 7, 0, 30), D("3500"))]
    pricing = price_session(samples=samples, tariffs=[spec()], zone=SH)
    assert by_period(pricing) == {(1, 2): D("1500.000"), (1, 3): D("1500.000")}
    # 1.5 × 1.15 + 1.5 × 0.88 = 3.045
    assert pricing.total == D("3.04")


def test_a_version_change_mid_session_prices_each_part_with_its_version():
    cheaper = tuple(PeriodPrice(D("0.50"), D("0.40")) for _ in range(4))
    tariffs = [spec(), spec(since=at(2019, 9, 7, 11, 0), prices=cheaper, version_id=2)]
    samples = [(at(2019, 9, 7, 10, 0), D("0")), (at(2019, 9, 7, 12, 0), D("4000"))]
    pricing = price_session(samples=samples, tariffs=tariffs, zone=SH)
    assert by_period(pricing) == {(1, 2): D("2000.000"), (2, 2): D("2000.000")}
    # 2 × 1.15 + 2 × 0.90 = 4.10
    assert pricing.total == D("4.10")
    assert pricing.version_ids == [1, 2]


# valley 00:00–03:00 local, flat otherwise
NIGHT = schedule_from_text("3" * 6 + "2" * 42)


@pytest.mark.parametrize(
    ("start", "stop", "valley", "flat"),
    [
        # spring forward 2024-03-31 02:00 CET → 03:00 CEST: 2 h on the clock of the wall
        # are 01:00–02:00 (valley) and 03:00–04:00 (flat), 1 h each.
        (at(2024, 3, 31, 0, 0, tz=dt.UTC), at(2024, 3, 31, 2, 0, tz=dt.UTC), "1000", "1000"),
        # fall back 2024-10-27 03:00 CEST → 02:00 CET: 01:30–03:00 CEST and 02:00–03:00 CET
        # are valley (2.5 h), 03:00–03:30 CET flat.
        (at(2024, 10, 26, 23, 30, tz=dt.UTC), at(2024, 10, 27, 2, 30, tz=dt.UTC), "2500", "500"),
    ],
)
def test_a_dst_zone_is_priced_by_local_wall_clock(start, stop, valley, flat):
    hours = int((stop - start).total_seconds() // 3600)
    samples = [(start, D("0")), (stop, D(hours * 1000))]
    pricing = price_session(
        samples=samples,
        tariffs=[spec(since=at(2024, 1, 1, tz=BERLIN), schedule=NIGHT)],
        zone="Europe/Berlin",
    )
    assert by_period(pricing) == {
        (1, 2): D(flat).quantize(D("0.001")),
        (1, 3): D(valley).quantize(D("0.001")),
    }


@pytest.mark.parametrize(
    "tariffs",
    [
        [],
        [spec(since=at(2019, 9, 7, 9, 0))],  # starts after the session started
        [spec(), TariffSpec.missing(at(2019, 9, 7, 9, 0))],  # plan without a version
    ],
)
def test_no_tariff_in_force_is_an_error_never_a_default_price(tariffs):
    samples = [(at(2019, 9, 7, 8, 0), D("0")), (at(2019, 9, 7, 10, 0), D("1000"))]
    with pytest.raises(TariffMissing, match=r"No tariff is in force at 2019-09-07 0[89]:00:00"):
        price_session(samples=samples, tariffs=tariffs, zone=SH)


@pytest.mark.parametrize(
    ("samples", "error", "message"),
    [
        (
            [(at(2019, 9, 7, 1), D("500")), (at(2019, 9, 7, 2), D("400"))],
            RegisterBackwards,
            "register goes backwards",
        ),
        (
            [(at(2019, 9, 7, 2), D("0")), (at(2019, 9, 7, 1), D("400"))],
            TimeReversed,
            "times go backwards",
        ),
        ([(at(2019, 9, 7, 1), D("-5")), (at(2019, 9, 7, 2), D("0"))], NegativeEnergy, "negative"),
        ([(at(2019, 9, 7, 1), 0.5), (at(2019, 9, 7, 2), D("1"))], PricingError, "not a float"),
        (
            [(dt.datetime(2019, 9, 7, 1), D("0")), (dt.datetime(2019, 9, 7, 2), D("1"))],  # noqa: DTZ001
            PricingError,
            "carry their time zone",
        ),
        (
            [(at(2019, 9, 7, 1), D("0")), (at(2019, 9, 7, 1), D("5"))],
            TimeReversed,
            "times go backwards",
        ),
    ],
)
def test_bad_samples_raise_a_named_error(samples, error, message):
    with pytest.raises(error, match=message):
        price_session(samples=samples, tariffs=[spec()], zone=SH)


def test_unknown_rounding_mode_and_sixth_price_decimal_are_refused():
    samples = [(at(2019, 9, 7, 1), D("0")), (at(2019, 9, 7, 2), D("1"))]
    with pytest.raises(MoneyError, match="Unknown rounding mode ROUND_UP"):
        price_session(samples=samples, tariffs=[spec()], zone=SH, rounding="ROUND_UP")
    with pytest.raises(MoneyError, match="at most 5 decimal places"):
        spec(prices=(PeriodPrice(D("0.123456"), D("0")), *AC[1:]))


def test_a_repeated_sample_is_harmless():
    same = at(2019, 9, 7, 1, 30)
    samples = [
        (at(2019, 9, 7, 1), D("0")),
        (same, D("500")),
        (same, D("500")),
        (at(2019, 9, 7, 2), D("1000")),
    ]
    pricing = price_session(samples=samples, tariffs=[spec()], zone=SH)
    assert by_period(pricing) == {(1, 3): D("1000.000")}


def test_one_sample_is_a_zero_bill():
    pricing = price_session(samples=[(at(2019, 9, 7, 1), D("7"))], tariffs=[spec()], zone=SH)
    assert (pricing.total, pricing.energy_wh, pricing.lines) == (D("0.00"), D("0.000"), ())


# ---- properties --------------------------------------------------------------------

# Shanghai across midnight and a version change; Berlin across the autumn DST change.
WHERE = st.sampled_from([(SH, at(2019, 9, 6, 20, 0)), (BERLIN, at(2019, 10, 26, 20, 0, tz=BERLIN))])
steps = st.lists(
    st.tuples(st.integers(1, 7200), st.integers(0, 40_000_000)),  # (seconds, mWh)
    min_size=1,
    max_size=30,
)


def build(step_list, start):
    # Step in UTC: aware datetime arithmetic in a DST zone is wall-clock arithmetic.
    t, e = start.astimezone(dt.UTC), 0
    out = [(t, D(e) / 1000)]
    for seconds, mwh in step_list:
        t += dt.timedelta(seconds=seconds)
        e += mwh
        out.append((t, D(e) / 1000))
    return out


TWO_VERSIONS = [
    spec(),
    spec(since=at(2019, 9, 7, 3, 15), prices=AC[::-1], version_id=2),
    spec(since=at(2019, 10, 27, 1, 45, tz=BERLIN), version_id=3),
]


@settings(max_examples=150, deadline=None)
@given(step_list=steps, where=WHERE)
def test_period_energies_and_lines_add_up_to_the_totals(step_list, where):
    zone, start = where
    pricing = price_session(samples=build(step_list, start), tariffs=TWO_VERSIONS, zone=zone)
    assert sum((ln.energy_wh for ln in pricing.lines), D(0)) == pricing.energy_wh
    assert sum((ln.exact_energy_wh for ln in pricing.lines), Fraction(0)) == Fraction(
        pricing.energy_wh
    )
    assert sum((ln.amount for ln in pricing.lines), D(0)) == pricing.total
    assert pricing.electricity_fee + pricing.service_fee == pricing.total
    # Each cell within one fen of its exact amount: never below its floor, at most one more.
    for ln in pricing.lines:
        e = ln.exact_energy_wh / 1000
        for fee, unit_price in (
            (ln.electricity_fee, ln.electricity_price),
            (ln.service_fee, ln.service_price),
        ):
            exact = e * Fraction(unit_price)
            assert 0 <= Fraction(fee) - Fraction(int(exact * 100), 100) <= Fraction(1, 100)


@settings(max_examples=150, deadline=None)
@given(step_list=steps, index=st.integers(0, 29), more=st.integers(1, 5_000_000), where=WHERE)
def test_the_amount_never_decreases_when_energy_grows(step_list, index, more, where):
    zone, start = where
    index %= len(step_list)
    grown = list(step_list)
    grown[index] = (grown[index][0], grown[index][1] + more)
    before = price_session(samples=build(step_list, start), tariffs=TWO_VERSIONS, zone=zone)
    after = price_session(samples=build(grown, start), tariffs=TWO_VERSIONS, zone=zone)
    assert after.total >= before.total


@settings(max_examples=150, deadline=None)
@given(
    step_list=steps,
    index=st.integers(0, 29),
    parts=st.integers(2, 9),
    part=st.integers(1, 8),
    where=WHERE,
)
def test_an_interpolated_sample_changes_no_period_energy(step_list, index, parts, part, where):
    zone, start = where
    index %= len(step_list)
    part = min(part, parts - 1)
    seconds, mwh = step_list[index]
    # an exactly interpolated point: both time and energy scaled by part/parts
    seconds, mwh = seconds * parts, mwh * parts
    widened = list(step_list)
    widened[index] = (seconds, mwh)
    first = (seconds * part // parts, mwh * part // parts)
    rest = (seconds - first[0], mwh - first[1])
    split = [*widened[:index], first, rest, *widened[index + 1 :]]
    whole = price_session(samples=build(widened, start), tariffs=TWO_VERSIONS, zone=zone)
    halves = price_session(samples=build(split, start), tariffs=TWO_VERSIONS, zone=zone)
    assert whole.lines == halves.lines
    assert whole.total == halves.total
