"""Issue 15, reservations over real sockets: ReserveNow / CancelReservation, a reserved
connector starting only for its driver, StartTransaction with reservationId ending it, the
pile refusing (Occupied, Faulted, NotSupported) or dropping mid-command, expiry."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from ocpp.v16 import call

from billing.models import ChargingSession
from billing.services.reservations import reservations_active, reservations_expire
from chargenet.models import AuditLog, OutboxEvent
from protocol import intents
from protocol.adapters import Outcome
from protocol.simulator import iso
from stations.models import Reservation, ReservationState

from . import world
from .clients import serving
from .ocpp16_pile import FeaturePile

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


def play(gateway, pile, script):
    async def run():
        async with serving(gateway.url, pile.code, pile.password, pile_class=FeaturePile) as sim:
            return await script(sim)

    return asyncio.run(run())


def soon(minutes=30):
    return timezone.now().replace(microsecond=0) + dt.timedelta(minutes=minutes)


def test_a_reserved_connector_starts_only_for_its_driver_whose_start_ends_it(gateway):
    pile = world.pile(connectors=2)
    gun = pile.connectors.get(number=1)
    op = pile.station.operator
    driver, other = world.member(op), world.member(op)
    staff = get_user_model().objects.create_superuser(username=f"r-{pile.code}", password="x")
    until = soon()

    async def script(sim):
        reserved = await asyncio.to_thread(
            intents.connector_reserve, connector=gun, member=driver, expires_at=until,
            acting_user=staff,
        )  # fmt: skip
        refused = await sim.start_tx(1, other.token)
        reservation_id = next(iter(sim.reservations))
        started = await sim.call(call.StartTransaction(
            connector_id=1, id_tag=driver.token, meter_start=sim.meter_wh,
            timestamp=iso(sim.now()), reservation_id=reservation_id,
        ))  # fmt: skip
        return reserved, refused, started, sim.reservations[reservation_id]

    reserved, refused, started, on_pile = play(gateway, pile, script)
    reservation = Reservation.objects.get(connector=gun)
    assert (reserved.outcome, reserved.message) == (
        Outcome.ACCEPTED,
        f"Pile {pile.code} accepted: reserve connector 1 for {driver} until "
        f"{timezone.localtime(until):%Y-%m-%d %H:%M}.",
    )
    assert on_pile == {
        "connector_id": 1,
        "expiry_date": f"{until:%Y-%m-%dT%H:%M:%SZ}",
        "id_tag": driver.token,
        "reservation_id": reservation.pk,
    }
    assert refused.id_tag_info["status"] == "Invalid"
    assert ChargingSession.objects.get(pk=refused.transaction_id).refused_as == "reserved"
    assert started.id_tag_info["status"] == "Accepted"
    assert (reservation.state, reservation.session_id) == (
        ReservationState.USED,
        started.transaction_id,
    )
    events = OutboxEvent.objects.filter(kind="reservation.changed", key=str(reservation.pk))
    assert [e.payload["state"] for e in events.order_by("pk")] == ["active", "used"]
    assert list(reservations_active(station_id=pile.station_id)) == []
    entry = AuditLog.objects.get(action="pile_intent", object_id=str(pile.pk))
    assert entry.before == {
        "intent": "connector_reserve",
        "connector": 1,
        "reservation": reservation.pk,
        "member": driver.pk,
        "expires_at": until.isoformat(),
    }


@pytest.mark.parametrize(
    "answer, outcome, reason",
    [
        ("Occupied", Outcome.REJECTED, "The connector is in use."),
        ("Faulted", Outcome.REJECTED, "The connector is faulted."),
        ("Rejected", Outcome.REJECTED, ""),
        ("CALLERROR NotSupported", Outcome.NOT_SUPPORTED, ""),
    ],
)
def test_a_pile_refusing_the_reservation_leaves_it_refused(gateway, answer, outcome, reason):
    pile = world.pile()
    gun = pile.connectors.get()
    driver = world.member(pile.station.operator)

    async def script(sim):
        sim.answers["ReserveNow"] = answer
        return await asyncio.to_thread(
            intents.connector_reserve, connector=gun, member=driver, expires_at=soon()
        )

    result = play(gateway, pile, script)
    assert (result.outcome, result.answer.reason) == (outcome, reason)
    assert Reservation.objects.get(connector=gun).state == ReservationState.REFUSED
    # The connector is free again for anyone.
    assert not reservations_active(connector_id=gun.pk).exists()


def test_a_pile_going_offline_mid_reservation(gateway):
    pile = world.pile()
    gun = pile.connectors.get()
    driver = world.member(pile.station.operator)

    async def script(sim):
        sim.drop_on = "ReserveNow"
        return await asyncio.to_thread(
            intents.connector_reserve, connector=gun, member=driver, expires_at=soon()
        )

    assert play(gateway, pile, script).outcome == Outcome.OFFLINE
    assert Reservation.objects.get(connector=gun).state == ReservationState.REFUSED
    offline = intents.connector_reserve(connector=gun, member=driver, expires_at=soon(), timeout=2)
    assert offline.outcome == Outcome.OFFLINE


def test_cancel_ends_it_in_the_core_and_releases_it_on_the_pile(gateway):
    pile = world.pile()
    gun = pile.connectors.get()
    driver = world.member(pile.station.operator)
    staff = get_user_model().objects.create_superuser(username=f"c-{pile.code}", password="x")

    async def script(sim):
        await asyncio.to_thread(
            intents.connector_reserve, connector=gun, member=driver, expires_at=soon()
        )
        reservation = await asyncio.to_thread(Reservation.objects.get, connector=gun)
        cancelled = await asyncio.to_thread(
            intents.reservation_cancel, reservation=reservation, acting_user=staff
        )
        again = await asyncio.to_thread(intents.reservation_cancel, reservation=reservation)
        return reservation, cancelled, again, dict(sim.reservations)

    reservation, cancelled, again, held = play(gateway, pile, script)
    assert (cancelled.outcome, cancelled.message) == (
        Outcome.ACCEPTED,
        f"Pile {pile.code} accepted: cancel reservation {reservation.pk} on connector 1.",
    )
    assert held == {}
    reservation.refresh_from_db()
    assert reservation.state == ReservationState.CANCELLED
    assert again.outcome == Outcome.INVALID
    ended = AuditLog.objects.get(action="reservation_end", object_id=str(reservation.pk))
    assert (ended.actor, ended.before, ended.after) == (
        staff,
        {"state": "active"},
        {"state": "cancelled"},
    )


def test_the_core_refuses_what_it_cannot_hold_without_asking_the_pile():
    pile = world.pile()
    gun = pile.connectors.get()
    op = pile.station.operator
    blocked = world.member(op, status="blocked")
    driver = world.member(op)
    world.session(pile, state="started")
    charging = intents.connector_reserve(connector=gun, member=driver, expires_at=soon())
    refused = intents.connector_reserve(connector=gun, member=blocked, expires_at=soon())
    too_long = intents.connector_reserve(connector=gun, member=driver, expires_at=soon(60 * 5))
    assert [r.outcome for r in (charging, refused, too_long)] == [Outcome.INVALID] * 3
    assert [r.answer.reason for r in (charging, refused, too_long)] == [
        "The connector is charging.",
        "The member cannot charge now (blocked).",
        "A reservation ends within the next 2 hours.",
    ]
    assert not Reservation.objects.filter(connector=gun).exists()


def test_expired_reservations_end_and_no_longer_hold_the_connector():
    pile = world.pile()
    gun = pile.connectors.get()
    driver = world.member(pile.station.operator)
    reservation = Reservation.objects.create(
        connector=gun, member=driver, id_tag=driver.token, expires_at=soon(-1)
    )
    assert not reservations_active(member_id=driver.pk).exists()
    assert reservations_expire() >= 1
    reservation.refresh_from_db()
    assert reservation.state == ReservationState.EXPIRED
