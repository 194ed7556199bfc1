"""Invoice requests: a driver asks for an invoice over chosen paid bills and recharges;
staff issue it by uploading the PDF, or reject it with a reason (both audited); the driver
fetches the PDF through a signed link that works for INVOICE_LINK_SECONDS."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import status

from chargenet.audit import audit_record
from chargenet.errors import Conflict, DomainError, NotFound
from chargenet.events import event_publish

from ..events import INVOICE_ISSUED, INVOICE_REJECTED, INVOICE_REQUESTED
from ..models import (
    Bill,
    InvoiceItem,
    InvoiceRequest,
    InvoiceState,
    PaymentState,
    Recharge,
    RechargeState,
)

# 统一社会信用代码 (18) and the older taxpayer numbers (15, 17, 20): digits and capitals.
TAX_NUMBER = re.compile(r"[0-9A-Z]{15,20}")
PDF_MAX_BYTES = 10 * 1024 * 1024
_LINK_SALT = "billing.invoice-download"


class InvoiceError(DomainError):
    code = "invoice_invalid"


class LinkExpired(DomainError):
    code = "link_expired"
    http_status = status.HTTP_410_GONE


@transaction.atomic
def invoice_request_create(
    *,
    member,
    bill_ids: Sequence[int],
    recharge_ids: Sequence[int],
    title: str,
    tax_number: str,
    email: str,
) -> InvoiceRequest:
    """Ask for an invoice over the member's own paid bills and recharges; each may be on
    one live request only (a unique constraint). Another member's (or a missing) bill or
    recharge is "not found"."""
    title = (title or "").strip()
    tax_number = (tax_number or "").strip().upper()
    email = (email or "").strip()
    if not title:
        raise InvoiceError(_("An invoice needs a title (a company's or a person's name)."))
    if tax_number and not TAX_NUMBER.fullmatch(tax_number):
        raise InvoiceError(_("A tax number is 15 to 20 digits and capital letters."))
    try:
        validate_email(email)
    except ValidationError:
        raise InvoiceError(_("Please give an email address the invoice can be sent to.")) from None
    bill_ids, recharge_ids = set(bill_ids), set(recharge_ids)
    if not bill_ids and not recharge_ids:
        raise InvoiceError(_("Choose at least one paid bill or recharge."))
    bills = list(Bill.objects.filter(member=member, pk__in=bill_ids).order_by("pk"))
    recharges = list(Recharge.objects.filter(member=member, pk__in=recharge_ids).order_by("pk"))
    if len(bills) != len(bill_ids) or len(recharges) != len(recharge_ids):
        raise NotFound(_("Not found."))
    if any(b.payment_state != PaymentState.PAID for b in bills) or any(
        r.state != RechargeState.PAID for r in recharges
    ):
        raise InvoiceError(_("Only paid bills and paid recharges can be invoiced."))
    amount = sum((b.total for b in bills), Decimal("0.00")) + sum(
        (r.amount for r in recharges), Decimal("0.00")
    )
    if amount <= 0:
        raise InvoiceError(_("These come to 0.00 yuan; there is nothing to invoice."))
    invoice = InvoiceRequest.objects.create(
        member=member, title=title[:100], tax_number=tax_number, email=email, amount=amount
    )
    items = [InvoiceItem(invoice=invoice, bill=b, amount=b.total) for b in bills] + [
        InvoiceItem(invoice=invoice, recharge=r, amount=r.amount) for r in recharges
    ]
    try:
        with transaction.atomic():
            InvoiceItem.objects.bulk_create(items)
    except IntegrityError:
        raise Conflict(_("Some of these are on another invoice request already.")) from None
    audit_record(
        actor=None,
        action="invoice_request.create",
        obj=invoice,
        after={"amount": amount, "bills": sorted(bill_ids), "recharges": sorted(recharge_ids)},
        operator_id=member.operator_id,
    )
    event_publish(
        kind=INVOICE_REQUESTED,
        key=invoice.pk,
        payload={"invoice_id": invoice.pk, "member_id": member.pk, "amount": str(amount)},
    )
    return invoice


def _locked_open(invoice: InvoiceRequest) -> InvoiceRequest:
    locked = InvoiceRequest.objects.select_for_update().select_related("member").get(pk=invoice.pk)
    if locked.state != InvoiceState.REQUESTED:
        raise Conflict(
            _("This invoice request is %(state)s already.") % {"state": locked.get_state_display()}
        )
    return locked


@transaction.atomic
def invoice_issue(*, invoice: InvoiceRequest, pdf: UploadedFile, actor) -> InvoiceRequest:
    """Staff upload the invoice's PDF: the request is issued and the driver may fetch it."""
    if pdf is None or pdf.size == 0:
        raise InvoiceError(_("Please choose the invoice's PDF file."))
    if pdf.size > PDF_MAX_BYTES:
        raise InvoiceError(_("The PDF is larger than 10 MB."))
    pdf.seek(0)
    if pdf.read(5) != b"%PDF-":
        raise InvoiceError(_("The file is not a PDF."))
    pdf.seek(0)
    locked = _locked_open(invoice)
    locked.pdf.save(f"invoice-{locked.pk}.pdf", pdf, save=False)
    locked.state = InvoiceState.ISSUED
    locked.decided_by = actor
    locked.decided_at = timezone.now()
    locked.save(update_fields=["pdf", "state", "decided_by", "decided_at"])
    audit_record(
        actor=actor,
        action="invoice_request.issue",
        obj=locked,
        before={"state": InvoiceState.REQUESTED},
        after={"state": locked.state, "pdf": locked.pdf.name},
        operator_id=locked.member.operator_id,
    )
    event_publish(
        kind=INVOICE_ISSUED,
        key=locked.pk,
        payload={"invoice_id": locked.pk, "member_id": locked.member_id},
    )
    return locked


@transaction.atomic
def invoice_reject(*, invoice: InvoiceRequest, reason: str, actor) -> InvoiceRequest:
    """Staff reject a request with a reason the driver reads; its bills and recharges may
    be asked for again."""
    reason = (reason or "").strip()
    if not reason:
        raise InvoiceError(_("A rejection needs a reason the driver can read."))
    locked = _locked_open(invoice)
    locked.state = InvoiceState.REJECTED
    locked.rejection_reason = reason[:200]
    locked.decided_by = actor
    locked.decided_at = timezone.now()
    locked.save(update_fields=["state", "rejection_reason", "decided_by", "decided_at"])
    locked.items.update(active=False)
    audit_record(
        actor=actor,
        action="invoice_request.reject",
        obj=locked,
        before={"state": InvoiceState.REQUESTED},
        after={"state": locked.state},
        reason=reason,
        operator_id=locked.member.operator_id,
    )
    event_publish(
        kind=INVOICE_REJECTED,
        key=locked.pk,
        payload={"invoice_id": locked.pk, "member_id": locked.member_id},
    )
    return locked


def invoice_link_token(*, invoice: InvoiceRequest) -> str:
    """The signed, short-lived token of an issued invoice's download link."""
    if invoice.state != InvoiceState.ISSUED:
        raise InvoiceError(_("The invoice is not issued yet."))
    return signing.TimestampSigner(salt=_LINK_SALT).sign(str(invoice.pk))


def invoice_by_link(*, token: str) -> InvoiceRequest:
    """The issued invoice a download token names; `LinkExpired` once it is too old."""
    signer = signing.TimestampSigner(salt=_LINK_SALT)
    try:
        pk = signer.unsign(token, max_age=settings.INVOICE_LINK_SECONDS)
    except signing.SignatureExpired:
        raise LinkExpired(_("This download link has expired; please open it again.")) from None
    except signing.BadSignature:
        raise NotFound(_("Not found.")) from None
    invoice = InvoiceRequest.objects.filter(pk=pk, state=InvoiceState.ISSUED).first()
    if invoice is None:
        raise NotFound(_("Not found."))
    return invoice
