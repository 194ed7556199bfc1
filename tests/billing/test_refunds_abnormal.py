"""A WeChat refund reported ABNORMAL (the driver's account refused it) is the staff's to
settle: the refund queue shows it and filters for it, and staff ask WeChat again, mark it
handled outside WeChat, or put it back in the wallet — each audited, each with feedback."""

from decimal import Decimal as D

import pytest

from billing.models import RechargeRefundState, RefundState
from billing.services.refunds import refund_request_approve, refund_request_create, refunds_send
from billing.services.wallet import wallet_balance, wallet_verify
from chargenet.models import AuditLog
from orgs.models import Role
from tests.billing.test_refunds import _notify, _paid
from tests.factories import MemberFactory, StaffFactory
from tests.wechatpay import pay_keys_fixture, wechat_pay_fixture  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def abnormal(client, wechat_pay):
    """An operator admin signed in; a member's approved refund WeChat said is ABNORMAL."""
    staff = StaffFactory()
    client.force_login(staff)
    member = MemberFactory(operator=staff.operator)
    _paid(wechat_pay, member, D("50.00"))
    request = refund_request_create(member=member, amount=D("20.00"))
    refund_request_approve(refund_request=request, actor=staff)
    refunds_send(request_id=request.pk)
    part = request.refunds.get()
    _notify(wechat_pay, part, "ABNORMAL")
    part.refresh_from_db()
    assert part.state == RechargeRefundState.ABNORMAL
    return staff, member, request, part


def _url(request, part, action):
    return f"/admin/billing/refundrequest/{request.pk}/refunds/{part.pk}/{action}/"


def test_the_queue_shows_abnormal_refunds_and_filters_them(client, abnormal, wechat_pay):
    _staff, member, request, part = abnormal
    other = MemberFactory(operator=member.operator)
    _paid(wechat_pay, other, D("50.00"))
    waiting = refund_request_create(member=other, amount=D("10.00"))  # nothing abnormal
    page = client.get("/admin/billing/refundrequest/").content.decode()
    assert f"Abnormal: {part.out_refund_no} (20.00)" in page
    for action in ("retry", "handled", "to_wallet"):
        assert _url(request, part, action) in page
    assert "WeChat refund abnormal" in page  # the "needs staff" filter
    page = client.get("/admin/billing/refundrequest/?needs_staff=abnormal").content.decode()
    assert f"/admin/billing/refundrequest/{request.pk}/change/" in page
    assert f"/admin/billing/refundrequest/{waiting.pk}/change/" not in page


def test_handled_outside_wechat_ends_the_refund_audited_and_leaves_the_wallet(client, abnormal):
    staff, member, request, part = abnormal
    assert client.post(_url(request, part, "handled"), {"note": ""}).status_code == 200
    part.refresh_from_db()
    assert part.state == RechargeRefundState.ABNORMAL  # nothing done without a note
    answer = client.post(
        _url(request, part, "handled"), {"note": "bank transfer 2026-11-29"}, follow=True
    )
    assert f"Refund {part.out_refund_no} is now: handled by staff." in answer.content.decode()
    part.refresh_from_db()
    request.refresh_from_db()
    assert (part.state, request.state) == (RechargeRefundState.HANDLED, RefundState.REFUNDED)
    assert wallet_balance(member=member) == D("30.00")
    audit = AuditLog.objects.get(action="recharge_refund.handled")
    assert (audit.actor, audit.before, audit.after, audit.reason) == (
        staff,
        {"state": "abnormal"},
        {"state": "handled"},
        "bank transfer 2026-11-29",
    )
    # Done once: the page for it is gone.
    assert client.post(_url(request, part, "handled"), {"note": "again"}).status_code == 404


def test_back_to_the_wallet_credits_it_once(client, abnormal):
    _staff, member, request, part = abnormal
    answer = client.post(_url(request, part, "to_wallet"), {"note": "card closed"}, follow=True)
    assert "is now: closed (returned to the wallet)." in answer.content.decode()
    request.refresh_from_db()
    assert request.state == RefundState.FAILED
    assert wallet_balance(member=member) == D("50.00")
    assert wallet_verify() == []
    assert AuditLog.objects.filter(action="recharge_refund.to_wallet").count() == 1


def test_asking_wechat_again_finishes_a_refund_fixed_there(client, abnormal, wechat_pay):
    staff, _member, request, part = abnormal
    wechat_pay.refund_finish(part.out_refund_no, status="SUCCESS", notify=False)
    answer = client.post(_url(request, part, "retry"), {}, follow=True)
    assert "is now: refunded." in answer.content.decode()
    part.refresh_from_db()
    request.refresh_from_db()
    assert (part.state, request.state) == (RechargeRefundState.SUCCESS, RefundState.REFUNDED)
    audit = AuditLog.objects.get(action="recharge_refund.retry")
    assert (audit.actor, audit.before, audit.after) == (
        staff,
        {"state": "abnormal"},
        {"state": "success"},
    )


def test_only_operator_wide_staff_act(client, abnormal):
    _staff, member, request, part = abnormal
    viewer = StaffFactory(operator=member.operator, role=Role.CUSTOMER_SERVICE)
    client.force_login(viewer)
    answer = client.post(_url(request, part, "handled"), {"note": "x"})
    assert answer.status_code in (403, 404)
    part.refresh_from_db()
    assert part.state == RechargeRefundState.ABNORMAL
