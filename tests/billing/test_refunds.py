"""Balance refunds: driver asks, staff approve or reject (audited), WeChat refunds each part
(the fake, with its signed, encrypted refund notifications), the ledger moves once."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.utils import timezone

from billing.events import REFUND_FINISHED, REFUND_REQUESTED
from billing.models import (
    EntryKind,
    LedgerEntry,
    RechargeRefund,
    RechargeRefundState,
    RefundRequest,
    RefundState,
)
from billing.services.recharges import NotificationRefused, recharge_create, recharge_paid_record
from billing.services.refunds import (
    RefundError,
    refund_notification_handle,
    refund_request_approve,
    refund_request_create,
    refund_request_reject,
    refunds_reconcile_pending,
    refunds_send,
)
from billing.services.wallet import wallet_balance, wallet_verify
from chargenet.errors import Conflict
from chargenet.models import AuditLog, OutboxEvent
from integrations.wechat.pay import PayOrder
from tests.factories import MemberFactory, StaffFactory
from tests.wechatpay import pay_keys_fixture, wechat_pay_fixture  # noqa: F401

pytestmark = pytest.mark.django_db


def _paid(wechat_pay, member, amount: D):
    recharge = recharge_create(member=member, amount=amount).recharge
    wechat_pay.pay(recharge.out_trade_no, notify=False)
    order = wechat_pay.order_resource(recharge.out_trade_no)
    recharge_paid_record(
        order=PayOrder(
            recharge.out_trade_no,
            "SUCCESS",
            order["transaction_id"],
            order["amount"]["total"],
            timezone.now(),
            member.wechat_openid,
        )
    )
    recharge.refresh_from_db()
    return recharge


def _ledger(member) -> list[tuple[str, D, str]]:
    return list(
        LedgerEntry.objects.filter(wallet__member=member)
        .order_by("pk")
        .values_list("kind", "amount", "reference")
    )


def _notify(wechat_pay, refund: RechargeRefund, status: str):
    wechat_pay.refund_finish(refund.out_refund_no, status=status, notify=False)
    headers, body = wechat_pay.refund_notification(refund.out_refund_no)
    return refund_notification_handle(headers=headers, body=body.encode())


def test_an_approved_refund_is_split_over_recent_recharges_and_settled_by_wechat(wechat_pay):
    member = MemberFactory()
    staff = StaffFactory(operator=member.operator)
    older = _paid(wechat_pay, member, D("20.00"))
    newer = _paid(wechat_pay, member, D("50.00"))
    request = refund_request_create(member=member, amount=D("60.00"), reason="moving away")
    assert OutboxEvent.objects.filter(kind=REFUND_REQUESTED, key=str(request.pk)).count() == 1
    refund_request_approve(refund_request=request, actor=staff)
    refunds_send(request_id=request.pk)  # the task queued on commit
    parts = list(request.refunds.order_by("pk"))
    assert [(p.recharge_id, p.amount, p.state) for p in parts] == [
        (newer.pk, D("50.00"), RechargeRefundState.PROCESSING),
        (older.pk, D("10.00"), RechargeRefundState.PROCESSING),
    ]
    assert wallet_balance(member=member) == D("10.00")  # taken out at approval
    sent = wechat_pay.refunds
    assert (sent[parts[0].out_refund_no].refund, sent[parts[0].out_refund_no].total) == (5000, 5000)
    assert (sent[parts[1].out_refund_no].refund, sent[parts[1].out_refund_no].total) == (1000, 2000)
    _notify(wechat_pay, parts[0], "SUCCESS")
    _notify(wechat_pay, parts[0], "SUCCESS")  # a duplicate
    request.refresh_from_db()
    assert request.state == RefundState.REFUNDING
    _notify(wechat_pay, parts[1], "SUCCESS")
    request.refresh_from_db()
    assert request.state == RefundState.REFUNDED
    assert _ledger(member)[2:] == [
        (EntryKind.WITHDRAWAL, D("-50.00"), parts[0].out_refund_no),
        (EntryKind.WITHDRAWAL, D("-10.00"), parts[1].out_refund_no),
    ]
    assert wallet_balance(member=member) == D("10.00")
    assert wallet_verify() == []
    finished = OutboxEvent.objects.get(kind=REFUND_FINISHED, key=str(request.pk))
    assert finished.payload["refunded"] == "60.00"
    audit = AuditLog.objects.get(action="refund_request.approve")
    assert (audit.actor, audit.before, audit.after["state"]) == (
        staff,
        {"state": "requested"},
        "refunding",
    )


def test_a_refund_wechat_closes_goes_back_to_the_wallet_once(wechat_pay):
    member = MemberFactory()
    _paid(wechat_pay, member, D("30.00"))
    request = refund_request_create(member=member, amount=D("30.00"))
    refund_request_approve(refund_request=request, actor=StaffFactory(operator=member.operator))
    refunds_send(request_id=request.pk)
    [part] = request.refunds.all()
    assert wallet_balance(member=member) == D("0.00")
    _notify(wechat_pay, part, "CLOSED")
    headers, body = wechat_pay.refund_notification(part.out_refund_no)
    refund_notification_handle(headers=headers, body=body.encode())  # again
    request.refresh_from_db()
    assert request.state == RefundState.FAILED
    assert wallet_balance(member=member) == D("30.00")
    assert _ledger(member)[1:] == [
        (EntryKind.WITHDRAWAL, D("-30.00"), part.out_refund_no),
        (EntryKind.REFUND, D("30.00"), part.out_refund_no),
    ]


def test_a_forged_refund_notification_is_refused(wechat_pay):
    member = MemberFactory()
    _paid(wechat_pay, member, D("30.00"))
    request = refund_request_create(member=member, amount=D("5.00"))
    refund_request_approve(refund_request=request, actor=StaffFactory(operator=member.operator))
    refunds_send(request_id=request.pk)
    [part] = request.refunds.all()
    wechat_pay.refund_finish(part.out_refund_no, status="CLOSED", notify=False)
    headers, body = wechat_pay.refund_notification(part.out_refund_no)
    with pytest.raises(NotificationRefused):
        refund_notification_handle(headers=headers, body=body.replace("REFUND.", "REFUNX."))
    part.refresh_from_db()
    assert (part.state, wallet_balance(member=member)) == (
        RechargeRefundState.PROCESSING,
        D("25.00"),
    )


def test_the_beat_job_sends_unsent_parts_and_asks_about_processing_ones(wechat_pay):
    member = MemberFactory()
    _paid(wechat_pay, member, D("30.00"))
    request = refund_request_create(member=member, amount=D("30.00"))
    refund_request_approve(refund_request=request, actor=StaffFactory(operator=member.operator))
    [part] = request.refunds.all()
    assert part.state == RechargeRefundState.PENDING  # its task never ran
    assert refunds_reconcile_pending() == 1
    part.refresh_from_db()
    assert part.state == RechargeRefundState.PROCESSING
    wechat_pay.refund_finish(part.out_refund_no, notify=False)  # its notification is lost
    RechargeRefund.objects.filter(pk=part.pk).update(
        created_at=part.created_at - dt.timedelta(minutes=6)
    )
    assert refunds_reconcile_pending() == 1
    request.refresh_from_db()
    assert request.state == RefundState.REFUNDED
    assert refunds_reconcile_pending() == 0


def test_requests_beyond_the_balance_or_twice_at_once_are_refused(wechat_pay):
    member = MemberFactory()
    _paid(wechat_pay, member, D("30.00"))
    with pytest.raises(RefundError, match=r"At most 30\.00 yuan"):
        refund_request_create(member=member, amount=D("30.01"))
    refund_request_create(member=member, amount=D("10.00"))
    with pytest.raises(Conflict, match="in progress"):
        refund_request_create(member=member, amount=D("10.00"))
    assert RefundRequest.objects.count() == 1


def test_a_rejection_needs_a_reason_is_audited_and_moves_no_money(wechat_pay):
    member = MemberFactory()
    staff = StaffFactory(operator=member.operator)
    _paid(wechat_pay, member, D("30.00"))
    request = refund_request_create(member=member, amount=D("10.00"))
    with pytest.raises(RefundError, match="needs a reason"):
        refund_request_reject(refund_request=request, reason=" ", actor=staff)
    refund_request_reject(refund_request=request, reason="used a coupon", actor=staff)
    request.refresh_from_db()
    assert (request.state, request.rejection_reason, request.decided_by) == (
        RefundState.REJECTED,
        "used a coupon",
        staff,
    )
    with pytest.raises(Conflict, match="rejected already"):
        refund_request_approve(refund_request=request, actor=staff)
    assert wallet_balance(member=member) == D("30.00")
    assert AuditLog.objects.get(action="refund_request.reject").reason == "used a coupon"
    assert not RechargeRefund.objects.exists()


def test_a_balance_spent_since_the_request_cannot_be_approved(wechat_pay):
    from billing.services.wallet import InsufficientBalance, wallet_adjust

    member = MemberFactory()
    staff = StaffFactory(operator=member.operator)
    _paid(wechat_pay, member, D("30.00"))
    request = refund_request_create(member=member, amount=D("30.00"))
    wallet_adjust(member=member, amount=D("-5.00"), reason="a charge meanwhile", actor=staff)
    with pytest.raises(InsufficientBalance, match=r"balance is 25\.00 yuan"):
        refund_request_approve(refund_request=request, actor=staff)
    request.refresh_from_db()
    assert (request.state, request.refunds.count()) == (RefundState.REQUESTED, 0)
    assert wallet_balance(member=member) == D("25.00")
