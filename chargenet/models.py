"""Shared kernel models: the audit log and the hide-instead-of-delete mixin."""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class HideableQuerySet(models.QuerySet):
    def visible(self):
        return self.filter(hidden_at__isnull=True)

    def hidden(self):
        return self.filter(hidden_at__isnull=False)


class Hideable(models.Model):
    """Records that money or charge records hang on are hidden, never hard-deleted.

    Hiding and restoring go through `chargenet.audit.hide` / `restore`, which write an
    audit row; the columns only say the current state.
    """

    hidden_at = models.DateTimeField(_("hidden at"), null=True, blank=True, db_index=True)
    hidden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("hidden by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    hidden_reason = models.CharField(_("reason for hiding"), max_length=200, blank=True)

    objects = HideableQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def is_hidden(self) -> bool:
        return self.hidden_at is not None


# Audit action codes are data (kept in English in the database); people read these labels.
# Codes "<model>_<verb>" and "<model>.<verb>" read as "<the model's name>: <verb>".
AUDIT_VERBS = {
    "add": _("added"),
    "create": _("created"),
    "change": _("changed"),
    "update": _("changed"),
    "delete": _("deleted"),
    "issue": _("issued"),
    "publish": _("published"),
    "unpublish": _("unpublished"),
    "assign": _("assigned"),
    "detect": _("detected"),
    "recalculate": _("recalculated"),
    "repair": _("repaired and settled"),
    "dismiss": _("dismissed"),
    "escalate": _("escalated"),
    "reopen": _("reopened"),
    "approve": _("approved"),
    "reject": _("rejected"),
}
AUDIT_ACTIONS = {
    "hide": _("hidden"),
    "restore": _("restored"),
    "wallet_adjust": _("wallet adjusted"),
    "wallet_refund": _("wallet refunded"),
    "wallet_withdraw": _("balance refunded to WeChat Pay"),
    "pile_command": _("remote command to a pile"),
    "staff_role": _("staff role changed"),
    "station_hours": _("opening hours changed"),
    "station_bindings": _("station bindings changed"),
    "station_tariff_assign": _("tariff assigned to a station"),
    "partner_on": _("partnership switched on"),
    "partner_off": _("partnership switched off"),
    "fault_bill_repair": _("fault bill repaired"),
}


def audit_action_label(action: str, content_type: ContentType | None = None) -> str:
    """The words for an audit action code (the code itself when there are none)."""
    if action in AUDIT_ACTIONS:
        return str(AUDIT_ACTIONS[action])
    thing, _sep, verb = action.replace(".", "_").rpartition("_")
    model = content_type.model_class() if content_type is not None else None
    if verb in AUDIT_VERBS and thing:
        name = model._meta.verbose_name if model is not None else thing.replace("_", " ")
        return str(_("%(thing)s: %(verb)s") % {"thing": name, "verb": AUDIT_VERBS[verb]})
    return action


class AuditLog(models.Model):
    """Who changed what, when, from what to what. Append-only."""

    at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_entries",
    )
    operator = models.ForeignKey(
        "orgs.Operator",
        verbose_name=_("operator"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    action = models.CharField(_("action"), max_length=64, db_index=True)
    content_type = models.ForeignKey(
        ContentType, verbose_name=_("object type"), null=True, on_delete=models.PROTECT
    )
    object_id = models.CharField(_("object id"), max_length=64, blank=True, db_index=True)
    object_repr = models.CharField(_("object"), max_length=200, blank=True)
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["content_type", "object_id", "-at"])]

    def __str__(self) -> str:
        at = timezone.localtime(self.at)
        return f"{at:%Y-%m-%d %H:%M:%S} {self.action_label()} {self.object_repr}"

    def action_label(self) -> str:
        return audit_action_label(self.action, self.content_type)


class OutboxEvent(models.Model):
    """A domain event: what happened, written in the same transaction as the change.

    Delivered to every consumer registered for its kind (`chargenet.events`) at least
    once, by Celery after commit and by the beat sweep for anything a crash left behind.
    """

    kind = models.CharField(_("kind"), max_length=64)  # indexed first in outbox_kind_key
    key = models.CharField(
        _("subject"), max_length=64, blank=True, help_text=_("What it is about, e.g. a bill id.")
    )
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    delivered_at = models.DateTimeField(
        _("delivered at"),
        null=True,
        blank=True,
        help_text=_("When every consumer had taken it; empty while any is still due."),
    )
    attempts = models.PositiveIntegerField(
        _("delivery attempts"),
        default=0,
        help_text=_("Deliveries tried while a consumer was still due; the sweep stops at a limit."),
    )

    class Meta:
        verbose_name = _("domain event")
        verbose_name_plural = _("domain events")
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="outbox_undelivered",
                condition=models.Q(delivered_at__isnull=True),
            ),
            models.Index(fields=["kind", "key"], name="outbox_kind_key"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.key}"


class EventDelivery(models.Model):
    """One consumer has taken one event: written in the consumer's own transaction, so a
    consumer's database effect and this row commit together (exactly once in effect)."""

    event = models.ForeignKey(
        OutboxEvent, verbose_name=_("event"), on_delete=models.CASCADE, related_name="deliveries"
    )
    consumer = models.CharField(_("consumer"), max_length=100)
    at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("event delivery")
        verbose_name_plural = _("event deliveries")
        constraints = [
            models.UniqueConstraint(fields=["event", "consumer"], name="event_delivered_once")
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.consumer}"
