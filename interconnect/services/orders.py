"""Partner orders: a partner's start is one more channel into the core.

query_start_charge opens a `PartnerOrder` per StartChargeSeq (a repeat finds it: one
effect) and answers at once (accepted, or refused with its FailReason); after commit a
task — or, were it lost, the beat (`partner_orders_dispatch_due`) — asks the pile through
`protocol.intents.connector_start` for the order's partner credential, and the outcome
reaches the partner as notification_start_charge_result. When the pile
reports the start, the core opens the session (channel *partner*, by the credential) and
its ``session.started`` event links it back here (`order_session_link`); the stop and the
bill follow the same way. Every change of an order queues its push (`pushes`).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from billing.models import Bill, ChargingSession
from billing.models.sessions import ACTIVE_STATES
from billing.services.sessions import CredentialKind, partner_credential
from orgs.models import PartnerAccess
from orgs.selectors import partner_enabled
from protocol.intents import IntentChannel, Outcome, connector_start, session_stop_remote
from stations.models import Connector

from ..models import ORDER_WIRE_STATE, Interconnection, OrderState, PartnerOrder
from ..wire import charge_status, connector_wire_id, order_info
from .pushes import push_enqueue

logger = logging.getLogger(__name__)

# FailReason of query_start_charge / notification_start_charge_result (1, 2 standard).
FAIL_NONE, FAIL_NO_CONNECTOR, FAIL_OFFLINE, FAIL_SWITCHED_OFF, FAIL_REFUSED = 0, 1, 2, 3, 4
# A start not sent to the pile this long after the partner asked is failed instead.
START_DEADLINE = dt.timedelta(minutes=2)
# A start the pile accepted but never began is failed after this (well past the piles'
# plug-in timeout: OCPP ConnectionTimeOut is a minute or two).
NEVER_STARTED_AFTER = dt.timedelta(minutes=10)
# An order's own task normally runs within this: the beat leaves it alone until then.
DISPATCH_GRACE = dt.timedelta(seconds=15)
# FailReason of query_stop_charge (1, 2 standard).
STOP_NO_ORDER, STOP_ENDED, STOP_REFUSED = 1, 2, 3


def link_enabled(link: Interconnection) -> bool:
    """The operator's switch for this partner, read now (switching off acts at once)."""
    return partner_enabled(operator_id=link.operator_id, partner_id=link.partner_id)


def links_enabled() -> QuerySet[Interconnection]:
    """Interconnections whose operator has the partner switched on (one query)."""
    on = PartnerAccess.objects.filter(
        partner_id=OuterRef("partner_id"), operator_id=OuterRef("operator_id"), enabled=True
    )
    return Interconnection.objects.filter(Exists(on))


@dataclass(frozen=True)
class StartAnswer:
    order: PartnerOrder | None
    succeeded: bool
    fail_reason: int


@transaction.atomic
def partner_order_open(
    *, link: Interconnection, start_charge_seq: str, connector: Connector | None
) -> StartAnswer:
    """The order of ``start_charge_seq``: the existing one (a repeat), or a new one when
    the connector is there and the partnership is on. Refusals leave nothing behind."""
    existing = PartnerOrder.objects.filter(
        interconnection=link, start_charge_seq=start_charge_seq
    ).first()
    if existing is not None:
        return StartAnswer(existing, existing.state != OrderState.FAILED, FAIL_NONE)
    if not link_enabled(link):
        return StartAnswer(None, False, FAIL_SWITCHED_OFF)
    if connector is None:
        return StartAnswer(None, False, FAIL_NO_CONNECTOR)
    if not connector.pile.is_online:
        return StartAnswer(None, False, FAIL_OFFLINE)
    for _attempt in range(3):
        tag = partner_credential(partner_id=link.partner_id, reference=secrets.token_hex(6)).value
        try:
            with transaction.atomic():
                order = PartnerOrder.objects.create(
                    interconnection=link,
                    operator_id=link.operator_id,
                    start_charge_seq=start_charge_seq,
                    connector=connector,
                    tag=tag,
                )
            transaction.on_commit(partial(_dispatch_later, order.pk), robust=True)
            return StartAnswer(order, True, FAIL_NONE)
        except IntegrityError:
            # A concurrent twin of this start won (one order per StartChargeSeq), or
            # (once in 2^48) the tag collided: look again.
            existing = PartnerOrder.objects.filter(
                interconnection=link, start_charge_seq=start_charge_seq
            ).first()
            if existing is not None:
                return StartAnswer(existing, existing.state != OrderState.FAILED, FAIL_NONE)
    raise IntegrityError("no free partner tag")


def _dispatch_later(order_id: int) -> None:
    from ..tasks import partner_order_dispatch_task

    try:
        partner_order_dispatch_task.delay(order_id)
    except Exception:  # the broker is down: the beat dispatches it
        logger.warning("partner order %s not queued; the beat will dispatch it", order_id)


def partner_order_dispatch(*, order: PartnerOrder, now: dt.datetime | None = None) -> StartAnswer:
    """Ask the pile to start ``order`` — once: whoever claims it sends it. Call outside a
    transaction (it waits for the pile). A refusal fails the order and queues its result;
    so does an order no worker got to within `START_DEADLINE` (a charge the driver asked
    for minutes ago is not started now)."""
    claimed = PartnerOrder.objects.filter(pk=order.pk, dispatched=False).update(dispatched=True)
    if not claimed:
        order.refresh_from_db()
        return StartAnswer(order, order.state != OrderState.FAILED, FAIL_NONE)
    if (now or timezone.now()) - order.created_at > START_DEADLINE:
        return _start_failed(order, FAIL_REFUSED, "not sent to the pile in time")
    result = connector_start(
        connector=order.connector,
        credential_value=order.tag,
        credential_kind=CredentialKind.PARTNER_ORDER,
        channel=IntentChannel.PARTNER,
    )
    if result.outcome == Outcome.ACCEPTED:
        PartnerOrder.objects.filter(pk=order.pk).update(outcome=str(result.message)[:200])
        return StartAnswer(order, True, FAIL_NONE)
    reason = FAIL_OFFLINE if result.outcome == Outcome.OFFLINE else FAIL_REFUSED
    return _start_failed(order, reason, str(result.message))


def _start_failed(order: PartnerOrder, reason: int, outcome: str) -> StartAnswer:
    with transaction.atomic():
        order = PartnerOrder.objects.select_for_update().get(pk=order.pk)
        if order.session_id is None:  # the pile may have started it all the same
            order.state, order.outcome = OrderState.FAILED, outcome[:200]
            order.save(update_fields=["state", "outcome"])
            _start_result_enqueue(order, fail_reason=reason)
    return StartAnswer(order, order.state != OrderState.FAILED, reason)


def partner_orders_dispatch_due(*, now: dt.datetime | None = None) -> int:
    """The beat's catch-up for orders whose dispatch task was lost (the broker was down,
    the worker died): past `START_DEADLINE` they are failed (their result pushed), the
    others queued again (the claim in `partner_order_dispatch` keeps it to one start).
    Never waits for a pile itself. Returns how many orders it took."""
    now = now or timezone.now()
    orders = list(
        PartnerOrder.objects.select_related("interconnection", "connector__pile")
        .filter(dispatched=False, state=OrderState.STARTING, created_at__lt=now - DISPATCH_GRACE)
        .order_by("pk")[:500]
    )
    for order in orders:
        if now - order.created_at > START_DEADLINE:
            partner_order_dispatch(order=order, now=now)  # fails it: no pile is asked
        else:
            _dispatch_later(order.pk)
    return len(orders)


def partner_orders_never_started(*, now: dt.datetime | None = None) -> int:
    """Orders the pile accepted that are still no session `NEVER_STARTED_AFTER` later (no
    car plugged in, the pile dropped it): one whose session the core opened but the
    consumer has not linked yet is linked now; the others fail, their result pushed
    (FailReason 4), so the partner is told instead of waiting for ever. Returns how many
    orders it took."""
    now = now or timezone.now()
    orders = list(
        PartnerOrder.objects.select_related("interconnection", "connector__pile")
        .filter(
            dispatched=True,
            state=OrderState.STARTING,
            session=None,
            created_at__lt=now - NEVER_STARTED_AFTER,
        )
        .order_by("pk")[:500]
    )
    for order in orders:
        session = order_session_find(order)
        if session is not None:
            order_session_link(session_id=session.pk)
        else:
            _start_failed(order, FAIL_REFUSED, "the pile never started the charge")
    return len(orders)


def _start_result_enqueue(order: PartnerOrder, *, fail_reason: int = FAIL_NONE) -> None:
    connector = order.connector
    push_enqueue(
        link=order.interconnection,
        operation="notification_start_charge_result",
        key=str(order.pk),
        order=order,
        data={
            "StartChargeSeq": order.start_charge_seq,
            "StartChargeSeqStat": ORDER_WIRE_STATE[order.state],
            "ConnectorID": connector_wire_id(connector.pile.code, connector.number),
            "StartTime": timezone.localtime(order.session.started_at).strftime("%Y-%m-%d %H:%M:%S")
            if order.session
            else "",
            "IdentCode": "",
            "FailReason": fail_reason,
        },
    )


def _order_of(session_id: int, *, lock: bool = True) -> PartnerOrder | None:
    orders = PartnerOrder.objects.select_related(
        "interconnection", "connector__pile", "session"
    ).filter(session_id=session_id)
    return (orders.select_for_update(of=("self",)) if lock else orders).first()


@transaction.atomic
def order_session_link(*, session_id: int) -> PartnerOrder | None:
    """A session the core opened for a partner credential: link it to its order (by the
    tag on the connector it was asked for) and queue the start result. Idempotent."""
    session = ChargingSession.objects.filter(pk=session_id).first()
    if session is None or not session.id_tag.startswith("P"):
        return None
    order = (
        PartnerOrder.objects.select_for_update(of=("self",))
        .select_related("interconnection", "connector__pile")
        .filter(tag=session.id_tag, connector_id=session.connector_id)
        .first()
    )
    if order is None or order.session_id not in (None, session.pk):
        return None
    if order.session_id is None:
        order.session = session
        if session.refused_as:
            order.state = OrderState.FAILED  # switched off between the order and the pile
        elif session.state in ACTIVE_STATES:
            order.state = OrderState.CHARGING
        else:
            order.state = OrderState.ENDED
        order.save(update_fields=["session", "state"])
    refused = FAIL_SWITCHED_OFF if session.refused_as else FAIL_NONE
    _start_result_enqueue(order, fail_reason=refused)
    return order


@transaction.atomic
def order_session_stopped(*, session_id: int) -> PartnerOrder | None:
    """The pile ended the order's session: the order has ended; queue the stop result."""
    order = _order_of(session_id)
    if order is None:
        return None
    if order.state != OrderState.FAILED:
        order.state = OrderState.ENDED
        order.save(update_fields=["state"])
    connector = order.connector
    push_enqueue(
        link=order.interconnection,
        operation="notification_stop_charge_result",
        key=str(order.pk),
        order=order,
        data={
            "StartChargeSeq": order.start_charge_seq,
            "StartChargeSeqStat": ORDER_WIRE_STATE[order.state],
            "ConnectorID": connector_wire_id(connector.pile.code, connector.number),
            "SuccStat": 0,
            "FailReason": 0,
        },
    )
    return order


@transaction.atomic
def order_bill_settled(*, session_id: int) -> PartnerOrder | None:
    """The order's bill is settled: queue its order information (whatever the switch says:
    a session that was running when the partner was switched off still settles and
    pushes)."""
    order = _order_of(session_id)
    if order is None:
        return None
    bill = Bill.objects.select_related("station").get(session_id=session_id)
    push_enqueue(
        link=order.interconnection,
        operation="notification_charge_order_info",
        key=str(order.pk),
        order=order,
        data=order_info(order, bill),
    )
    return order


def charge_status_enqueue(*, minute: str) -> int:
    """notification_equip_charge_status for every charging partner order, once a minute
    (``minute`` keys the push, so a repeated run queues nothing twice)."""
    orders = PartnerOrder.objects.select_related(
        "interconnection", "connector__pile", "session"
    ).filter(state=OrderState.CHARGING)
    count = 0
    for order in orders:
        with transaction.atomic():
            push_enqueue(
                link=order.interconnection,
                operation="notification_equip_charge_status",
                key=f"{order.pk}:{minute}",
                order=order,
                data=charge_status(order),
            )
        count += 1
    return count


def order_session_find(order: PartnerOrder) -> ChargingSession | None:
    """The session the pile opened for ``order`` even before its ``session.started``
    event was consumed (the worker may lag): by the order's tag on its connector."""
    return (
        ChargingSession.objects.select_related("pile")
        .filter(id_tag=order.tag, connector_id=order.connector_id)
        .first()
    )


@dataclass(frozen=True)
class StopAnswer:
    order: PartnerOrder | None
    succeeded: bool
    fail_reason: int


def partner_order_stop(*, link: Interconnection, start_charge_seq: str) -> StopAnswer:
    """query_stop_charge: ask the pile to stop the order's session (outside a transaction:
    it waits for the pile). The session closes when the pile reports the stop."""
    order = (
        PartnerOrder.objects.select_related("session__pile", "connector__pile")
        .filter(interconnection=link, start_charge_seq=start_charge_seq)
        .first()
    )
    if order is None:
        return StopAnswer(None, False, STOP_NO_ORDER)
    session = order.session or order_session_find(order)
    if session is None or session.state not in ACTIVE_STATES:
        return StopAnswer(order, False, STOP_ENDED)
    result = session_stop_remote(session=session)
    if result.outcome != Outcome.ACCEPTED:
        return StopAnswer(order, False, STOP_REFUSED)
    PartnerOrder.objects.filter(pk=order.pk, state=OrderState.CHARGING).update(
        state=OrderState.STOPPING
    )
    order.refresh_from_db(fields=["state"])
    return StopAnswer(order, True, 0)
