"""The T/CEC 102 interconnection with partner platforms: each partnership's wire
credentials and settings, the tokens it holds, the requests it sent (replay guard), its
orders (one per StartChargeSeq), the push queue, the message log and reconciliations.

The switch is the operator's partnership switch (`orgs.PartnerAccess.enabled`), read on
every call, so switching a partner off takes effect at once.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .codec import KeyCase


class Interconnection(models.Model):
    """A partner's T/CEC 102 link with one operator: who it is on the wire (OperatorID),
    where we push (base URL), how it spells, the stations published to it, and the
    secrets of both directions — kept encrypted (`interconnect.vault`), the partner's
    OperatorSecret only hashed; they are shown once, when issued."""

    partner = models.ForeignKey(
        "orgs.Partner", verbose_name=_("partner"), on_delete=models.PROTECT, related_name="+"
    )
    operator = models.ForeignKey(
        "orgs.Operator", verbose_name=_("operator"), on_delete=models.PROTECT, related_name="+"
    )
    operator_id_wire = models.CharField(
        _("partner OperatorID"), max_length=32, unique=True, help_text=_("Its T/CEC operator id.")
    )
    base_url = models.URLField(_("partner base URL"), max_length=300)
    # Calls to us: the partner's OperatorSecret hashed, its data and signature secrets sealed.
    inbound_operator_secret_hash = models.CharField(max_length=128, editable=False)
    inbound_sealed = models.TextField(editable=False)
    # Calls to the partner: our OperatorID there and all five values sealed.
    push_operator_id = models.CharField(_("our OperatorID at the partner"), max_length=32)
    push_sealed = models.TextField(editable=False)
    push_token_sealed = models.TextField(editable=False, blank=True)
    push_token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    spells_sevice = models.BooleanField(
        _("writes “Sevice” as the standard does"),
        default=True,
        help_text=_("Off for partners that expect “Service” (ServicePrice, TotalServiceMoney)."),
    )
    key_case = models.CharField(
        _("key case"),
        max_length=8,
        choices=[(KeyCase.PASCAL, _("StationID (standard)")), (KeyCase.CAMEL, _("stationID"))],
        default=KeyCase.PASCAL,
    )
    stations = models.ManyToManyField(
        "stations.Station",
        verbose_name=_("published stations"),
        blank=True,
        related_name="+",
    )
    credentials_issued_at = models.DateTimeField(_("credentials issued at"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("partner interconnection")
        verbose_name_plural = _("partner interconnections")
        ordering = ["partner__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "operator"], name="interconnection_partner_operator"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.partner} ({self.operator_id_wire})"


class AccessToken(models.Model):
    """A token we issued to a partner (query_token); stored as its SHA-256."""

    interconnection = models.ForeignKey(
        Interconnection, on_delete=models.CASCADE, related_name="tokens"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"token of {self.interconnection_id} until {self.expires_at:%Y-%m-%d %H:%M}"


class SeenRequest(models.Model):
    """A request envelope's (TimeStamp, Seq) once accepted: the same pair again is a replay."""

    interconnection = models.ForeignKey(Interconnection, on_delete=models.CASCADE, related_name="+")
    timestamp = models.CharField(max_length=14)
    seq = models.CharField(max_length=4)
    at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["interconnection", "timestamp", "seq"], name="seen_request_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.timestamp}/{self.seq}"


class OrderState(models.TextChoices):
    """A partner order's life, numbered as the standard's StartChargeSeqStat."""

    STARTING = "starting", _("starting")  # 1 启动中
    CHARGING = "charging", _("charging")  # 2 充电中
    STOPPING = "stopping", _("stopping")  # 3 停止中
    ENDED = "ended", _("ended")  # 4 已结束
    FAILED = "failed", _("start failed")  # 4 已结束, never charged


ORDER_WIRE_STATE = {
    OrderState.STARTING: 1,
    OrderState.CHARGING: 2,
    OrderState.STOPPING: 3,
    OrderState.ENDED: 4,
    OrderState.FAILED: 4,
}


class PartnerOrder(models.Model):
    """One start a partner asked for (its StartChargeSeq), whatever it became: a repeated
    query_start_charge finds this row and has no second effect. ``tag`` is the partner
    credential the pile carries (`billing.services.sessions.partner_credential`), by which
    the session the pile opens is linked back."""

    interconnection = models.ForeignKey(
        Interconnection,
        verbose_name=_("partner interconnection"),
        on_delete=models.PROTECT,
        related_name="orders",
    )
    operator = models.ForeignKey(
        "orgs.Operator", verbose_name=_("operator"), on_delete=models.PROTECT, related_name="+"
    )
    start_charge_seq = models.CharField(_("StartChargeSeq"), max_length=32)
    connector = models.ForeignKey(
        "stations.Connector",
        verbose_name=_("connector"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    tag = models.CharField(_("credential at the pile"), max_length=20, unique=True)
    session = models.OneToOneField(
        "billing.ChargingSession",
        verbose_name=_("charging session"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="partner_order",
    )
    state = models.CharField(
        _("state"), max_length=16, choices=OrderState.choices, default=OrderState.STARTING
    )
    dispatched = models.BooleanField(_("start sent to the pile"), default=False)
    outcome = models.CharField(_("pile's answer"), max_length=200, blank=True)
    # The partner's ConfirmResult to notification_charge_order_info (0 agreed, else dispute).
    confirm_result = models.SmallIntegerField(_("partner's confirmation"), null=True, blank=True)
    confirmed_at = models.DateTimeField(_("order acknowledged at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("partner order")
        verbose_name_plural = _("partner orders")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["interconnection", "start_charge_seq"], name="partner_order_seq_once"
            ),
        ]

    def __str__(self) -> str:
        return self.start_charge_seq


class PushState(models.TextChoices):
    PENDING = "pending", _("pending")
    DELIVERED = "delivered", _("delivered")
    GIVEN_UP = "given_up", _("given up")


class Push(models.Model):
    """One notification to a partner, delivered by the worker outside any transaction:
    retried a minute apart, then backing off, for a day; delivered once the partner
    acknowledged it (then never sent again)."""

    interconnection = models.ForeignKey(
        Interconnection,
        verbose_name=_("partner interconnection"),
        on_delete=models.PROTECT,
        related_name="pushes",
    )
    operator = models.ForeignKey(
        "orgs.Operator", verbose_name=_("operator"), on_delete=models.PROTECT, related_name="+"
    )
    operation = models.CharField(_("operation"), max_length=48, db_index=True)
    # What makes it one: the same key for the same operation is queued once.
    key = models.CharField(_("key"), max_length=80)
    order = models.ForeignKey(
        PartnerOrder,
        verbose_name=_("partner order"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="pushes",
    )
    data = models.JSONField(_("data"))
    state = models.CharField(
        _("state"), max_length=16, choices=PushState.choices, default=PushState.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_at = models.DateTimeField(_("next attempt"))
    last_error = models.CharField(_("last error"), max_length=300, blank=True)
    answer = models.JSONField(_("partner's answer"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("push")
        verbose_name_plural = _("push queue")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["interconnection", "operation", "key"], name="push_once_per_key"
            ),
        ]
        indexes = [
            models.Index(fields=["next_at"], condition=Q(state="pending"), name="push_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.key}"


class Message(models.Model):
    """The message log: every request a partner sent us and every push we sent, decoded
    (data as JSON), with the answer. Searchable by StartChargeSeq, OperatorID, operation."""

    class Direction(models.TextChoices):
        IN = "in", _("partner → us")
        OUT = "out", _("us → partner")

    interconnection = models.ForeignKey(
        Interconnection,
        verbose_name=_("partner interconnection"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="messages",
    )
    operator = models.ForeignKey(
        "orgs.Operator",
        verbose_name=_("operator"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    at = models.DateTimeField(_("time"), db_index=True)
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices)
    operation = models.CharField(_("operation"), max_length=48)
    operator_id_wire = models.CharField(_("OperatorID"), max_length=32, blank=True)
    seq = models.CharField(_("Seq"), max_length=4, blank=True)
    start_charge_seq = models.CharField(_("StartChargeSeq"), max_length=32, blank=True)
    ret = models.IntegerField(_("Ret"), null=True, blank=True)
    request = models.JSONField(_("request (decoded)"), null=True, blank=True)
    answer = models.JSONField(_("answer (decoded)"), null=True, blank=True)
    error = models.CharField(_("error"), max_length=300, blank=True)
    push = models.ForeignKey(
        Push,
        verbose_name=_("push"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="messages",
    )

    class Meta:
        verbose_name = _("partner message")
        verbose_name_plural = _("partner message log")
        ordering = ["-at"]
        indexes = [models.Index(fields=["start_charge_seq"], name="message_order_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.operation}"


class Reconciliation(models.Model):
    """One day's check_charge_orders with a partner: what we sent and what it disputed."""

    interconnection = models.ForeignKey(
        Interconnection,
        verbose_name=_("partner interconnection"),
        on_delete=models.PROTECT,
        related_name="reconciliations",
    )
    operator = models.ForeignKey(
        "orgs.Operator", verbose_name=_("operator"), on_delete=models.PROTECT, related_name="+"
    )
    day = models.DateField(_("day"))
    check_order_seq = models.CharField(_("CheckOrderSeq"), max_length=32)
    order_count = models.PositiveIntegerField(_("orders"))
    total_power = models.DecimalField(_("energy (kWh)"), max_digits=14, decimal_places=3)
    total_money = models.DecimalField(_("amount (yuan)"), max_digits=14, decimal_places=2)
    disputes = models.JSONField(_("disputed orders"), default=list, blank=True)
    push = models.OneToOneField(
        Push, verbose_name=_("push"), on_delete=models.PROTECT, related_name="reconciliation"
    )
    checked_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("reconciliation")
        verbose_name_plural = _("reconciliations")
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["interconnection", "day"], name="reconciliation_once"),
        ]

    def __str__(self) -> str:
        return f"{self.interconnection} {self.day}"
