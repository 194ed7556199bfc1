"""The driver is told when their money moves: a balance refund approved, rejected, refunded
or failed, an invoice issued or rejected — the same outbox and WeChat template messages as
"charging finished" (events → consumers → one message each → the fake WeChat API)."""

from decimal import Decimal as D

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile

from billing.services.invoices import invoice_issue, invoice_reject
from billing.services.refunds import (
    refund_request_approve,
    refund_request_create,
    refund_request_reject,
    refunds_send,
)
from faults.models import Notification
from faults.notifications import WeChatTemplateSender
from faults.selectors import notifications_visible_to
from faults.services.notify import notification_send
from integrations.wechat import WeChatClient
from integrations.wechat.fake import FakeWeChat
from tests.billing.test_invoices import PDF, _ask
from tests.billing.test_refunds import _notify, _paid
from tests.events import events_delivered
from tests.factories import MemberFactory, OperatorFactory, StaffFactory
from tests.wechatpay import paid_recharge, pay_keys_fixture, wechat_pay_fixture  # noqa: F401

pytestmark = pytest.mark.django_db


def _messages(member) -> list[tuple[str, str, dict]]:
    return list(
        Notification.objects.filter(member=member)
        .order_by("pk")
        .values_list("kind", "subject", "payload")
    )


def test_a_refund_approved_then_refunded_tells_the_driver_each_time_once(wechat_pay):
    member = MemberFactory(wechat_openid="o-refund")
    staff = StaffFactory(operator=member.operator)
    _paid(wechat_pay, member, D("50.00"))
    request = refund_request_create(member=member, amount=D("30.00"))
    refund_request_approve(refund_request=request, actor=staff)
    refunds_send(request_id=request.pk)
    _notify(wechat_pay, request.refunds.get(), "SUCCESS")
    events_delivered()
    events_delivered()  # delivered again: still one message each
    assert _messages(member) == [
        ("refund_approved", f"refund:{request.pk}:refunding", {"amount": "30.00"}),
        (
            "refund_refunded",
            f"refund:{request.pk}:refunded",
            {"amount": "30.00", "refunded": "30.00"},
        ),
    ]


def test_a_rejected_refund_says_why(wechat_pay):
    member = MemberFactory()
    _paid(wechat_pay, member, D("50.00"))
    request = refund_request_create(member=member, amount=D("20.00"))
    refund_request_reject(
        refund_request=request, reason="请先结清欠费", actor=StaffFactory(operator=member.operator)
    )
    events_delivered()
    assert _messages(member) == [
        (
            "refund_rejected",
            f"refund:{request.pk}:rejected",
            {"amount": "20.00", "reason": "请先结清欠费"},
        )
    ]


def test_a_refund_wechat_closes_is_a_failed_refund_message(wechat_pay):
    member = MemberFactory()
    _paid(wechat_pay, member, D("50.00"))
    request = refund_request_create(member=member, amount=D("20.00"))
    refund_request_approve(refund_request=request, actor=StaffFactory(operator=member.operator))
    refunds_send(request_id=request.pk)
    _notify(wechat_pay, request.refunds.get(), "CLOSED")
    events_delivered()
    assert [kind for kind, _s, _p in _messages(member)] == ["refund_approved", "refund_failed"]
    assert _messages(member)[1][2] == {"amount": "20.00", "refunded": "0.00"}


def test_an_invoice_issued_or_rejected_is_told():
    member = MemberFactory()
    staff = StaffFactory(operator=member.operator)
    issued = _ask(member, recharge_ids=[paid_recharge(member).pk])
    invoice_issue(
        invoice=issued,
        pdf=SimpleUploadedFile("i.pdf", PDF, content_type="application/pdf"),
        actor=staff,
    )
    rejected = _ask(member, recharge_ids=[paid_recharge(member).pk])
    invoice_reject(invoice=rejected, reason="税号有误", actor=staff)
    events_delivered()
    assert _messages(member) == [
        (
            "invoice_issued",
            f"invoice:{issued.pk}:issued",
            {"title": "杭州某某科技有限公司", "amount": "50.00"},
        ),
        (
            "invoice_rejected",
            f"invoice:{rejected.pk}:rejected",
            {"title": "杭州某某科技有限公司", "amount": "50.00", "reason": "税号有误"},
        ),
    ]


def test_money_messages_go_out_as_wechat_template_messages():
    member = MemberFactory(wechat_openid="o-money")
    invoice = _ask(member, recharge_ids=[paid_recharge(member).pk])
    invoice_reject(invoice=invoice, reason="税号有误", actor=StaffFactory(operator=member.operator))
    events_delivered()
    [message] = Notification.objects.filter(member=member)
    cache.delete("wechat-token:wx-app")
    with FakeWeChat(secret="s3cret") as wechat:
        client = WeChatClient(app_id="wx-app", app_secret="s3cret", base_url=wechat.url)
        without = WeChatTemplateSender(client=client, templates={"invoice_rejected": ""})
        failed = notification_send(notification_id=message.pk, sender=without)
        assert (failed.state, failed.last_error) == (
            "pending",
            "no WeChat template is configured for invoice_rejected messages",
        )
        sender = WeChatTemplateSender(client=client, templates={"invoice_rejected": "TPL-INV"})
        sent = notification_send(notification_id=message.pk, sender=sender)
        assert wechat.sent() == [
            {
                "touser": "o-money",
                "template_id": "TPL-INV",
                "data": {
                    "first": {"value": "Your invoice request was rejected"},
                    "keyword1": {"value": "杭州某某科技有限公司"},
                    "keyword2": {"value": "税号有误"},
                    "remark": {"value": "You may ask for it again with corrected details."},
                },
            }
        ]
    cache.delete("wechat-token:wx-app")
    assert (sent.state, sent.sender) == ("sent", "wechat")


def test_staff_see_the_money_messages_of_their_operators_members():
    member = MemberFactory()
    invoice = _ask(member, recharge_ids=[paid_recharge(member).pk])
    invoice_reject(invoice=invoice, reason="税号有误", actor=StaffFactory(operator=member.operator))
    events_delivered()
    message = Notification.objects.get(member=member)
    assert list(notifications_visible_to(StaffFactory(operator=member.operator))) == [message]
    assert list(notifications_visible_to(StaffFactory(operator=OperatorFactory()))) == []
