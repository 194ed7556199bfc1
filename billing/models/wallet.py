"""The member wallet: an append-only ledger with a cached balance.

The balance is the sum of the entries; `Wallet.balance` caches it, updated with F() in
the same transaction as the entry (`billing.services.wallet`), checked by
`manage.py wallet_verify`. Entries are never updated or deleted.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Wallet(models.Model):
    member = models.OneToOneField(
        "orgs.Member", verbose_name=_("member"), on_delete=models.PROTECT, related_name="wallet"
    )
    balance = models.DecimalField(_("balance (yuan)"), max_digits=12, decimal_places=2, default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("wallet")
        verbose_name_plural = _("wallets")
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="wallet_balance_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.member}: {self.balance}"


class EntryKind(models.TextChoices):
    RECHARGE = "recharge", _("recharge")
    CHARGE = "charge", _("charge (bill)")
    REFUND = "refund", _("refund")
    ADJUSTMENT = "adjustment", _("manual adjustment")
    WITHDRAWAL = "withdrawal", _("balance refund to WeChat Pay")


class LedgerEntry(models.Model):
    """One movement of money in a wallet; ``amount`` is signed (credit > 0, debit < 0)."""

    wallet = models.ForeignKey(
        Wallet, verbose_name=_("wallet"), on_delete=models.PROTECT, related_name="entries"
    )
    kind = models.CharField(_("kind"), max_length=16, choices=EntryKind.choices)
    amount = models.DecimalField(_("amount (yuan)"), max_digits=12, decimal_places=2)
    balance_after = models.DecimalField(_("balance after"), max_digits=12, decimal_places=2)
    bill = models.ForeignKey(
        "billing.Bill",
        verbose_name=_("bill"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
    )
    reference = models.CharField(
        _("reference"),
        max_length=64,
        blank=True,
        help_text=_("The payment provider's order number of a recharge or refund."),
    )
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("wallet ledger")
        ordering = ["wallet", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_amount_not_zero"),
            models.CheckConstraint(
                condition=~Q(kind__in=["recharge", "refund"]) | Q(amount__gt=0),
                name="ledger_credit_positive",
            ),
            models.CheckConstraint(
                condition=~Q(kind="charge") | (Q(amount__lt=0) & Q(bill__isnull=False)),
                name="ledger_charge_is_debit_of_a_bill",
            ),
            models.CheckConstraint(
                condition=~Q(kind="adjustment") | ~Q(reason=""),
                name="ledger_adjustment_has_reason",
            ),
            # A bill is deducted exactly once, whatever retries or races happen.
            models.UniqueConstraint(
                fields=["bill"], condition=Q(kind="charge"), name="ledger_one_charge_per_bill"
            ),
            # A paid recharge order is credited exactly once.
            models.UniqueConstraint(
                fields=["reference"],
                condition=Q(kind="recharge") & ~Q(reference=""),
                name="ledger_one_credit_per_recharge",
            ),
            # A balance refund leaves the wallet once per WeChat refund number, and comes
            # back (a refund entry with the same number) at most once if WeChat closes it.
            models.CheckConstraint(
                condition=~Q(kind="withdrawal") | (Q(amount__lt=0) & ~Q(reference="")),
                name="ledger_withdrawal_is_debit_with_reference",
            ),
            models.UniqueConstraint(
                fields=["reference"],
                condition=Q(kind="withdrawal"),
                name="ledger_one_debit_per_withdrawal",
            ),
            models.UniqueConstraint(
                fields=["reference"],
                condition=Q(kind="refund") & ~Q(reference=""),
                name="ledger_one_refund_per_reference",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.wallet_id} {self.kind} {self.amount}"
