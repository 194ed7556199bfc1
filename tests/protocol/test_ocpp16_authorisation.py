"""Issue 15, over real sockets: DataTransfer vendor ids, expired members and cards, the
desired configuration pushed at boot and on change, and local authorisation lists (full,
differential, re-sent on change, a start made offline from the list billed)."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from decimal import Decimal

import pytest
from celery.signals import task_prerun
from django.utils import timezone
from ocpp.v16 import call

from billing.models import Bill, ChargingSession
from billing.services.local_lists import local_list_entries
from billing.services.wallet import wallet_recharge
from chargenet.celery import app as celery_app
from chargenet.celery import tasks_send
from chargenet.events import event_deliver
from chargenet.models import AuditLog, OutboxEvent
from protocol import intents
from protocol.adapters import Outcome
from protocol.models import Frame
from protocol.sync import pile_local_list_sync
from protocol.tasks import piles_booted_sync_task
from stations.models import PileFault, PileLocalList
from stations.services.configuration import ConfigurationInvalid, configuration_desired_set
from tests.billing.factories import tariffed_station

from . import world
from .clients import serving
from .conftest import GatewayProcess, wait_for
from .ocpp16_pile import FeaturePile

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


@pytest.fixture(scope="module")
def eager_gateway(live_db):
    """A gateway whose Celery tasks run in it at once (the sync after a boot)."""
    gw = GatewayProcess(
        node=f"gw-o-{uuid.uuid4().hex[:6]}",
        env={"CELERY_TASK_ALWAYS_EAGER": "1", "OCPP_DATA_TRANSFER_VENDOR_IDS": "CN.Star,CN.Wb"},
    ).start()
    yield gw
    gw.stop()


@pytest.fixture
def eager_here():
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


def sent(pile, action, *, count):
    """The payloads of the ``count`` CALLs the gateway sent ``pile`` for ``action``."""
    frames = Frame.objects.filter(pile_code=pile.code, action=action, direction="out")
    frames = frames.filter(message_type=2).order_by("pk")
    return wait_for(lambda: frames.count() == count and [f.payload for f in frames.all()])


def play(gateway, pile, script, pile_class=FeaturePile):
    async def run():
        async with serving(gateway.url, pile.code, pile.password, pile_class=pile_class) as sim:
            return await script(sim)

    return asyncio.run(run())


def test_data_transfer_from_an_unknown_vendor_is_answered_unknown_vendor_id(eager_gateway):
    pile = world.pile()

    async def script(sim):
        unknown = await sim.call(call.DataTransfer(vendor_id="ACME", message_id="VIN"))
        known = await sim.call(call.DataTransfer(vendor_id="CN.Star", message_id="Price"))
        return unknown.status, known.status

    assert play(eager_gateway, pile, script) == ("UnknownVendorId", "UnknownMessageId")


def test_an_expired_member_and_card_are_answered_expired(eager_gateway):
    pile = world.pile(connectors=2)
    op = pile.station.operator
    past = timezone.now() - dt.timedelta(minutes=1)
    expired = world.member(op, expires_at=past)
    holder = world.member(op, expires_at=timezone.now() + dt.timedelta(days=30))
    card = world.card(op, owner=holder, expires_at=past)
    valid = world.member(op)

    async def script(sim):
        said = [await sim.authorize(tag) for tag in (expired.token, card.number, holder.token)]
        first = await sim.start_tx(1, expired.token)
        second = await sim.start_tx(2, card.number)
        return said, first.id_tag_info["status"], second.id_tag_info["status"]

    said, first, second = play(eager_gateway, pile, script)
    assert (said, first, second) == (["Expired", "Expired", "Accepted"], "Expired", "Expired")
    assert sorted(ChargingSession.objects.filter(pile=pile).values_list("refused_as", flat=True))
    assert set(ChargingSession.objects.filter(pile=pile).values_list("state", "refused_as")) == {
        ("refused", "expired")
    }
    assert valid.expires_at is None


def test_desired_configuration_is_pushed_at_boot_and_on_change(eager_gateway, eager_here):
    pile = world.pile()
    other = world.pile(pile.station)
    staff = world_staff(pile)
    configuration_desired_set(
        station=pile.station, key="HeartbeatInterval", value="30", acting_user=staff
    )
    configuration_desired_set(pile=pile, key="HeartbeatInterval", value="45", acting_user=staff)
    configuration_desired_set(
        station=pile.station, key="AuthorizationCacheEnabled", value="False", acting_user=staff
    )

    async def script(sim):
        await sim.boot()
        await asyncio.to_thread(
            wait_for, lambda: sim.config["AuthorizationCacheEnabled"] == "false"
        )
        pushed_at_boot = dict(sim.config)
        await asyncio.to_thread(
            configuration_desired_set,
            pile=pile,
            key="MeterValueSampleInterval",
            value="15",
            acting_user=staff,
        )
        event = await asyncio.to_thread(
            lambda: OutboxEvent.objects.filter(kind="pile.configuration_changed").latest("pk")
        )
        await asyncio.to_thread(event_deliver, event_id=event.pk)
        return pushed_at_boot, dict(sim.config)

    at_boot, after = play(eager_gateway, pile, script)
    assert (at_boot["HeartbeatInterval"], at_boot["MeterValueSampleInterval"]) == ("45", "60")
    assert after["MeterValueSampleInterval"] == "15"
    entry = AuditLog.objects.filter(action="configuration_desired_set").latest("pk")
    assert (entry.actor, entry.before, entry.after) == (
        staff,
        {"key": "MeterValueSampleInterval", "value": None},
        {"key": "MeterValueSampleInterval", "value": "15"},
    )
    assert not Frame.objects.filter(pile_code=other.code).exists()


def test_the_boots_of_a_moment_are_one_task_that_syncs_each_pile_once(eager_here):
    """The gateway's tasks sender joins the moment's boots (`piles_booted_sync_task` merges
    its lists); in a worker it queues one `pile_sync_task` per pile."""
    a, b = world.pile(), world.pile()
    ran = []

    def record(sender=None, task=None, args=None, **_kwargs):
        ran.append((task.name, list(args)))

    task_prerun.connect(record, weak=False)
    try:
        tasks_send(
            [
                (piles_booted_sync_task, ([a.pk],)),
                (piles_booted_sync_task, ([b.pk, a.pk],)),  # a booted again meanwhile
            ]
        )
    finally:
        task_prerun.disconnect(record)
    assert ran == [
        ("protocol.piles_booted_sync", [[a.pk, b.pk, a.pk]]),
        ("protocol.pile_sync", [a.pk]),
        ("protocol.pile_sync", [b.pk]),
    ]


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("HeartbeatInterval", "600", "The heartbeat interval can be at most 60 s"),
        ("LocalAuthListEnabled", "yes", "LocalAuthListEnabled is true or false; got “yes”."),
        ("HeartbeatInterval", "-5", "HeartbeatInterval is a number of seconds; got “-5”."),
    ],
)
def test_a_desired_configuration_the_pile_cannot_take_is_refused(key, value, message):
    pile = world.pile()
    with pytest.raises(ConfigurationInvalid) as refused:
        configuration_desired_set(pile=pile, key=key, value=value)
    assert str(refused.value.message).startswith(message)
    assert not pile.configuration.exists()


def world_staff(pile):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(
        username=f"ops-{pile.code}", password="x", operator=pile.station.operator,
        role="operator_admin", is_staff=True,
    )  # fmt: skip


def depot(station=None):
    """A depot station: a bound fleet with a driver, a card and a VIN."""
    pile = world.pile(station)
    op = pile.station.operator
    fleet = world.department(op)
    pile.station.departments.add(fleet)
    driver = world.member(op, department=fleet)
    card = world.card(op, owner=world.member(op), department=fleet)
    bus = world.vehicle(op, vin=f"LSVAU2180N{random.randint(0, 10**7 - 1):07d}", dept=fleet)
    stranger = world.member(op)
    configuration_desired_set(station=pile.station, key="LocalAuthListEnabled", value="true")
    return pile, driver, card, bus, stranger


def test_local_list_full_then_differences_then_full_after_a_mismatch(eager_gateway):
    pile, driver, card, bus, stranger = depot()
    later = timezone.now() + dt.timedelta(days=10)

    async def script(sim):
        await sim.boot()
        await asyncio.to_thread(wait_for, lambda: sim.list_version == 1)
        first = dict(sim.local_list)
        # Changes: the driver blocked, the card expires later; a new fleet driver.
        await asyncio.to_thread(type(driver).objects.filter(pk=driver.pk).update, status="blocked")
        await asyncio.to_thread(type(card).objects.filter(pk=card.pk).update, expires_at=later)
        newcomer = await asyncio.to_thread(
            world.member, pile.station.operator, department=driver.department
        )
        diff = await asyncio.to_thread(pile_local_list_sync, pile=pile)
        second = dict(sim.local_list)
        unchanged = await asyncio.to_thread(pile_local_list_sync, pile=pile)
        sim.list_version = 7  # the pile lost its list (a firmware reset)
        again = await asyncio.to_thread(pile_local_list_sync, pile=pile)
        return first, diff, second, unchanged, again, newcomer

    first, diff, second, unchanged, again, newcomer = play(eager_gateway, pile, script)
    assert first == {
        driver.token: {"status": "Accepted"},
        card.number: {"status": "Accepted"},
        bus.vin: {"status": "Accepted"},
    }
    assert (diff.outcome, diff.message) == (
        Outcome.ACCEPTED,
        f"Pile {pile.code} accepted: store local list version 2 (3 changes).",
    )
    assert second == {
        driver.token: {"status": "Blocked"},
        card.number: {"status": "Accepted", "expiry_date": f"{later:%Y-%m-%dT%H:%M:%SZ}"},
        bus.vin: {"status": "Accepted"},
        newcomer.token: {"status": "Accepted"},
    }
    assert unchanged is None
    assert again.message == (
        f"Pile {pile.code} accepted: store local list version 3 (4 entries, full)."
    )
    assert [p["updateType"] for p in sent(pile, "SendLocalList", count=3)] == [
        "Full", "Differential", "Full",
    ]  # fmt: skip
    assert PileLocalList.objects.get(pile=pile).version == 3
    assert stranger.token not in local_list_entries(pile=pile)


@pytest.mark.parametrize(
    "answer, outcome, reason",
    [
        ("NotSupported", Outcome.NOT_SUPPORTED, ""),
        ("Failed", Outcome.REJECTED, "The pile could not store the list."),
    ],
)
def test_a_pile_that_cannot_store_the_list_keeps_the_platform_version(
    eager_gateway, answer, outcome, reason
):
    pile, *_rest = depot()

    async def script(sim):
        sim.answers["SendLocalList"] = answer
        return await asyncio.to_thread(pile_local_list_sync, pile=pile)

    result = play(eager_gateway, pile, script)
    assert (result.outcome, result.answer.reason) == (outcome, reason)
    assert not PileLocalList.objects.filter(pile=pile).exists()


def test_a_pile_going_offline_mid_list_is_offline_and_the_list_is_not_recorded(eager_gateway):
    pile, *_rest = depot()

    async def script(sim):
        sim.drop_on = "SendLocalList"
        return await asyncio.to_thread(pile_local_list_sync, pile=pile)

    result = play(eager_gateway, pile, script)
    assert result.outcome == Outcome.OFFLINE
    assert not PileLocalList.objects.filter(pile=pile).exists()


def test_a_start_made_offline_from_the_local_list_is_billed(settling_gateway):
    pile, driver, *_rest = depot(tariffed_station())
    wallet_recharge(member=driver, amount=Decimal("100.00"), reference=f"WX{driver.pk}")
    started = timezone.now() - dt.timedelta(hours=1)
    # What the offline sweep recorded while the link was down.
    PileFault.objects.create(
        pile=pile,
        kind=PileFault.Kind.OFFLINE,
        started_at=started - dt.timedelta(minutes=5),
        ended_at=timezone.now(),
    )

    async def script(sim):
        # The link was down: the pile let the driver charge from its list, and reports
        # the start and the stop once it is back.
        await sim.boot()
        tx = (await sim.start_tx(1, driver.token, at=started)).transaction_id
        sim.meter_wh += 12_000
        stopped = started + dt.timedelta(minutes=40)
        await sim.call(call.StopTransaction(
            meter_stop=sim.meter_wh, timestamp=f"{stopped:%Y-%m-%dT%H:%M:%SZ}",
            transaction_id=tx, reason="Local",
        ))  # fmt: skip
        return tx

    tx = play(settling_gateway, pile, script)
    bill = wait_for(lambda: Bill.objects.filter(session_id=tx).first())
    assert (bill.session.member, bill.energy_wh, bill.fault_codes, bill.payment_state) == (
        driver,
        Decimal(12000),
        [],
        "paid",
    )


def test_intents_local_list_version_and_configuration_are_audited(eager_gateway):
    pile = world.pile()
    staff = world_staff(pile)

    async def script(sim):
        sim.list_version = 4
        return await asyncio.to_thread(
            intents.pile_local_list_version, pile=pile, acting_user=staff
        )

    result = play(eager_gateway, pile, script)
    assert (result.outcome, result.answer.list_version) == (Outcome.ACCEPTED, 4)
    entry = AuditLog.objects.get(action="pile_intent", object_id=str(pile.pk))
    assert entry.after == {
        "outcome": "accepted",
        "message": f"Pile {pile.code} accepted: report its local list version.",
        "list_version": 4,
    }
