"""Recharges through WeChat Pay and balance refunds back to it.

A `Recharge` is one payment order (商户订单号 ``out_trade_no``) a driver opens from the
wallet page; it is credited to the wallet once, when WeChat says it is paid (callback or
query, in any order and any number of times): the ledger's unique recharge reference is
the guard, not a check. A `RefundRequest` is a driver's ask for (part of) the balance
back; staff approve or reject it; an approved one becomes one `RechargeRefund` per paid
recharge it is taken from (WeChat refunds against an order), each debited from the
wallet when approved and settled by WeChat's refund callback or query.

Written only by `billing.services.recharges` and `billing.services.refunds`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class RechargeState(models.TextChoices):
    PENDING = "pending", _("awaiting payment")
    PAID = "paid", _("paid")
    CLOSED = "closed", _("closed")
    FAILED = "failed", _("failed")


class PayChannel(models.TextChoices):
    WECHAT_JSAPI = "wechat_jsapi", _("WeChat Pay (official account)")


class Recharge(models.Model):
    member = models.ForeignKey(
        "orgs.Member", verbose_name=_("member"), on_delete=models.PROTECT, related_name="recharges"
    )
    out_trade_no = models.CharField(_("payment order number"), max_length=32, unique=True)
    channel = models.CharField(
        _("channel"), max_length=16, choices=PayChannel.choices, default=PayChannel.WECHAT_JSAPI
    )
    amount = models.DecimalField(_("amount (yuan)"), max_digits=12, decimal_places=2)
    state = models.CharField(
        _("state"), max_length=16, choices=RechargeState.choices, default=RechargeState.PENDING
    )
    openid = models.CharField(_("WeChat openid"), max_length=64)
    prepay_id = models.CharField(_("prepay id"), max_length=64, blank=True)
    transaction_id = models.CharField(
        _("WeChat transaction id"), max_length=32, blank=True, db_index=True
    )
    failure = models.CharField(_("failure"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField(_("expires at"))
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    # A worker asking WeChat about this order holds it until then (no row lock held
    # during the call); see `recharge_reconcile`.
    checked_until = models.DateTimeField(_("checked until"), null=True, blank=True)
    checked_at = models.DateTimeField(_("last checked at WeChat"), null=True, blank=True)

    class Meta:
        verbose_name = _("recharge")
        verbose_name_plural = _("recharges")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="recharge_amount_positive"),
            models.CheckConstraint(
                condition=~Q(state="paid") | (~Q(transaction_id="") & Q(paid_at__isnull=False)),
                name="recharge_paid_has_transaction",
            ),
        ]
        indexes = [models.Index(fields=["state", "created_at"], name="recharge_state_created")]

    def __str__(self) -> str:
        return f"{self.out_trade_no} {self.amount}"


class RefundState(models.TextChoices):
    REQUESTED = "requested", _("awaiting approval")
    REJECTED = "rejected", _("rejected")
    REFUNDING = "refunding", _("approved, refunding")
    REFUNDED = "refunded", _("refunded")
    FAILED = "failed", _("refund failed")


class RefundRequest(models.Model):
    """A driver's request to have ``amount`` of the wallet balance paid back."""

    member = models.ForeignKey(
        "orgs.Member",
        verbose_name=_("member"),
        on_delete=models.PROTECT,
        related_name="refund_requests",
    )
    amount = models.DecimalField(_("amount (yuan)"), max_digits=12, decimal_places=2)
    reason = models.CharField(_("driver's reason"), max_length=200, blank=True)
    state = models.CharField(
        _("state"), max_length=16, choices=RefundState.choices, default=RefundState.REQUESTED
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("decided by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    rejection_reason = models.CharField(_("reason for rejection"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("requested at"), auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("balance refund request")
        verbose_name_plural = _("balance refund requests")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_request_positive"),
            models.CheckConstraint(
                condition=~Q(state="rejected") | ~Q(rejection_reason=""),
                name="refund_rejection_has_reason",
            ),
            # One open request per member: a second one waits for the first.
            models.UniqueConstraint(
                fields=["member"],
                condition=Q(state__in=["requested", "refunding"]),
                name="refund_one_open_per_member",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.amount}"


class RechargeRefundState(models.TextChoices):
    PENDING = "pending", _("to send to WeChat")
    PROCESSING = "processing", _("processing at WeChat")
    SUCCESS = "success", _("refunded")
    CLOSED = "closed", _("closed (returned to the wallet)")
    ABNORMAL = "abnormal", _("abnormal (needs staff)")
    # Staff settled an abnormal refund outside WeChat Pay (e.g. paid the driver by bank
    # transfer); the wallet already gave the amount up at approval.
    HANDLED = "handled", _("handled by staff")


class RechargeRefund(models.Model):
    """One WeChat refund (商户退款单号 ``out_refund_no``) of part of one paid recharge."""

    request = models.ForeignKey(
        RefundRequest,
        verbose_name=_("refund request"),
        on_delete=models.PROTECT,
        related_name="refunds",
    )
    recharge = models.ForeignKey(
        Recharge, verbose_name=_("recharge"), on_delete=models.PROTECT, related_name="refunds"
    )
    out_refund_no = models.CharField(_("refund number"), max_length=64, unique=True)
    amount = models.DecimalField(_("amount (yuan)"), max_digits=12, decimal_places=2)
    state = models.CharField(
        _("state"),
        max_length=16,
        choices=RechargeRefundState.choices,
        default=RechargeRefundState.PENDING,
    )
    refund_id = models.CharField(_("WeChat refund id"), max_length=64, blank=True)
    failure = models.CharField(_("failure"), max_length=200, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    sending_until = models.DateTimeField(_("being sent until"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("WeChat refund")
        verbose_name_plural = _("WeChat refunds")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="recharge_refund_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.out_refund_no} {self.amount}"
