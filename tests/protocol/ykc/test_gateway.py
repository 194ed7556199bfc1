"""YKC piles through a real `runykc` process and real sockets: login, billing model, a
charge started by card and closed by its record (answered after commit, idempotent),
remote intents, the journal."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from django.db import transaction

from billing.events import STATION_TARIFF_CHANGED
from billing.models import ChargingSession, SessionState, StationTariff
from billing.services.tariffs import tariff_version_create
from chargenet.celery import app as celery_app
from chargenet.events import event_deliver
from chargenet.models import OutboxEvent
from orgs.models import Card, CardStatus
from protocol import intents
from protocol.adapters import Outcome
from protocol.models import Frame
from protocol.ykc import codec, simulator
from protocol.ykc.simulator import YkcPile, parse_url
from stations.models import Pile

from ...billing.factories import DOMAIN_SCHEDULE, prices
from ..conftest import wait_for
from .conftest import card, ykc_pile

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


def run(coro):
    return asyncio.run(coro)


def test_unknown_pile_is_refused_and_journaled(ykc):
    async def play():
        pile = YkcPile("12345678901234")
        await pile.open(*parse_url(ykc.url))
        try:
            return await pile.login()
        finally:
            await pile.close()

    assert run(play()) == 1
    frame = wait_for(
        lambda: Frame.objects.filter(pile_code="12345678901234", error_code="Refused").first()
    )
    assert frame.action == "0x01 Login"
    assert frame.payload["error"].startswith("unknown pile code (from 127.0.0.1)")
    assert frame.raw.startswith("6822")


def test_an_ocpp_pile_cannot_log_in_over_ykc(ykc):
    pile = ykc_pile()
    Pile.objects.filter(pk=pile.pk).update(protocol=Pile.Protocol.OCPP16J)

    async def play():
        yp = YkcPile(pile.code)
        await yp.open(*parse_url(ykc.url))
        try:
            return await yp.login()
        finally:
            await yp.close()

    assert run(play()) == 1


def test_a_charge_by_card_is_a_session_closed_by_its_record(ykc):
    pile = ykc_pile()
    number = card(pile).number

    async def play():
        async with simulator.connected(*parse_url(ykc.url), pile.code) as yp:
            await yp.heartbeat(1)
            answer = await yp.start_by_card(1, number)
            await yp.meter(1, add_kwh=Decimal("1.5"))
            await yp.meter(1, add_kwh=Decimal("1.5"))
            record = yp.record(1)
            del yp.charges[1]
            first = await yp.send_record(record)
            again = await yp.send_record(record)  # no answer seen: the pile resends
            return yp, answer, first, again

    yp, answer, first, again = run(play())
    # The billing model is the station's tariff in force (DC prices of tests' plan).
    assert yp.model.prices() == [
        (Decimal("1.20000"), Decimal("0.80000")),
        (Decimal("1.05000"), Decimal("0.80000")),
        (Decimal("0.70000"), Decimal("0.70000")),
        (Decimal("0.38000"), Decimal("0.60000")),
    ]
    assert (
        "".join(map(str, yp.model.slots))
        == "3" * 16 + "2" * 12 + "1" * 6 + "2" * 4 + "1" * 6 + "2" * 4
    )
    assert (answer.accepted, answer.reason) == (1, 0)
    assert answer.serial.startswith(f"{pile.code}01") and len(answer.serial) == 32
    assert (first.result, again.result) == (0, 0)
    [session] = ChargingSession.objects.filter(pile=pile)
    assert session.protocol_ref == answer.serial
    assert session.state == SessionState.STOPPED
    assert (session.meter_start_wh, session.meter_stop_wh) == (0, Decimal(3000))
    assert session.samples.count() == 2
    assert session.transitions.filter(to_state=SessionState.STOPPED).count() == 1
    reported = session.pile_reported
    assert reported["total_wh"] == "3000.0000"
    assert sum(Decimal(v) for v in reported["periods"].values()) == Decimal(3000)
    assert reported["stop_reason"] == "0x45"
    # Every frame in and out journaled, decoded, with the session's order number.
    actions = list(
        Frame.objects.filter(pile_code=pile.code)
        .order_by("at", "id")
        .values_list("action", "direction")
    )
    assert ("0x3B TransactionRecord", "in") in actions
    assert actions.count(("0x40 TransactionRecordAnswer", "out")) == 2
    answer_row = Frame.objects.filter(
        pile_code=pile.code, action="0x40 TransactionRecordAnswer"
    ).first()
    assert answer_row.order_no == session.order_no
    assert answer_row.payload == {"serial": answer.serial, "result": 0}


def test_remote_intents_reach_the_ykc_pile(ykc):
    pile = ykc_pile(guns=2)
    number = card(pile).number
    connector = pile.connectors.get(number=2)

    async def play():
        async with simulator.connected(*parse_url(ykc.url), pile.code) as yp:
            wait = asyncio.to_thread
            started = await wait(
                intents.connector_start, connector=connector, credential_value=number,
                credential_kind="card", timeout=10,
            )  # fmt: skip
            remote = await yp.remote_starts.get()
            yp.begin(2, remote.serial, card=remote.physical_card)
            await yp.meter(2, add_kwh=Decimal(2))
            session = await wait(ChargingSession.objects.get, pile=pile)
            stopped = await wait(intents.session_stop_remote, session=session, timeout=10)
            assert await yp.remote_stops.get() == 2
            await yp.stop(2, reason=simulator.STOP_APP)
            reset = await wait(intents.pile_reset, pile=pile, hard=True, timeout=10)
            unlock = await wait(intents.connector_unlock, connector=connector, timeout=10)
            return yp, remote, started, stopped, reset, unlock

    yp, remote, started, stopped, reset, unlock = run(play())
    assert [r.outcome for r in (started, stopped, reset, unlock)] == [
        Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.NOT_SUPPORTED,
    ]  # fmt: skip
    assert remote.physical_card == f"000000{number}"[-16:].rjust(16, "0")
    assert yp.reboots == [1]
    assert len(yp.clock_syncs) == 1  # set once the pile logged in
    session = ChargingSession.objects.get(pile=pile)
    assert (session.protocol_ref, session.connector.number) == (remote.serial, 2)
    assert (session.state, session.stop_reason, session.meter_stop_wh) == (
        SessionState.STOPPED, "Remote", Decimal(2000),
    )  # fmt: skip


def test_a_tariff_push_sets_the_billing_model_of_the_stations_ykc_piles(ykc):
    pile = ykc_pile()
    ocpp_pile = Pile.objects.create(
        station=pile.station, code=f"4420{pile.code}00", current_type="DC"
    )

    async def play():
        async with simulator.connected(*parse_url(ykc.url), pile.code) as yp:
            yp.model = None  # as if the pile had lost it
            results = await asyncio.to_thread(
                intents.station_tariff_push, station=pile.station, timeout=10
            )
            return yp, results

    yp, results = run(play())
    assert {r.answer.outcome for r in results} == {Outcome.ACCEPTED, Outcome.NOT_SUPPORTED}
    assert [(r.outcome, r.message) for r in results if r.outcome != Outcome.ACCEPTED] == [
        (
            Outcome.NOT_SUPPORTED,
            f"Pile {ocpp_pile.code} cannot do this: take the station's tariff in force. "
            "Piles speaking OCPP 1.6J have no such command.",
        )
    ]
    assert isinstance(yp.model, codec.SetBillingModel)
    assert yp.model.slots == codec.SetBillingModel.decode(yp.model.encode()).slots
    assert yp.model.prices()[1] == (Decimal("1.05000"), Decimal("0.80000"))


def test_a_remote_start_for_a_refused_credential_is_not_sent(ykc):
    pile = ykc_pile()
    blocked = card(pile)
    Card.objects.filter(pk=blocked.pk).update(status=CardStatus.BLOCKED)
    connector = pile.connectors.get()

    async def play():
        async with simulator.connected(*parse_url(ykc.url), pile.code) as yp:
            result = await asyncio.to_thread(
                intents.connector_start, connector=connector, timeout=10,
                credential_value=blocked.number, credential_kind="card",
            )  # fmt: skip
            return yp, result

    yp, result = run(play())
    assert result.outcome == Outcome.INVALID
    assert result.message == (
        f"Not sent to pile {pile.code}: start connector 1 for card {blocked.number}. "
        "The platform does not accept this credential."
    )
    assert yp.remote_starts.empty()
    assert not ChargingSession.objects.filter(pile=pile).exists()
    assert not Frame.objects.filter(pile_code=pile.code, action="0x34 RemoteStart").exists()


def test_a_tariff_change_pushes_the_new_billing_model_to_the_stations_ykc_piles(ykc):
    pile = ykc_pile()
    plan = StationTariff.objects.get(station=pile.station).plan
    dc = [("1.30", "0.90"), ("1.15", "0.85"), ("0.80", "0.75"), ("0.40", "0.65")]

    def change_the_tariff():
        with transaction.atomic():
            tariff_version_create(plan=plan, schedule=DOMAIN_SCHEDULE, prices=prices(dc=dc))
        event = OutboxEvent.objects.filter(kind=STATION_TARIFF_CHANGED).latest("pk")
        # As the outbox worker delivers it, with the queued push run right away.
        eager, celery_app.conf.task_always_eager = celery_app.conf.task_always_eager, True
        try:
            return event, event_deliver(event_id=event.pk)
        finally:
            celery_app.conf.task_always_eager = eager

    async def play():
        async with simulator.connected(*parse_url(ykc.url), pile.code) as yp:
            before = yp.model.prices()
            event, took = await asyncio.to_thread(change_the_tariff)
            return yp, before, event, took

    yp, before, event, took = run(play())
    assert "protocol.billing_model_push" in took
    assert event.payload["station_ids"] == [pile.station_id]
    assert before[1] == (Decimal("1.05000"), Decimal("0.80000"))
    assert isinstance(yp.model, codec.SetBillingModel)  # pushed (0x58), not asked for (0x0A)
    assert yp.model.prices() == [(Decimal(e), Decimal(s)) for e, s in dc]
    answers = Frame.objects.filter(pile_code=pile.code, action="0x57 SetBillingModelAnswer")
    answer = wait_for(answers.first)
    assert (answer.payload["result"], answer.error_code) == (1, "")
