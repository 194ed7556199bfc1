"""Back office for drivers' money: recharges list (scoped, filtered), the refund approval
queue and the invoice queue, with feedback, in zh-hans and en."""

from decimal import Decimal as D

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from billing.models import (
    InvoiceRequest,
    InvoiceState,
    Recharge,
    RechargeState,
    RefundRequest,
    RefundState,
)
from billing.services.invoices import invoice_request_create
from billing.services.refunds import refund_request_create
from billing.services.wallet import wallet_balance
from chargenet.models import AuditLog
from orgs.models import Role
from tests.factories import MemberFactory, StaffFactory, SubOperatorFactory
from tests.wechatpay import paid_recharge

pytestmark = pytest.mark.django_db
PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture
def desk(client):
    """An operator admin signed in, with a member of the operator and one of another."""
    staff = StaffFactory()
    client.force_login(staff)
    mine = MemberFactory(operator=staff.operator)
    theirs = MemberFactory()
    return staff, mine, theirs


def test_recharges_list_is_scoped_and_filters_by_state(client, desk, django_assert_max_num_queries):
    _staff, mine, theirs = desk
    paid = paid_recharge(mine)
    pending = paid_recharge(mine, D("10.00"), state=RechargeState.PENDING)
    other = paid_recharge(theirs)
    with django_assert_max_num_queries(12):
        page = client.get("/admin/billing/recharge/").content.decode()
    assert paid.out_trade_no in page and pending.out_trade_no in page
    assert other.out_trade_no not in page
    page = client.get("/admin/billing/recharge/?state__exact=pending").content.decode()
    assert pending.out_trade_no in page and paid.out_trade_no not in page
    page = client.get("/admin/billing/recharge/?channel__exact=wechat_jsapi").content.decode()
    assert paid.out_trade_no in page
    assert client.get(f"/admin/billing/recharge/{other.pk}/change/").status_code == 404


def test_staff_approve_a_refund_from_the_queue_with_feedback(client, desk):
    staff, mine, _theirs = desk
    paid_recharge(mine)
    refund = refund_request_create(member=mine, amount=D("20.00"))
    answer = client.post(
        "/admin/billing/refundrequest/",
        {"action": "approve", "_selected_action": [refund.pk]},
        follow=True,
    )
    assert "1 refund approved; WeChat Pay is refunding it." in answer.content.decode()
    refund.refresh_from_db()
    assert (refund.state, refund.decided_by) == (RefundState.REFUNDING, staff)
    assert wallet_balance(member=mine) == D("30.00")
    assert AuditLog.objects.filter(action="refund_request.approve", actor=staff).count() == 1


def test_staff_reject_a_refund_with_a_reason(client, desk):
    _staff, mine, _theirs = desk
    paid_recharge(mine)
    refund = refund_request_create(member=mine, amount=D("20.00"))
    url = f"/admin/billing/refundrequest/{refund.pk}/reject/"
    answer = client.post(url, {"reason": ""})
    assert answer.status_code == 200  # the form again, with its error
    answer = client.post(url, {"reason": "charged a session since"}, follow=True)
    assert "Rejected; the driver sees your reason." in answer.content.decode()
    refund.refresh_from_db()
    assert (refund.state, refund.rejection_reason) == (
        RefundState.REJECTED,
        "charged a session since",
    )
    assert wallet_balance(member=mine) == D("50.00")


@pytest.mark.parametrize("who", ["other operator", "sub-operator staff", "customer service"])
def test_who_may_not_decide_gets_nothing_and_nothing_changes(client, who):
    member = MemberFactory()
    paid_recharge(member)
    refund = refund_request_create(member=member, amount=D("20.00"))
    if who == "other operator":
        staff = StaffFactory()
    elif who == "sub-operator staff":
        staff = StaffFactory(
            sub_operator=SubOperatorFactory(operator=member.operator),
            role=Role.SUB_OPERATOR_STAFF,
        )
    else:
        staff = StaffFactory(operator=member.operator, role=Role.CUSTOMER_SERVICE)
    client.force_login(staff)
    answer = client.post(f"/admin/billing/refundrequest/{refund.pk}/approve/")
    assert answer.status_code in (403, 404)
    client.post(
        "/admin/billing/refundrequest/", {"action": "approve", "_selected_action": [refund.pk]}
    )
    refund.refresh_from_db()
    assert refund.state == RefundState.REQUESTED
    assert wallet_balance(member=member) == D("50.00")


def test_staff_issue_an_invoice_by_uploading_its_pdf(client, desk, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    staff, mine, _theirs = desk
    invoice = invoice_request_create(
        member=mine,
        bill_ids=[],
        recharge_ids=[paid_recharge(mine).pk],
        title="Li Lei",
        tax_number="",
        email="li@example.com",
    )
    url = f"/admin/billing/invoicerequest/{invoice.pk}/issue/"
    page = client.get(url).content.decode()
    assert 'enctype="multipart/form-data"' in page
    answer = client.post(url, {"pdf": SimpleUploadedFile("x.txt", b"hello")})
    assert "The file is not a PDF." in answer.content.decode()
    answer = client.post(url, {"pdf": SimpleUploadedFile("i.pdf", PDF)}, follow=True)
    assert "Issued; the driver can download the invoice now." in answer.content.decode()
    invoice.refresh_from_db()
    assert (invoice.state, invoice.decided_by) == (InvoiceState.ISSUED, staff)
    download = client.get(f"/admin/billing/invoicerequest/{invoice.pk}/pdf/")
    assert b"".join(download.streaming_content) == PDF


def test_the_money_desk_speaks_chinese():
    with translation.override("zh-hans"):
        assert str(Recharge._meta.verbose_name_plural) == "充值记录"
        assert str(RefundRequest._meta.verbose_name) == "余额退款申请"
        assert str(InvoiceRequest._meta.verbose_name) == "开票申请"
        assert str(RechargeState.PENDING.label) == "待支付"
        assert str(RefundState.REQUESTED.label) == "待审批"
