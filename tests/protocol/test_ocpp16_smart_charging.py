"""Issue 15, smart charging over real sockets: SetChargingProfile (TxDefaultProfile,
TxProfile, ChargePointMaxProfile), ClearChargingProfile, GetCompositeSchedule; a station's
power limit shared among its sessions and re-balanced as they start and stop; a
time-of-use cap from the station's tariff periods; piles refusing."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.models import ChargingSession, SessionState
from billing.services.power import station_power_shares
from billing.services.tariffs import (
    schedule_from_ranges,
    station_tariff_assign,
    tariff_plan_create,
    tariff_version_create,
    tariff_version_update,
)
from chargenet.celery import app as celery_app
from chargenet.events import event_deliver
from chargenet.models import AuditLog, OutboxEvent
from protocol import intents
from protocol.adapters import Outcome, PowerSchedule
from protocol.smart_charging import pile_time_of_use_push, time_of_use_refresh
from stations.models import ChargingProfile, Pile, ProfilePurpose
from stations.services.charging_profiles import (
    STATION_SHARE_ID,
    TIME_OF_USE_ID,
    ProfileInvalid,
    charging_profile_store,
)
from stations.services.network import station_update
from tests.billing.factories import DOMAIN_SCHEDULE, prices, tariffed_station

from . import world
from .clients import serving
from .ocpp16_pile import FeaturePile

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


@pytest.fixture
def eager_here():
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


def staff_profile(pile, purpose, limit_w, **kwargs):
    return charging_profile_store(
        pile=pile,
        purpose=purpose,
        periods=[(0, limit_w)],
        origin=ChargingProfile.Origin.STAFF,
        **kwargs,
    )


def test_profiles_set_cleared_and_the_composite_schedule_read(gateway):
    pile = world.pile()
    staff = get_user_model().objects.create_superuser(username=f"s-{pile.code}", password="x")
    default = staff_profile(pile, ProfilePurpose.TX_DEFAULT, 11000, connector_number=1)
    maximum = staff_profile(pile, ProfilePurpose.PILE_MAX, 7400, stack_level=2)

    async def script(sim):
        first = await asyncio.to_thread(
            intents.pile_charging_profile_set, profile=default, acting_user=staff
        )
        second = await asyncio.to_thread(intents.pile_charging_profile_set, profile=maximum)
        schedule = await asyncio.to_thread(
            intents.pile_composite_schedule, pile=pile, connector_number=1, seconds=3600
        )
        cleared = await asyncio.to_thread(
            intents.pile_charging_profile_clear, pile=pile, profile_id=default.profile_id
        )
        unknown = await asyncio.to_thread(
            intents.pile_charging_profile_clear, pile=pile, profile_id=default.profile_id
        )
        return first, second, schedule, cleared, unknown, dict(sim.profiles)

    first, second, schedule, cleared, unknown, held = _play(gateway, pile, script)
    assert (first.outcome, first.message) == (
        Outcome.ACCEPTED,
        f"Pile {pile.code} accepted: limit power (default for new sessions) to 11 kW.",
    )
    assert (default.profile_id, maximum.profile_id) == (1, 2)
    assert held == {
        2: {
            "connector_id": 0,
            "charging_profile_id": 2,
            "stack_level": 2,
            "charging_profile_purpose": "ChargePointMaxProfile",
            "charging_profile_kind": "Relative",
            "charging_schedule": {
                "charging_rate_unit": "W",
                "charging_schedule_period": [{"start_period": 0, "limit": 7400.0}],
            },
        }
    }
    assert second.outcome == Outcome.ACCEPTED
    assert schedule.answer.schedule == PowerSchedule(
        starts_at=schedule.answer.schedule.starts_at, seconds=3600, periods=((0, 7400.0),)
    )
    assert cleared.outcome == Outcome.ACCEPTED
    assert (unknown.outcome, unknown.answer.reason) == (
        Outcome.REJECTED,
        "The pile has no such charging profile.",
    )
    entry = AuditLog.objects.get(action="pile_intent", object_id=str(pile.pk))
    assert entry.before == {
        "intent": "pile_charging_profile_set",
        "profile": [[0, 11000]],
        "transaction_ref": None,
        "profile_id": 1,
        "connector": 1,
    }


@pytest.mark.parametrize(
    ("current_type", "phases", "voltage", "wire", "watts"),
    [
        # Phases not configured and not said: the OCPP 1.6 default of 3.
        ("AC", None, 220, [{"start_period": 0, "limit": 32.0}], ((0, 21120.0),)),
        # A single-phase 7 kW pile at China's 220 V.
        ("AC", 1, 220, [{"start_period": 0, "limit": 32.0}], ((0, 7040.0),)),
        # The phases a period names come first; then the pile's.
        (
            "AC",
            1,
            230,
            [
                {"start_period": 0, "limit": 16.0, "number_phases": 3},
                {"start_period": 600, "limit": 10.0},
            ],
            ((0, 11040.0), (600, 2300.0)),
        ),
        # DC: amperes at the voltage configured for the pile.
        ("DC", 3, 500, [{"start_period": 0, "limit": 100.0}], ((0, 50000.0),)),
    ],
)
def test_a_composite_schedule_in_amperes_is_shown_in_watts_at_the_piles_supply(
    gateway, current_type, phases, voltage, wire, watts
):
    pile = world.pile(current_type=current_type, supply_phases=phases, phase_voltage_v=voltage)

    async def script(sim):
        sim.composite_amperes = wire
        return await asyncio.to_thread(
            intents.pile_composite_schedule, pile=pile, connector_number=1, seconds=900
        )

    result = _play(gateway, pile, script)
    assert result.outcome == Outcome.ACCEPTED
    assert (result.answer.schedule.seconds, result.answer.schedule.periods) == (900, watts)


@pytest.mark.parametrize(
    "answer, outcome",
    [("Rejected", Outcome.REJECTED), ("CALLERROR NotSupported", Outcome.NOT_SUPPORTED)],
)
def test_a_pile_refusing_a_profile(gateway, answer, outcome):
    pile = world.pile()
    profile = staff_profile(pile, ProfilePurpose.PILE_MAX, 20000)

    async def script(sim):
        sim.answers["SetChargingProfile"] = answer
        sim.answers["GetCompositeSchedule"] = "Rejected"
        given = await asyncio.to_thread(intents.pile_charging_profile_set, profile=profile)
        asked = await asyncio.to_thread(
            intents.pile_composite_schedule, pile=pile, connector_number=0
        )
        return given, asked

    given, asked = _play(gateway, pile, script)
    assert (given.outcome, asked.outcome, asked.answer.schedule) == (
        outcome,
        Outcome.REJECTED,
        None,
    )


def test_a_session_profile_needs_a_running_session(gateway):
    pile = world.pile()
    with pytest.raises(ProfileInvalid):
        staff_profile(pile, ProfilePurpose.TX, 5000)
    with pytest.raises(ProfileInvalid):
        charging_profile_store(
            pile=pile,
            purpose=ProfilePurpose.PILE_MAX,
            periods=[(60, 5000)],
            origin=ChargingProfile.Origin.STAFF,
        )
    ended = world.session(pile, state="stopped", protocol_ref="")
    ChargingProfile.objects.filter(pile=pile).delete()
    profile = staff_profile(pile, ProfilePurpose.TX, 5000, session_id=ended.pk + 10**9)
    result = intents.pile_charging_profile_set(profile=profile)
    assert (result.outcome, result.answer.reason) == (
        Outcome.INVALID,
        "A profile for one session needs a session the pile is running.",
    )


def test_the_station_limit_is_shared_and_rebalanced_as_sessions_start_and_stop(gateway, eager_here):
    station = world.station(power_limit_kw=Decimal("30"))
    left, right = world.pile(station, connectors=2), world.pile(station)
    op = station.operator
    a, b, c = world.member(op), world.member(op), world.member(op)

    def deliver(kind):
        for event in OutboxEvent.objects.filter(kind=kind, delivered_at__isnull=True):
            event_deliver(event_id=event.pk)

    async def script(one, two):
        first = await one.start_tx(1, a.token)
        await asyncio.to_thread(deliver, "session.started")
        after_one = _limits(one, two)
        # The first session metered energy (charging): it still holds a share.
        await one.meter(1, add_wh=500)
        metered = await asyncio.to_thread(
            lambda: ChargingSession.objects.get(pk=first.transaction_id).state
        )
        await one.start_tx(2, b.token)
        await two.start_tx(1, c.token)
        await asyncio.to_thread(deliver, "session.started")
        after_three = _limits(one, two)
        one.meter_wh += 1000
        await one.stop_tx(1)
        await asyncio.to_thread(deliver, "session.stopped")
        return first.transaction_id, metered, after_one, after_three, _limits(one, two)

    first_tx, metered, after_one, after_three, after_stop = _play_two(gateway, left, right, script)
    assert metered == SessionState.CHARGING
    share = STATION_SHARE_ID
    assert after_one == {(left.code, share + 1): 30000.0}
    assert after_three == {
        (left.code, share + 1): 10000.0,
        (left.code, share + 2): 10000.0,
        (right.code, share + 1): 10000.0,
    }
    # The stopped session's profile stays on the pile (it ends with its transaction); the
    # two still charging share the 30 kW.
    assert after_stop == {**after_three, (left.code, share + 2): 15000.0,
                          (right.code, share + 1): 15000.0}  # fmt: skip
    assert [s.limit_w for s in station_power_shares(station=station)] == [15000, 15000]
    stored = ChargingProfile.objects.get(pile=left, profile_id=share + 1)
    assert (stored.session_id, stored.purpose, stored.outcome) == (first_tx, "tx", "accepted")


def test_the_time_of_use_cap_follows_the_tariff_peak_periods(gateway):
    station = tariffed_station(peak_power_limit_kw=Decimal("20"))
    pile = world.pile(station, max_power_kw=Decimal("60"))
    world.pile(station, max_power_kw=Decimal("60"))

    async def script(sim):
        result = await asyncio.to_thread(pile_time_of_use_push, pile=pile)
        return result, sim.profiles

    result, held = _play(gateway, pile, script)
    assert result.outcome == Outcome.ACCEPTED
    profile = held[89999]
    hours = [(p["start_period"] // 3600, p["limit"]) for p in
             profile["charging_schedule"]["charging_schedule_period"]]  # fmt: skip
    assert hours == [(0, 60000.0), (14, 10000.0), (17, 60000.0), (19, 10000.0), (22, 60000.0)]
    assert (profile["charging_profile_kind"], profile["recurrency_kind"]) == ("Recurring", "Daily")
    assert profile["charging_profile_purpose"] == "ChargePointMaxProfile"
    assert profile["charging_schedule"]["start_schedule"].endswith("T16:00:00Z")


def _hours(profile):
    return [(p["start_period"] // 3600, p["limit"]) for p in
            profile["charging_schedule"]["charging_schedule_period"]]  # fmt: skip


def _online(pile):
    """The gateway marks a pile online from its heartbeat (through its write batches)."""
    for _ in range(100):
        if Pile.objects.filter(pk=pile.pk, is_online=True).exists():
            return
        time.sleep(0.05)
    raise AssertionError(f"{pile.code} never came online")


def _deliver_all():
    for event in OutboxEvent.objects.filter(delivered_at__isnull=True):
        event_deliver(event_id=event.pk)


MORNING_PEAK = schedule_from_ranges([("00:00", "10:00", 3), ("10:00", "12:00", 1),
                                     ("12:00", "24:00", 3)])  # fmt: skip


def test_a_tariff_change_re_sends_the_time_of_use_cap_to_connected_piles(gateway, eager_here):
    station = tariffed_station(peak_power_limit_kw=Decimal("20"))
    pile = world.pile(station, max_power_kw=Decimal("60"))
    world.pile(station, max_power_kw=Decimal("60"))  # offline: it gets its cap at its boot
    plan = tariff_plan_create(operator=station.operator, name=f"morning {station.code}")
    since = timezone.now() - dt.timedelta(days=1)
    morning = tariff_version_create(
        plan=plan, schedule=MORNING_PEAK, prices=prices(), effective_from=since
    )
    later_plan = tariff_plan_create(operator=station.operator, name=f"later {station.code}")
    tariff_version_create(
        plan=later_plan, schedule=DOMAIN_SCHEDULE, prices=prices(), effective_from=since
    )

    def change(service, **kwargs):
        service(**kwargs)
        _deliver_all()

    async def script(sim):
        await sim.heartbeat()
        await asyncio.to_thread(_online, pile)
        await asyncio.to_thread(change, station_tariff_assign, station=station, plan=plan)
        assigned = _hours(sim.profiles[TIME_OF_USE_ID])
        # A correction of the version in force (no bill used it yet): sent again.
        evening = schedule_from_ranges([("00:00", "18:00", 3), ("18:00", "21:00", 0),
                                        ("21:00", "24:00", 3)])  # fmt: skip
        await asyncio.to_thread(change, tariff_version_update, version=morning, schedule=evening)
        corrected = _hours(sim.profiles[TIME_OF_USE_ID])
        sent = len(sim.requests)
        # A change that starts tomorrow is not in force: nothing sent now; the refresh
        # sends only caps that differ from the tariff in force (not this pile's).
        await asyncio.to_thread(
            change,
            station_tariff_assign,
            station=station,
            plan=later_plan,
            effective_from=timezone.now() + dt.timedelta(days=1),
        )
        await asyncio.to_thread(time_of_use_refresh)
        return assigned, corrected, len(sim.requests) - sent

    assigned, corrected, sent_later = _play(gateway, pile, script)
    # The station's 20 kW peak limit shared by its two piles, in the new plan's peak hours.
    assert assigned == [(0, 60000.0), (10, 10000.0), (12, 60000.0)]
    assert corrected == [(0, 60000.0), (18, 10000.0), (21, 60000.0)]
    assert sent_later == 0
    stored = ChargingProfile.objects.get(pile=pile, profile_id=TIME_OF_USE_ID)
    assert (stored.periods, stored.outcome) == (
        [[0, 60000], [18 * 3600, 10000], [21 * 3600, 60000]],
        "accepted",
    )
    # Its first plan (tariffed_station), the new plan, the correction, the later plan.
    changed = OutboxEvent.objects.filter(
        kind="station.tariff_changed", payload__station_ids__contains=[station.pk]
    )
    assert changed.count() == 4


def test_changed_power_settings_reach_connected_piles(gateway, eager_here):
    station = tariffed_station(peak_power_limit_kw=Decimal("20"))
    pile = world.pile(station, max_power_kw=Decimal("60"))
    staff = get_user_model().objects.create_superuser(username=f"p-{pile.code}", password="x")

    def update(**changes):
        station_update(station=station, changes=changes, actor=staff)
        _deliver_all()

    async def script(sim):
        await sim.heartbeat()
        await asyncio.to_thread(_online, pile)
        await asyncio.to_thread(update, peak_power_limit_kw=Decimal("30"))
        raised = _hours(sim.profiles[TIME_OF_USE_ID])
        await asyncio.to_thread(update, name=f"renamed {station.code}")  # not a power field
        await asyncio.to_thread(update, peak_power_limit_kw=None)
        return raised, dict(sim.profiles), [(a, k.get("id")) for a, k in sim.requests]

    raised, held, asked = _play(gateway, pile, script)
    assert raised == [(0, 60000.0), (14, 30000.0), (17, 60000.0), (19, 30000.0), (22, 60000.0)]
    # No peak limit any more: the cap is cleared from the pile and forgotten.
    assert held == {}
    assert asked == [("SetChargingProfile", None), ("ClearChargingProfile", TIME_OF_USE_ID)]
    assert not ChargingProfile.objects.filter(pile=pile).exists()
    changed = OutboxEvent.objects.filter(kind="station.power_changed", key=str(station.pk))
    assert changed.count() == 2
    assert AuditLog.objects.filter(action="station_update", object_id=str(station.pk)).count() == 3


def _limits(*sims):
    return {
        (sim.id, pid): p["charging_schedule"]["charging_schedule_period"][0]["limit"]
        for sim in sims
        for pid, p in sim.profiles.items()
    }


def _play(gateway, pile, script):
    async def run():
        async with serving(gateway.url, pile.code, pile.password, pile_class=FeaturePile) as sim:
            return await script(sim)

    return asyncio.run(run())


def _play_two(gateway, one, two, script):
    async def run():
        async with (
            serving(gateway.url, one.code, one.password, pile_class=FeaturePile) as a,
            serving(gateway.url, two.code, two.password, pile_class=FeaturePile) as b,
        ):
            return await script(a, b)

    return asyncio.run(run())
