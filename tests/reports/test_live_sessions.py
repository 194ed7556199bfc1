"""The live-sessions screen: who sees which session in progress (the bills' rule), what a
row says (the amount so far is the engine's price of the samples so far), its query
budget, its refresh endpoint and the audited remote stop."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.models import ChargingSession, MeterSample
from billing.pricing import price_session
from billing.selectors import session_samples, tariff_specs_for
from chargenet.models import AuditLog
from reports.live import live_sessions_read
from tests.admin_forms import admin_messages, signed_in
from tests.billing.factories import ConnectorFactory, PileFactory, tariffed_station
from tests.factories import StaffFactory
from tests.world import build_world, client_as

pytestmark = pytest.mark.django_db

_numbers = iter(range(1, 10_000))


def live_session(station, *, pile=None, state="charging", started_at=None, samples=(), **kw):
    """A session in progress at ``station`` (a pile of its own unless given) with meter
    samples (minutes after the start, register Wh[, power W, SoC])."""
    n = next(_numbers)
    pile = pile or station.piles.first() or PileFactory(station=station)
    connector = pile.connectors.first() or ConnectorFactory(pile=pile)
    started_at = started_at or timezone.now() - dt.timedelta(minutes=30)
    session = ChargingSession.objects.create(
        order_no=f"2026112900000000{n:04d}",
        operator=station.operator,
        station=station,
        pile=pile,
        connector=connector,
        protocol_ref=str(n),
        id_tag="T",
        state=state,
        started_at=started_at,
        meter_start_wh=D("1000"),
        **kw,
    )
    for minutes, energy, *rest in samples:
        MeterSample.objects.create(
            session=session,
            at=started_at + dt.timedelta(minutes=minutes),
            energy_wh=D(energy),
            power_w=D(rest[0]) if rest else None,
            soc=rest[1] if len(rest) > 1 else None,
        )
    return session


@pytest.fixture
def world(db):
    world = build_world()
    rows = world.rows
    rows["live1"] = live_session(rows["s1"], sub_operator=rows["sub_x"])
    rows["live2"] = live_session(rows["s2"])
    # Attributed to sub X at a station X is not on: X sees it, as it sees its bill.
    rows["live2x"] = live_session(
        rows["s2"], pile=PileFactory(station=rows["s2"]), sub_operator=rows["sub_x"]
    )
    rows["live3"] = live_session(rows["s3"])
    live_session(rows["s2"], pile=PileFactory(station=rows["s2"]), state="stopped")  # over
    return world


VISIBLE = {
    "admin_a": {"live1", "live2", "live2x"},
    "service_a": {"live1", "live2", "live2x"},
    "subop_x": {"live1", "live2x"},
    "subop_y": set(),
    "admin_b": {"live3"},
}


@pytest.mark.parametrize("user", [*VISIBLE, "anonymous"])
def test_each_staff_member_sees_the_sessions_in_progress_whose_bills_they_would_see(
    client, world, user
):
    client_as(client, world, user)
    response = client.get(reverse("live_sessions_json"))
    if user == "anonymous":
        assert response.status_code == 302 and "/login/" in response["Location"]
        return
    shown = {row["id"] for row in response.json()["rows"]}
    assert shown == {world[name].pk for name in VISIBLE[user]}
    page = client.get(reverse("live_sessions"))
    assert {row["id"] for row in page.context["rows"]} == shown


def test_a_row_says_who_where_how_much_so_far_and_that_the_amount_is_an_estimate(client, db):
    # DOMAIN.md's AC flat period (08:00–14:00): 0.64 + 0.51 yuan/kWh.
    station = tariffed_station()
    pile = PileFactory(station=station, current_type="AC", code="44200100020000000077")
    start = dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
    session = live_session(
        station,
        pile=pile,
        started_at=start,
        channel="scan",
        vin="LGXC16DF5M1000001",
        samples=[(10, "4000", "7000.0", 41), (20, "7000", "7200.0", 55), (25, "8512.345")],
    )
    staff = StaffFactory(operator=station.operator)
    signed_in(client, staff)
    now = start + dt.timedelta(minutes=26, seconds=5)
    [live] = live_sessions_read(sessions=ChargingSession.objects.filter(pk=session.pk), now=now)
    # 7.512345 kWh at 1.15 yuan/kWh = 8.63919675, to the fen downwards.
    assert (live.energy_wh, live.power_w, live.soc, live.amount, live.duration_s) == (
        D("7512.345"),
        D("7200.0"),
        55,
        D("8.63"),
        1565,
    )
    engine = price_session(
        samples=session_samples(session),
        tariffs=tariff_specs_for(station=station, current_type="AC", start=start, end=now),
        zone=station.time_zone,
        rounding=station.operator.rounding_mode,
    )
    assert live.amount == engine.total
    [row] = client.get(reverse("live_sessions_json")).json()["rows"]
    assert row["cells"][:6] == [
        session.order_no,
        station.name,
        "44200100020000000077",
        "1",
        "OCPP 1.6J",
        "scan (WeChat)",
    ]
    assert row["cells"][8] == "LGXC16DF5M1000001"
    assert row["cells"][12] == "2026-11-29 10:00:00"
    assert row["cells"][14:] == ["7.512", "7.2", "55", "≈ 8.63"]


def test_a_session_without_a_tariff_says_why_it_is_not_priced(client, world):
    signed_in(client, world["admin_b"])
    [row] = client.get(reverse("live_sessions_json")).json()["rows"]
    assert row["cells"][-1].startswith("not priced: No tariff is in force at ")


def screen_queries(client) -> int:
    """The queries of the page and its refresh."""
    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse("live_sessions")).status_code == 200
        assert client.get(reverse("live_sessions_json")).status_code == 200
    return len(captured)


def test_the_page_costs_the_same_queries_for_one_or_many_sessions(client, world):
    signed_in(client, world["admin_a"])
    client.get(reverse("live_sessions"))  # warm the caches (content types, permissions)
    few = screen_queries(client)
    for _ in range(6):
        live_session(world["s2"], pile=PileFactory(station=world["s2"]), samples=[(5, "2000")])
    assert screen_queries(client) == few
    assert few <= 22  # 20, and one query a request for the reservations table


@pytest.mark.parametrize(
    ("user", "status"),
    [("admin_b", 404), ("subop_x", 403), ("admin_a", 302), ("service_a", 302)],
)
def test_stopping_needs_the_remote_command_right_and_the_session_in_scope(
    client, world, user, status
):
    signed_in(client, world[user])
    url = reverse("live_session_stop", args=[world["live1"].pk])
    response = client.post(url, {"next": reverse("live_sessions") + "?channel=scan"})
    assert response.status_code == status
    audited = AuditLog.objects.filter(action="pile_intent")
    if status != 302:
        assert not audited.exists()
        return
    assert response["Location"] == reverse("live_sessions") + "?channel=scan"
    pile = world["live1"].pile
    assert admin_messages(client.get(response["Location"])) == [
        f"Pile {pile.code} is offline; not sent: stop session {world['live1'].order_no}."
    ]
    entry = audited.get()
    assert (entry.actor, entry.object_id, entry.before, entry.after["outcome"]) == (
        world[user],
        str(pile.pk),
        {"intent": "session_stop_remote", "session": world["live1"].order_no},
        "offline",
    )


def test_a_stop_button_shows_only_to_staff_with_the_right(client, world):
    signed_in(client, world["subop_x"])
    assert {r["stop_url"] for r in client.get(reverse("live_sessions_json")).json()["rows"]} == {""}
    signed_in(client, world["admin_a"])
    page = client.get(reverse("live_sessions"))
    assert page.context["can_stop"] is True
    assert reverse("live_session_stop", args=[world["live2"].pk]).encode() in page.content


def test_a_session_that_ended_cannot_be_stopped_from_the_screen(client, world):
    signed_in(client, world["admin_a"])
    ChargingSession.objects.filter(pk=world["live2"].pk).update(state="stopped")
    response = client.post(reverse("live_session_stop", args=[world["live2"].pk]))
    assert response.status_code == 404
    assert not AuditLog.objects.filter(action="pile_intent").exists()


def test_the_page_refreshes_by_a_static_script_under_the_csp(client, world, settings):
    settings.CSP_ENABLED = True
    signed_in(client, world["admin_a"])
    page = client.get(reverse("live_sessions"), {"channel": "scan"})
    html = page.content.decode()
    assert 'src="/static/live/sessions.js"' in html
    assert f'data-json-url="{reverse("live_sessions_json")}?channel=scan"' in html
    assert "script-src 'self'" in page["Content-Security-Policy"]
    assert "<script>" not in html  # nothing inline


def test_the_live_screen_exports_what_it_shows(client, world):
    signed_in(client, world["subop_x"])
    response = client.get(reverse("live_sessions_export", args=["csv"]))
    lines = b"".join(response.streaming_content).decode().lstrip("\ufeff").splitlines()
    assert lines[0].startswith("order number,station,pile,connector,protocol,channel")
    assert sorted(line.split(",")[0] for line in lines[1:]) == sorted(
        [world["live1"].order_no, world["live2x"].order_no]
    )


def test_the_back_office_index_links_the_screen_for_staff_who_may_see_it(client, world):
    from django.contrib.auth.models import Permission

    signed_in(client, world["admin_b"])
    index = client.get(reverse("admin:index"))
    assert reverse("live_sessions").encode() in index.content
    staff = world["admin_b"]
    staff.groups.clear()
    staff.user_permissions.set(Permission.objects.filter(codename="view_bill"))
    index = client.get(reverse("admin:index"))
    assert reverse("live_sessions").encode() not in index.content
