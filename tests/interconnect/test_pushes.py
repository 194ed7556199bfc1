"""Pushes that cannot be lost: retried a minute apart then backing off, delivered once the
partner acknowledged them (never again), sent with no transaction open; an order never
acknowledged, or disputed, becomes a fault bill (code 14); a partner switched off still
gets the orders of the sessions it started."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import Bill, SessionState
from billing.services.settlement import bill_settle
from chargenet.events import events_deliver, events_deliver_pending, events_publish
from faults.models import FaultCase
from integrations.tcec.client import TcecClient
from interconnect.models import Interconnection, PartnerOrder, Push, PushState, Reconciliation
from interconnect.services.checks import orders_check
from interconnect.services.orders import (
    order_session_link,
    partner_order_open,
    partner_orders_dispatch_due,
    partner_orders_never_started,
)
from interconnect.services.pushes import (
    LEASE,
    pushes_claim,
    pushes_deliver_due,
    pushes_send,
    reconciliation_enqueue,
    retry_delay,
)
from interconnect.tasks import partner_order_dispatch_task
from interconnect.wire import station_stats
from orgs.services import partner_access_set
from stations.events import PILE_STATUS_CHANGED
from stations.services.live import connector_status_record
from tests.protocol import world as pworld

from .conftest import partner_add
from .world import network, operator_id

pytestmark = pytest.mark.usefixtures("live_db")
ORDER_INFO = "notification_charge_order_info"


class NoTransactionClient(TcecClient):
    """The real client, failing the test if it is ever called inside a transaction."""

    def post(self, url, envelope, *, token=""):
        assert not connection.in_atomic_block, "HTTP inside a database transaction"
        return super().post(url, envelope, token=token)


CLIENT = NoTransactionClient(timeout=5)


def deliver() -> dict:
    return pushes_deliver_due(client=CLIENT)


def partner_session(platform_for, *, seq: str = "ORD1"):
    """A partner order whose session charged 5 kWh in six minutes, stopped and billed;
    its events consumed (pushes queued, none sent yet)."""
    net = network(online=True)
    credentials = partner_add(
        "--name", "粤易充", "--operator-id", operator_id(), "--base-url", "http://127.0.0.1:9/",
        "--operator", net.operator.code,
    )  # fmt: skip
    platform = platform_for(credentials)
    link = Interconnection.objects.get(operator_id_wire=credentials["OperatorID"])
    Interconnection.objects.filter(pk=link.pk).update(base_url=platform.url)
    link.refresh_from_db()
    connector = net.piles[0].connectors.get()
    order = partner_order_open(link=link, start_charge_seq=seq, connector=connector).order
    now = timezone.now()
    session = pworld.session(
        net.piles[0],
        id_tag=order.tag,
        channel="partner",
        partner_id=link.partner_id,
        started_at=now - dt.timedelta(minutes=6),
        state=SessionState.STOPPED,
        stopped_at=now,
        stop_received_at=now,
        meter_stop_wh=Decimal(5000),
    )
    order_session_link(session_id=session.pk)
    bill = bill_settle(session_id=session.pk)
    events_deliver_pending(older_than=dt.timedelta(0))
    return platform, link, PartnerOrder.objects.get(pk=order.pk), bill


def _others_later(link) -> None:
    """Pushes other tests of this module left pending are not due in this one (the
    worker takes every due push, whoever it is for)."""
    Push.objects.filter(state=PushState.PENDING).exclude(interconnection=link).update(
        next_at=timezone.now() + dt.timedelta(days=1)
    )


def _due_now(link) -> None:
    """Time passes: every pending push is due."""
    Push.objects.filter(interconnection=link, state=PushState.PENDING).update(
        next_at=timezone.now()
    )


def test_retry_schedule_three_times_a_minute_apart_then_backing_off_for_a_day():
    waits = [retry_delay(n).total_seconds() for n in range(1, 11)]
    assert waits == [60, 60, 60, 300, 900, 3600, 10800, 21600, 21600, 21600]


def test_partner_down_then_delivered_later_exactly_once(platform_for):
    platform, link, order, bill = partner_session(platform_for)
    assert bill.fault_codes == []
    platform.down = True
    for minute in range(10):  # down for ten minutes, the worker trying whenever due
        if minute:
            _due_now(link)
        deliver()
    info = Push.objects.get(interconnection=link, operation=ORDER_INFO)
    assert (info.state, info.attempts) == (PushState.PENDING, 10)
    first = Push.objects.get(interconnection=link, operation="notification_start_charge_result")
    assert "503" in first.last_error
    assert info.last_error.startswith("waiting")  # in order: behind the order's first push
    assert info.messages.count() == 10  # each attempt in the message log
    last_try = info.messages.latest("at").at
    assert abs(info.next_at - last_try - retry_delay(10)) < dt.timedelta(seconds=1)
    assert platform.received == []

    platform.down = False
    _due_now(link)  # its next attempt comes
    deliver()
    info.refresh_from_db()
    assert (info.state, info.attempts, info.last_error) == (PushState.DELIVERED, 11, "")
    (pushed,) = platform.pushes(ORDER_INFO)
    assert (pushed["StartChargeSeq"], pushed["TotalPower"]) == ("ORD1", 5.0)
    assert pushed["TotalMoney"] == float(bill.total)
    order.refresh_from_db()
    assert (order.confirm_result, order.confirmed_at is not None) == (0, True)
    calls = platform.http_calls
    _due_now(link)
    assert deliver() == {}
    assert platform.http_calls == calls  # never sent again
    assert len(platform.pushes(ORDER_INFO)) == 1
    assert orders_check() == 0


def test_order_unacknowledged_after_a_day_becomes_a_fault_bill(platform_for):
    platform, link, order, bill = partner_session(platform_for, seq="LOST1")
    platform.down = True
    Push.objects.filter(interconnection=link).update(
        created_at=timezone.now() - dt.timedelta(days=1, seconds=1)
    )
    deliver()
    info = Push.objects.get(interconnection=link, operation=ORDER_INFO)
    assert info.state == PushState.GIVEN_UP
    assert orders_check() == 1
    case = FaultCase.objects.get(session_id=order.session_id)
    assert (case.codes, case.source, case.blocks_payment) == ([14], "partner", False)
    (finding,) = case.findings
    assert finding["reasons"][0]["key"] == "partner_order_unacknowledged"
    assert finding["reasons"][0]["params"]["attempts"] == 1
    assert orders_check() == 0  # once on the desk
    assert Bill.objects.get(pk=bill.pk).total == bill.total  # the bill stays as priced


def test_disputed_order_becomes_a_fault_bill(platform_for):
    platform, _link, order, _bill = partner_session(platform_for, seq="DISP1")
    platform.confirm_result = 1
    deliver()
    order.refresh_from_db()
    assert order.confirm_result == 1
    assert orders_check() == 1
    case = FaultCase.objects.get(session_id=order.session_id)
    assert case.findings[0]["reasons"][0]["key"] == "partner_order_disputed"


def test_reconciliation_records_disputes_and_opens_their_fault_bills(platform_for):
    platform, link, order, bill = partner_session(platform_for, seq="REC1")
    deliver()
    day = timezone.localtime(bill.started_at).date()
    rec = reconciliation_enqueue(link=link, day=day)
    assert reconciliation_enqueue(link=link, day=day) is None  # one a day
    assert (rec.order_count, rec.total_power, rec.total_money) == (1, Decimal("5.000"), bill.total)
    dispute = {"StartChargeSeq": "REC1", "TotalPower": 4.5, "TotalMoney": 3.0, "DisputeReason": 1}
    platform.disputes = [dispute]
    deliver()
    (sent,) = platform.pushes("check_charge_orders")
    assert sent["ChargeOrders"] == [
        {"StartChargeSeq": "REC1", "TotalPower": 5.0, "TotalMoney": float(bill.total)}
    ]
    rec = Reconciliation.objects.get(pk=rec.pk)
    assert rec.disputes == [dispute]
    assert orders_check() == 1
    case = FaultCase.objects.get(session_id=order.session_id)
    reason = case.findings[0]["reasons"][0]
    assert (reason["key"], reason["params"]["power"]) == ("partner_reconciliation_dispute", 4.5)
    assert case.platform_values["energy_wh"] == "4500"


def test_switched_off_partner_still_gets_its_orders_but_no_station_status(platform_for):
    platform, link, order, _bill = partner_session(platform_for, seq="OFF2")
    partner_access_set(partner=link.partner, operator=link.operator, enabled=False)
    pile = order.connector.pile
    connector_status_record(pile=pile, connector_number=1, state="Available")
    events_deliver_pending(older_than=dt.timedelta(0))
    deliver()
    assert len(platform.pushes(ORDER_INFO)) == 1
    assert platform.pushes("notification_stationStatus") == []
    assert not Push.objects.filter(interconnection=link, operation="notification_stationStatus")


def test_station_stats_add_up_the_bills_per_connector(platform_for):
    _platform, link, order, bill = partner_session(platform_for, seq="STATS1")
    day = timezone.localtime(bill.started_at).date()
    stats = station_stats(link, bill.station.code, day, day)["StationStats"]
    connector_id = order.connector.pile.code + "01"
    assert stats["StationElectricity"] == 5.0
    assert stats["EquipmentStatsInfos"] == [
        {
            "EquipmentID": order.connector.pile.code,
            "EquipmentElectricity": 5.0,
            "ConnectorStatsInfos": [{"ConnectorID": connector_id, "ConnectorElectricity": 5.0}],
        }
    ]
    assert station_stats(link, "no-such-station", day, day) is None


def test_a_crash_between_sending_and_recording_sends_again_never_loses(platform_for):
    platform, link, order, _bill = partner_session(platform_for, seq="CRASH1")
    _others_later(link)
    rows = Push.objects.filter(interconnection=link)
    operations = sorted(rows.values_list("operation", flat=True))
    before = timezone.now()
    claimed = pushes_claim()
    assert sorted(p.operation for p in claimed) == operations
    attempts = pushes_send(claimed, client=CLIENT)
    assert [a.error for a in attempts] == ["", "", ""]  # the partner acknowledged them all
    # ... and the worker died before recording it: each push stays pending, leased.
    assert {(p.state, p.attempts) for p in rows} == {(PushState.PENDING, 1)}
    assert all(before + LEASE <= p.next_at <= timezone.now() + LEASE for p in rows)
    assert deliver() == {}  # no other worker sends them while the lease holds
    _due_now(link)  # the lease ran out
    assert deliver() == {PushState.DELIVERED: 3}
    assert {(p.state, p.attempts) for p in rows.all()} == {(PushState.DELIVERED, 2)}
    assert len(platform.pushes(ORDER_INFO)) == 2  # sent twice on the wire, recorded once
    order.refresh_from_db()
    assert (order.confirm_result, order.confirmed_at is not None) == (0, True)
    _due_now(link)
    assert deliver() == {}


def test_a_burst_of_pushes_is_consumed_and_delivered_in_a_fixed_number_of_queries(
    platform_for,
):
    platform, link, order, _bill = partner_session(platform_for, seq="BURST1")
    _others_later(link)
    assert deliver() == {PushState.DELIVERED: 3}
    pile = order.connector.pile
    states = ["Preparing", "Charging", "SuspendedEV", "Charging", "Finishing"] * 12
    with transaction.atomic():
        events = events_publish(
            kind=PILE_STATUS_CHANGED,
            events=[
                (pile.pk, {"pile_id": pile.pk, "station_id": pile.station_id,
                           "connector_number": 1, "state": state, "error_code": ""})
                for state in states
            ],
        )  # fmt: skip
    with CaptureQueriesContext(connection) as consumed:
        events_deliver(event_ids=[e.pk for e in events])
    with CaptureQueriesContext(connection) as delivered:
        assert deliver() == {PushState.DELIVERED: 60}
    # Events: read, one transaction (deliveries, partners, stations, connectors, pushes),
    # marked delivered. Pushes: claim, send (no query), record — per batch, not per push.
    assert len(consumed) <= 10
    assert len(delivered) <= 14
    pushed = platform.pushes("notification_stationStatus")
    received = [p["ConnectorStatusInfo"]["Status"] for p in pushed]
    assert received == [2, 3, 2, 3, 2] * 12  # one connector's states arrive in their order
    assert Push.objects.filter(interconnection=link, state=PushState.DELIVERED).count() == 63


def _start(platform, net, seq: str):
    return platform.call(
        "query_start_charge",
        {"StartChargeSeq": seq, "ConnectorID": net.piles[0].code + "01", "QRCode": ""},
    )


def _linked(platform_for, net):
    credentials = partner_add(
        "--name", "滴滴", "--operator-id", operator_id(), "--base-url", "http://127.0.0.1:9/",
        "--operator", net.operator.code,
    )  # fmt: skip
    platform = platform_for(credentials)
    link = Interconnection.objects.get(operator_id_wire=credentials["OperatorID"])
    Interconnection.objects.filter(pk=link.pk).update(base_url=platform.url)
    platform.login()
    _others_later(link)
    return platform, link


def test_a_start_is_answered_at_once_and_the_piles_answer_pushed_as_its_result(platform_for):
    net = network(online=True)  # online as far as the database knows; no gateway holds it
    platform, link = _linked(platform_for, net)
    answer = _start(platform, net, "ASYNC1")
    assert (answer.ret, answer.data["SuccStat"], answer.data["StartChargeSeqStat"]) == (0, 0, 1)
    assert answer.data["FailReason"] == 0
    order = PartnerOrder.objects.get(interconnection=link, start_charge_seq="ASYNC1")
    assert (order.state, order.dispatched) == ("starting", False)  # the pile not asked yet
    assert partner_order_dispatch_task(order.pk) is False  # the worker: the pile is offline
    assert partner_order_dispatch_task(order.pk) is False  # again: asked once only
    order.refresh_from_db()
    assert (order.state, order.dispatched) == ("failed", True)
    assert deliver() == {PushState.DELIVERED: 1}
    (result,) = platform.pushes("notification_start_charge_result")
    assert (result["StartChargeSeq"], result["StartChargeSeqStat"], result["FailReason"]) == (
        "ASYNC1", 4, 2,
    )  # fmt: skip
    status = platform.call("query_equip_charge_status", {"StartChargeSeq": "ASYNC1"})
    assert status.data["StartChargeSeqStat"] == 4


def test_a_start_no_worker_took_in_time_is_failed_by_the_beat_never_started_late(platform_for):
    net = network(online=True)
    platform, link = _linked(platform_for, net)
    assert _start(platform, net, "LATE1").data["SuccStat"] == 0
    assert _start(platform, net, "FRESH1").data["SuccStat"] == 0
    late = PartnerOrder.objects.get(interconnection=link, start_charge_seq="LATE1")
    PartnerOrder.objects.filter(pk=late.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=3)
    )
    # The fresh one is left to its own task; the late one is failed without a pile call.
    assert partner_orders_dispatch_due(now=timezone.now()) == 1
    late.refresh_from_db()
    assert (late.state, late.dispatched, late.outcome) == (
        "failed", True, "not sent to the pile in time",
    )  # fmt: skip
    fresh = PartnerOrder.objects.get(interconnection=link, start_charge_seq="FRESH1")
    assert (fresh.state, fresh.dispatched) == ("starting", False)
    assert deliver() == {PushState.DELIVERED: 1}
    (result,) = platform.pushes("notification_start_charge_result")
    assert (result["StartChargeSeq"], result["StartChargeSeqStat"], result["FailReason"]) == (
        "LATE1", 4, 4,
    )  # fmt: skip
    assert partner_orders_dispatch_due(now=timezone.now()) == 0  # nothing due any more


def test_an_unreachable_partner_is_tried_once_a_round_the_rest_wait(platform_for):
    platform, link, _order, _bill = partner_session(platform_for, seq="DOWN2")
    _others_later(link)
    assert deliver() == {PushState.DELIVERED: 3}  # our token at the partner is kept
    platform.down = True
    piles = Interconnection.objects.get(pk=link.pk).stations.get().piles.filter(is_published=True)
    for pile in piles:  # two piles: two sequences of pushes, sent side by side
        connector_status_record(pile=pile, connector_number=1, state="Preparing")
    events_deliver_pending(older_than=dt.timedelta(0))
    calls = platform.http_calls
    # One sending thread: the second sequence starts after the first refusal.
    assert pushes_deliver_due(client=CLIENT, workers=1) == {PushState.PENDING: 2}
    assert platform.http_calls == calls + 1  # the first refusal stops the round
    errors = sorted(
        Push.objects.filter(interconnection=link, state=PushState.PENDING).values_list(
            "last_error", flat=True
        )
    )
    assert "503" in errors[0] and errors[1].startswith("waiting: ") and "503" in errors[1]
    platform.down = False
    _due_now(link)
    assert deliver() == {PushState.DELIVERED: 2}
    assert len(platform.pushes("notification_stationStatus")) == 2


def test_a_start_the_pile_accepted_but_never_began_is_failed_and_told(platform_for):
    net = network(online=True)
    platform, link = _linked(platform_for, net)
    connector = net.piles[0].connectors.get()
    lost = partner_order_open(link=link, start_charge_seq="NOCAR1", connector=connector).order
    lagging = partner_order_open(
        link=link, start_charge_seq="LAG1", connector=net.piles[1].connectors.get()
    ).order
    fresh = partner_order_open(
        link=link, start_charge_seq="FRESH2", connector=net.piles[0].connectors.get()
    ).order
    eleven_minutes_ago = timezone.now() - dt.timedelta(minutes=11)
    PartnerOrder.objects.filter(pk__in=[lost.pk, lagging.pk, fresh.pk]).update(dispatched=True)
    PartnerOrder.objects.filter(pk__in=[lost.pk, lagging.pk]).update(created_at=eleven_minutes_ago)
    # The pile did start LAG1; the session.started consumer has not run yet.
    session = pworld.session(
        net.piles[1], id_tag=lagging.tag, channel="partner", partner_id=link.partner_id,
        started_at=eleven_minutes_ago,
    )  # fmt: skip
    assert partner_orders_never_started() == 2
    states = dict(
        PartnerOrder.objects.filter(interconnection=link).values_list("start_charge_seq", "state")
    )
    assert states == {"NOCAR1": "failed", "LAG1": "charging", "FRESH2": "starting"}
    assert PartnerOrder.objects.get(pk=lagging.pk).session_id == session.pk
    assert deliver() == {PushState.DELIVERED: 2}
    results = {
        r["StartChargeSeq"]: (r["StartChargeSeqStat"], r["FailReason"])
        for r in platform.pushes("notification_start_charge_result")
    }
    assert results == {"NOCAR1": (4, 4), "LAG1": (2, 0)}
    assert partner_orders_never_started() == 0
