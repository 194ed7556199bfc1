"""Fault bills (故障账单): the case per session, its repair audit, the operator's
thresholds, and the driver-notification outbox."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from billing.models.sessions import Channel

from .codes import FaultCode
from .rules import Thresholds


class FaultSettings(models.Model):
    """An operator's thresholds for the anomaly rules; without a row the defaults apply."""

    operator = models.OneToOneField(
        "orgs.Operator",
        verbose_name=_("operator"),
        on_delete=models.CASCADE,
        related_name="fault_settings",
    )
    max_silence_minutes = models.PositiveIntegerField(
        _("bill lost after minutes without meter values"),
        default=30,
        validators=[MinValueValidator(1)],
    )
    clock_skew_minutes = models.PositiveIntegerField(
        _("allowed pile clock difference (minutes)"), default=10
    )
    max_duration_hours = models.PositiveIntegerField(
        _("maximum charging duration (hours)"), default=24, validators=[MinValueValidator(1)]
    )
    energy_tolerance_wh = models.DecimalField(
        _("energy tolerance (Wh)"), max_digits=10, decimal_places=3, default=Decimal(500)
    )
    energy_tolerance_percent = models.DecimalField(
        _("energy tolerance (%)"), max_digits=5, decimal_places=2, default=Decimal(5)
    )
    charging_time_tolerance_minutes = models.PositiveIntegerField(
        _("charging duration tolerance (minutes)"), default=10
    )
    occupancy_tolerance_minutes = models.PositiveIntegerField(
        _("occupancy duration tolerance (minutes)"), default=15
    )
    min_charging_for_energy_minutes = models.PositiveIntegerField(
        _("charging minutes that must deliver energy"), default=5
    )
    # Energy beyond rated power × duration × percent + Wh is a fault (code 13).
    power_tolerance_percent = models.PositiveIntegerField(
        _("energy allowed over rated power × duration (%)"),
        default=120,
        validators=[MinValueValidator(100)],
    )
    power_tolerance_wh = models.DecimalField(
        _("energy allowed over rated power × duration (Wh)"),
        max_digits=10,
        decimal_places=3,
        default=Decimal(100),
        validators=[MinValueValidator(0)],
    )

    class Meta:
        verbose_name = _("fault-bill settings")
        verbose_name_plural = _("fault-bill settings")
        constraints = [
            models.CheckConstraint(
                condition=Q(energy_tolerance_wh__gte=0), name="fault_settings_energy_tol_positive"
            ),
            models.CheckConstraint(
                condition=Q(energy_tolerance_percent__gte=0) & Q(energy_tolerance_percent__lte=100),
                name="fault_settings_energy_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return str(self.operator)

    def thresholds(self) -> Thresholds:
        return Thresholds(
            max_silence=dt.timedelta(minutes=self.max_silence_minutes),
            clock_skew=dt.timedelta(minutes=self.clock_skew_minutes),
            max_duration=dt.timedelta(hours=self.max_duration_hours),
            energy_tolerance_wh=Decimal(self.energy_tolerance_wh),
            energy_tolerance_ratio=Decimal(self.energy_tolerance_percent) / 100,
            charging_time_tolerance=dt.timedelta(minutes=self.charging_time_tolerance_minutes),
            occupancy_tolerance=dt.timedelta(minutes=self.occupancy_tolerance_minutes),
            min_charging_for_energy=dt.timedelta(minutes=self.min_charging_for_energy_minutes),
            power_tolerance_ratio=Decimal(self.power_tolerance_percent) / 100,
            power_tolerance_wh=Decimal(self.power_tolerance_wh),
        )


class FaultState(models.TextChoices):
    OPEN = "open", _("open")
    ESCALATED = "escalated", _("escalated")
    REPAIRED = "repaired", _("repaired")
    DISMISSED = "dismissed", _("dismissed")


# The explicit transition table; anything else raises (faults.services.cases).
FAULT_TRANSITIONS: dict[str, frozenset[str]] = {
    FaultState.OPEN: frozenset({FaultState.REPAIRED, FaultState.DISMISSED, FaultState.ESCALATED}),
    FaultState.ESCALATED: frozenset({FaultState.REPAIRED, FaultState.DISMISSED, FaultState.OPEN}),
    FaultState.REPAIRED: frozenset(),
    FaultState.DISMISSED: frozenset(),
}
UNRESOLVED_STATES = [FaultState.OPEN, FaultState.ESCALATED]


class FaultSource(models.TextChoices):
    SETTLEMENT = "settlement", _("settlement")
    SWEEP = "sweep", _("lost-bill sweep")
    PARTNER = "partner", _("partner order check")


class FaultCase(models.Model):
    """A fault bill: one per session, with every code its rules found and why."""

    session = models.OneToOneField(
        "billing.ChargingSession",
        verbose_name=_("charging session"),
        on_delete=models.PROTECT,
        related_name="fault_case",
    )
    codes = ArrayField(
        models.PositiveSmallIntegerField(choices=FaultCode.choices), verbose_name=_("codes")
    )
    blocks_payment = models.BooleanField(
        _("blocks payment"),
        default=True,
        help_text=_("False when every code leaves the amount alone (e.g. occupancy only)."),
    )
    state = models.CharField(
        _("state"), max_length=16, choices=FaultState.choices, default=FaultState.OPEN
    )
    source = models.CharField(_("found by"), max_length=16, choices=FaultSource.choices)
    # [{"code": 1, "reasons": [{"key": ..., "params": {...}}]}] — rendered by rules.explain.
    findings = models.JSONField(_("findings"), default=list)
    pile_values = models.JSONField(_("pile values"), default=dict)
    platform_values = models.JSONField(_("platform values"), default=dict)
    proposal = models.JSONField(_("proposed values"), default=dict, blank=True)
    # Copied from the session at detection (they never change for a session), so the queue
    # filters and scopes 100,000 cases without joining millions of sessions.
    operator = models.ForeignKey(
        "orgs.Operator", verbose_name=_("operator"), on_delete=models.PROTECT, related_name="+"
    )
    station = models.ForeignKey(
        "stations.Station", verbose_name=_("station"), on_delete=models.PROTECT, related_name="+"
    )
    sub_operator = models.ForeignKey(
        "orgs.SubOperator",
        verbose_name=_("attributed sub-operator"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    # Bill loss clusters by firmware, and the pile may be updated later.
    firmware = models.CharField(_("firmware"), max_length=64, blank=True, db_index=True)
    detected_at = models.DateTimeField(_("detected at"), db_index=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("resolved by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        verbose_name = _("fault bill")
        verbose_name_plural = _("fault bills")
        ordering = ["-detected_at", "-id"]
        indexes = [
            GinIndex(fields=["codes"], name="faultcase_codes_gin"),
            models.Index(fields=["-detected_at", "-id"], name="faultcase_queue_order"),
            models.Index(fields=["operator", "-detected_at"], name="faultcase_operator_detected"),
            models.Index(fields=["state", "-detected_at"], name="faultcase_state_detected"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(codes=[]), name="faultcase_has_a_code"),
        ]

    def __str__(self) -> str:
        return f"{self.session} [{', '.join(str(c) for c in self.codes)}]"

    @property
    def code_labels(self) -> list[str]:
        return [f"{c} {FaultCode(c).label}" for c in self.codes]


class FaultAction(models.Model):
    """One thing that happened to a fault bill: detection, recalculation, repair, dismissal,
    escalation, reopening. Append-only; shown on the fault bill page."""

    class Kind(models.TextChoices):
        DETECT = "detect", _("detected")
        RECALCULATE = "recalculate", _("recalculated")
        REPAIR = "repair", _("repaired and settled")
        DISMISS = "dismiss", _("dismissed")
        ESCALATE = "escalate", _("escalated")
        REOPEN = "reopen", _("reopened")

    case = models.ForeignKey(
        FaultCase, verbose_name=_("fault bill"), on_delete=models.CASCADE, related_name="actions"
    )
    kind = models.CharField(_("action"), max_length=16, choices=Kind.choices)
    at = models.DateTimeField(_("time"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    from_state = models.CharField(_("from"), max_length=16, choices=FaultState.choices, blank=True)
    to_state = models.CharField(_("to"), max_length=16, choices=FaultState.choices, blank=True)
    before = models.JSONField(_("before"), null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(_("after"), null=True, blank=True, encoder=DjangoJSONEncoder)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        verbose_name = _("fault-bill action")
        verbose_name_plural = _("fault-bill actions")
        ordering = ["case", "at", "id"]

    def __str__(self) -> str:
        return f"{self.case_id} {self.kind} {self.at:%Y-%m-%d %H:%M:%S}"


class Notification(models.Model):
    """The driver-notification outbox: written in the transaction that ends the session
    (or changes the driver's refund or invoice), sent after commit by a task, exactly once
    per session, or per ``subject`` for the driver's money."""

    class Kind(models.TextChoices):
        CHARGE_FINISHED = "charge_finished", _("charging finished")
        BEING_CHECKED = "being_checked", _("bill being checked")
        REFUND_APPROVED = "refund_approved", _("balance refund approved")
        REFUND_REJECTED = "refund_rejected", _("balance refund rejected")
        REFUND_REFUNDED = "refund_refunded", _("balance refunded")
        REFUND_FAILED = "refund_failed", _("balance refund failed")
        INVOICE_ISSUED = "invoice_issued", _("invoice issued")
        INVOICE_REJECTED = "invoice_rejected", _("invoice request rejected")

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")

    session = models.ForeignKey(
        "billing.ChargingSession",
        verbose_name=_("charging session"),
        on_delete=models.CASCADE,
        related_name="notifications",
        null=True,
        blank=True,
    )
    member = models.ForeignKey(
        "orgs.Member",
        verbose_name=_("member"),
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    # What a message that is not about a session is about ("refund:12:refunded",
    # "invoice:7:issued"): one message each, however often its event is delivered.
    subject = models.CharField(_("about"), max_length=64, blank=True)
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    payload = models.JSONField(_("content"), default=dict)
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    sender = models.CharField(_("sent through"), max_length=32, blank=True)
    external_id = models.CharField(_("message id"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    claimed_until = models.DateTimeField(
        _("being sent until"),
        null=True,
        blank=True,
        help_text=_("A worker is sending it; after this time another may try again."),
    )

    class Meta:
        verbose_name = _("driver notification")
        verbose_name_plural = _("driver notifications")
        ordering = ["-created_at"]
        constraints = [
            # One "session ended" message per session: finished or being checked, not both.
            models.UniqueConstraint(fields=["session"], name="notification_once_per_session"),
            models.UniqueConstraint(
                fields=["subject"], condition=~Q(subject=""), name="notification_once_per_subject"
            ),
            models.CheckConstraint(
                condition=Q(session__isnull=False) | ~Q(subject=""),
                name="notification_about_something",
            ),
        ]
        indexes = [models.Index(fields=["state", "created_at"], name="notification_pending")]

    def __str__(self) -> str:
        return f"{self.session_id} {self.kind} {self.state}"
