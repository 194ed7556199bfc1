"""Over real sockets: a driver reserves a connector through the HTTP API (live server →
`connector_reserve` → a real gateway process → the pile's ReserveNow), sees it listed,
and cancels it (CancelReservation reaches the pile)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from billing.services.wallet import wallet_recharge
from orgs.drivers import driver_token_issue
from stations.models import Connector, Pile, Reservation, ReservationState
from tests.billing.factories import tariffed_station
from tests.driverapi.test_end_to_end import http
from tests.protocol import world
from tests.protocol.clients import serving
from tests.protocol.conftest import wait_for
from tests.protocol.ocpp16_pile import FeaturePile

pytestmark = [
    pytest.mark.gateway,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("gateway_quiet_after"),
]


def test_a_driver_reserves_and_cancels_on_a_connected_pile(live_server, settling_gateway):
    station = tariffed_station()
    pile = world.pile(station, is_published=True, max_power_kw=Decimal("60.00"))
    connector = Connector.objects.get(pile=pile)
    member = world.member(station.operator)
    wallet_recharge(member=member, amount=Decimal("20.00"), reference=f"resv-{member.pk}")
    token = driver_token_issue(member=member).key
    base = live_server.url

    async def run():
        async with serving(
            settling_gateway.url, pile.code, pile.password, pile_class=FeaturePile
        ) as sim:
            await sim.boot()
            await sim.status(1, "Available")
            await asyncio.to_thread(
                wait_for, lambda: Pile.objects.filter(pk=pile.pk, is_online=True).exists()
            )
            status, made = await asyncio.to_thread(
                http, base, "POST", f"connectors/{connector.pk}/reservation", token=token,
                body={"minutes": 10},
            )  # fmt: skip
            assert status == 201, made
            [(action, asked)] = sim.requests
            assert (action, asked["connector_id"], asked["id_tag"]) == (
                "ReserveNow",
                1,
                member.token,
            )
            assert asked["reservation_id"] == made["id"]
            status, mine = await asyncio.to_thread(http, base, "GET", "reservations/", token=token)
            assert (status, [r["id"] for r in mine]) == (200, [made["id"]])
            status, _ = await asyncio.to_thread(
                http, base, "DELETE", f"reservations/{made['id']}", token=token
            )
            assert status == 204
            assert sim.requests[-1] == ("CancelReservation", {"reservation_id": made["id"]})
            return made["id"]

    reservation_id = asyncio.run(run())
    assert Reservation.objects.get(pk=reservation_id).state == ReservationState.CANCELLED
