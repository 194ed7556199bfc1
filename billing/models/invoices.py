"""Invoice requests (发票申请): a driver asks for an invoice over chosen paid bills and
recharges; staff issue it (upload the PDF) or reject it with a reason. A bill or a
recharge is on at most one live request (a unique constraint on the items still active).

Written only by `billing.services.invoices`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class InvoiceState(models.TextChoices):
    REQUESTED = "requested", _("requested")
    ISSUED = "issued", _("issued")
    REJECTED = "rejected", _("rejected")


class InvoiceRequest(models.Model):
    member = models.ForeignKey(
        "orgs.Member", verbose_name=_("member"), on_delete=models.PROTECT, related_name="invoices"
    )
    title = models.CharField(_("invoice title"), max_length=100)
    tax_number = models.CharField(
        _("tax number"),
        max_length=20,
        blank=True,
        help_text=_("The buyer's taxpayer identification number; empty for a person."),
    )
    email = models.EmailField(_("email"))
    amount = models.DecimalField(_("amount (yuan)"), max_digits=12, decimal_places=2)
    state = models.CharField(
        _("state"), max_length=16, choices=InvoiceState.choices, default=InvoiceState.REQUESTED
    )
    pdf = models.FileField(_("invoice PDF"), upload_to="invoices/%Y/%m/", blank=True)
    rejection_reason = models.CharField(_("reason for rejection"), max_length=200, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("handled by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    decided_at = models.DateTimeField(_("handled at"), null=True, blank=True)
    created_at = models.DateTimeField(_("requested at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("invoice request")
        verbose_name_plural = _("invoice requests")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="invoice_amount_positive"),
            models.CheckConstraint(
                condition=~Q(state="issued") | ~Q(pdf=""), name="invoice_issued_has_pdf"
            ),
            models.CheckConstraint(
                condition=~Q(state="rejected") | ~Q(rejection_reason=""),
                name="invoice_rejection_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title} {self.amount}"


class InvoiceItem(models.Model):
    """One paid bill or one paid recharge on an invoice request."""

    invoice = models.ForeignKey(
        InvoiceRequest,
        verbose_name=_("invoice request"),
        on_delete=models.PROTECT,
        related_name="items",
    )
    bill = models.ForeignKey(
        "billing.Bill",
        verbose_name=_("bill"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    recharge = models.ForeignKey(
        "billing.Recharge",
        verbose_name=_("recharge"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    amount = models.DecimalField(_("amount (yuan)"), max_digits=12, decimal_places=2)
    # False once the request is rejected: the bill or recharge may be asked for again.
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("invoice item")
        verbose_name_plural = _("invoice items")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(bill__isnull=True, recharge__isnull=False)
                | Q(bill__isnull=False, recharge__isnull=True),
                name="invoice_item_one_source",
            ),
            models.UniqueConstraint(
                fields=["bill"], condition=Q(active=True), name="invoice_bill_once"
            ),
            models.UniqueConstraint(
                fields=["recharge"], condition=Q(active=True), name="invoice_recharge_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.invoice_id}: {self.amount}"
