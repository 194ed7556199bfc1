"""Invoice requests: over the driver's own paid bills and recharges, once each; staff issue
(PDF) or reject (reason), audited; the download link is signed and short-lived."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from billing.events import INVOICE_ISSUED, INVOICE_REQUESTED
from billing.models import InvoiceState, PaymentState, Recharge, RechargeState
from billing.services.invoices import (
    InvoiceError,
    LinkExpired,
    invoice_by_link,
    invoice_issue,
    invoice_link_token,
    invoice_reject,
    invoice_request_create,
)
from billing.services.settlement import bill_settle
from chargenet.errors import Conflict, NotFound
from chargenet.models import AuditLog, OutboxEvent
from tests.billing.factories import stopped_session, tariffed_station
from tests.factories import MemberFactory, StaffFactory
from tests.wechatpay import paid_recharge

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
T0 = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)


def paid_bill(member):
    station = tariffed_station(operator=member.operator)
    session = stopped_session(
        station=station,
        member=member,
        samples=[(T0, "0"), (T0 + dt.timedelta(hours=1), "10000")],
    )
    bill = bill_settle(session_id=session.pk)
    assert bill.payment_state == PaymentState.PAID
    return bill


def _ask(member, **kw):
    return invoice_request_create(
        member=member,
        **{
            "bill_ids": [],
            "recharge_ids": [],
            "title": "杭州某某科技有限公司",
            "tax_number": "91330100ma2abcde1x",
            "email": "fin@example.com",
            **kw,
        },
    )


def test_a_driver_asks_for_an_invoice_over_own_paid_bills_and_recharges():
    member = MemberFactory()
    recharge = paid_recharge(member)
    bill = paid_bill(member)
    invoice = _ask(member, bill_ids=[bill.pk], recharge_ids=[recharge.pk])
    assert (invoice.state, invoice.amount, invoice.tax_number) == (
        InvoiceState.REQUESTED,
        bill.total + D("50.00"),
        "91330100MA2ABCDE1X",
    )
    assert [(i.bill_id, i.recharge_id, i.amount) for i in invoice.items.all()] == [
        (bill.pk, None, bill.total),
        (None, recharge.pk, D("50.00")),
    ]
    assert OutboxEvent.objects.filter(kind=INVOICE_REQUESTED, key=str(invoice.pk)).count() == 1
    with pytest.raises(Conflict, match="another invoice request"):
        _ask(member, recharge_ids=[recharge.pk])


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"title": " "}, InvoiceError, "needs a title"),
        ({"tax_number": "12345"}, InvoiceError, "15 to 20"),
        ({"email": "not-an-address"}, InvoiceError, "email address"),
        ({"recharge_ids": []}, InvoiceError, "at least one"),
    ],
)
def test_bad_invoice_requests_are_refused(kw, error, message):
    member = MemberFactory()
    recharge = paid_recharge(member)
    with pytest.raises(error, match=message):
        _ask(member, **{"recharge_ids": [recharge.pk], **kw})
    assert not member.invoices.exists()


def test_another_drivers_or_unpaid_items_cannot_be_invoiced():
    member, other = MemberFactory(), MemberFactory()
    theirs = paid_recharge(other)
    with pytest.raises(NotFound):
        _ask(member, recharge_ids=[theirs.pk])
    mine = paid_recharge(member)
    Recharge.objects.filter(pk=mine.pk).update(state=RechargeState.CLOSED)
    with pytest.raises(InvoiceError, match="Only paid"):
        _ask(member, recharge_ids=[mine.pk])
    assert not member.invoices.exists()


def test_staff_issue_with_a_pdf_and_the_driver_fetches_it_through_a_short_lived_link(
    settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    member = MemberFactory()
    staff = StaffFactory(operator=member.operator)
    invoice = _ask(member, recharge_ids=[paid_recharge(member).pk])
    with pytest.raises(InvoiceError, match="not issued"):
        invoice_link_token(invoice=invoice)
    with pytest.raises(InvoiceError, match="not a PDF"):
        invoice_issue(invoice=invoice, pdf=SimpleUploadedFile("x.pdf", b"hello"), actor=staff)
    invoice = invoice_issue(invoice=invoice, pdf=SimpleUploadedFile("x.pdf", PDF), actor=staff)
    assert (invoice.state, invoice.decided_by) == (InvoiceState.ISSUED, staff)
    invoice.pdf.open("rb")
    assert invoice.pdf.read() == PDF
    invoice.pdf.close()
    token = invoice_link_token(invoice=invoice)
    assert invoice_by_link(token=token) == invoice
    with pytest.raises(NotFound):
        invoice_by_link(token=token[:-2] + "xx")
    settings.INVOICE_LINK_SECONDS = -1  # every link is too old now
    with pytest.raises(LinkExpired):
        invoice_by_link(token=token)
    assert AuditLog.objects.get(action="invoice_request.issue").actor == staff
    assert OutboxEvent.objects.filter(kind=INVOICE_ISSUED, key=str(invoice.pk)).count() == 1


def test_a_rejected_request_frees_its_items_for_another():
    member = MemberFactory()
    staff = StaffFactory(operator=member.operator)
    recharge = paid_recharge(member)
    invoice = _ask(member, recharge_ids=[recharge.pk])
    with pytest.raises(InvoiceError, match="needs a reason"):
        invoice_reject(invoice=invoice, reason="", actor=staff)
    invoice_reject(invoice=invoice, reason="tax number does not match the title", actor=staff)
    with pytest.raises(Conflict, match="rejected already"):
        invoice_issue(invoice=invoice, pdf=SimpleUploadedFile("x.pdf", PDF), actor=staff)
    again = _ask(member, recharge_ids=[recharge.pk], tax_number="91330100MA2ABCDE2X")
    assert again.state == InvoiceState.REQUESTED
