"""The live screen's second table: the reservations (预约) holding a connector now, at the
stations the staff member sees, refreshed by the same JSON endpoint, in a fixed number of
queries whatever their number."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from stations.models import Reservation, ReservationState
from tests.admin_forms import signed_in
from tests.factories import ConnectorFactory, MemberFactory, PileFactory
from tests.reports.test_live_sessions import (
    screen_queries,
    world,  # noqa: F401 (the shared fixture)
)
from tests.world import client_as

pytestmark = pytest.mark.django_db


_numbers = iter(range(1, 10_000))


def reserve(station, *, minutes=20, state=ReservationState.ACTIVE, nickname=""):
    pile = PileFactory(station=station, code=f"44200199{next(_numbers):012d}")
    connector = ConnectorFactory(pile=pile)
    member = MemberFactory(operator=station.operator, nickname=nickname)
    return Reservation.objects.create(
        connector=connector,
        member=member,
        id_tag=member.token,
        state=state,
        expires_at=timezone.now() + dt.timedelta(minutes=minutes, seconds=30),
    )


@pytest.fixture
def held(world):  # noqa: F811
    rows = world.rows
    rows["r1"] = reserve(rows["s1"])
    rows["r2"] = reserve(rows["s2"])
    rows["r3"] = reserve(rows["s3"])
    reserve(rows["s2"], minutes=-5)  # its time is up: not shown, even before the beat ends it
    reserve(rows["s1"], state=ReservationState.CANCELLED)
    return world


VISIBLE = {
    "admin_a": {"r1", "r2"},
    "service_a": {"r1", "r2"},
    "subop_x": {"r1"},
    "subop_y": set(),
    "admin_b": {"r3"},
}


@pytest.mark.parametrize("user", VISIBLE)
def test_each_staff_member_sees_the_reservations_at_the_stations_they_see(client, held, user):
    client_as(client, held, user)
    shown = {row["id"] for row in client.get(reverse("live_sessions_json")).json()["reservations"]}
    assert shown == {held[name].pk for name in VISIBLE[user]}
    page = client.get(reverse("live_sessions"))
    assert {row["id"] for row in page.context["reservations"]} == shown


def test_another_operators_staff_sees_none_of_them(client, held):
    signed_in(client, held["admin_b"])
    html = client.get(reverse("live_sessions")).content.decode()
    for name in ("r1", "r2"):
        assert f'data-reservation="{held[name].pk}"' not in html
    assert f'data-reservation="{held["r3"].pk}"' in html


def test_a_row_says_where_who_since_when_until_when_and_minutes_left(client, held):
    reservation = reserve(held["s2"], minutes=12, nickname="王师傅")
    Reservation.objects.filter(pk=reservation.pk).update(
        created_at=dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
    )
    reservation.refresh_from_db()
    signed_in(client, held["admin_a"])
    rows = client.get(reverse("live_sessions_json"), {"station": held["s2"].pk}).json()
    [row] = [r for r in rows["reservations"] if r["id"] == reservation.pk]
    expires = timezone.localtime(reservation.expires_at, held["s2"].zone)
    assert row["cells"] == [
        "S2",
        reservation.connector.pile.code,
        "1",
        "王师傅",
        "2026-11-29 10:00:00",
        f"{expires:%Y-%m-%d %H:%M:%S}",
        "12",
    ]
    # The station filter narrows the reservations as it does the sessions.
    assert {r["id"] for r in rows["reservations"]} == {held["r2"].pk, reservation.pk}
    page = client.get(reverse("live_sessions"))
    html = page.content.decode()
    assert "Reservations" in html and "王师傅" in html


def test_an_empty_table_says_so(client, held):
    signed_in(client, held["subop_y"])
    html = client.get(reverse("live_sessions")).content.decode()
    assert "No connector is reserved." in html


def test_the_page_costs_the_same_queries_for_one_or_many_reservations(client, held):
    signed_in(client, held["admin_a"])
    client.get(reverse("live_sessions"))  # warm the caches (content types, permissions)
    few = screen_queries(client)
    for _ in range(6):
        reserve(held["s2"])
    assert screen_queries(client) == few
    assert len(client.get(reverse("live_sessions_json")).json()["reservations"]) == 8
