"""`simulate_piles` drives existing piles with the demo credential convention."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command

from billing.models import ChargingSession
from protocol.models import Frame
from protocol.services import journal_prune
from stations.models import Pile

from . import world

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


@pytest.mark.parametrize("scenario", ["normal", "clock-skew"])
def test_simulate_piles_plays_a_scenario_on_existing_piles(gateway, scenario):
    pile = world.pile()
    Pile.objects.filter(pk=pile.pk).update(
        credential_hash=world.fast_hash(f"demo-{pile.code[-4:]}")
    )
    member = world.member(pile.station.operator)
    call_command(
        "simulate_piles", "--url", gateway.url, "--codes", pile.code, "--scenario", scenario
    )
    session = ChargingSession.objects.get(pile=pile)
    assert (session.state, session.member_id, session.samples.count()) == ("stopped", member.pk, 3)
    skew = session.started_at - session.created_at
    if scenario == "clock-skew":
        assert dt.timedelta(hours=1, minutes=59) < skew < dt.timedelta(hours=2, minutes=1)
    else:
        assert abs(skew) < dt.timedelta(minutes=1)


def test_journal_prune_keeps_the_retention_window(settings):
    settings.GATEWAY_JOURNAL_RETENTION_DAYS = 30
    now = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    for days in (31, 29):
        Frame.objects.create(
            at=now - dt.timedelta(days=days),
            pile_code="prune-test",
            direction="in",
            message_type=2,
            action="Heartbeat",
        )
    assert journal_prune(now=now) == 1
    assert list(Frame.objects.filter(pile_code="prune-test").values_list("at", flat=True)) == [
        now - dt.timedelta(days=29)
    ]


@pytest.mark.parametrize(("glitch_rate", "beyond_samples_wh"), [(0.0, 0), (1.0, 5000)])
def test_demo_charge_sometimes_reports_a_stop_reading_past_its_samples(
    gateway, monkeypatch, glitch_rate, beyond_samples_wh
):
    """The demo keeps the repair desk fed: a glitching pile's stop reading jumps past its
    last meter sample (fault code 8 at settlement); a healthy one stops where it sampled."""
    import asyncio

    from protocol import simulator

    monkeypatch.setattr(simulator, "DEMO_IDLE_SECONDS", (0.0, 0.0))
    monkeypatch.setattr(simulator, "DEMO_SAMPLE_SECONDS", 0.01)
    monkeypatch.setattr(simulator, "DEMO_ENERGY_GLITCH_RATE", glitch_rate)
    pile = world.pile()
    member = world.member(pile.station.operator)
    asyncio.run(
        simulator.scenario_demo(gateway.url, pile.code, pile.password, member.token, forever=False)
    )
    session = ChargingSession.objects.get(pile=pile)
    last_sample = session.samples.order_by("-at").first()
    assert session.state == "stopped"
    assert session.meter_stop_wh - last_sample.energy_wh == beyond_samples_wh
