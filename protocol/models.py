"""The frame journal: every OCPP frame in and out, searchable by customer service.

Rows are written in batches by `protocol.journal.JournalWriter` (group commit). The table
is partitioned by day (`FRAME_PARTITIONS`, migration 0002): beat creates days ahead
(`protocol.tasks.partitions_ahead_task`) and `protocol.services.journal_prune` drops the
days older than ``GATEWAY_JOURNAL_RETENTION_DAYS``.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chargenet.partitions import TimePartitions
from stations.models import Pile


class Direction(models.TextChoices):
    IN = "in", _("pile → platform")
    OUT = "out", _("platform → pile")


class MessageType(models.IntegerChoices):
    MALFORMED = 0, _("malformed")
    CALL = 2, _("CALL")
    CALL_RESULT = 3, _("CALLRESULT")
    CALL_ERROR = 4, _("CALLERROR")
    EVENT = 9, _("connection event")


class Frame(models.Model):
    """One OCPP frame as it crossed the wire (or a connection event: open, close, refused)."""

    at = models.DateTimeField(_("time"), db_index=True)
    pile_code = models.CharField(_("pile code"), max_length=64)
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices)
    message_type = models.PositiveSmallIntegerField(_("message type"), choices=MessageType.choices)
    action = models.CharField(_("action"), max_length=64, blank=True)
    unique_id = models.CharField(_("message id"), max_length=64, blank=True)
    payload = models.JSONField(_("payload"), null=True, blank=True)
    raw = models.TextField(
        _("raw text"), blank=True, help_text=_("Kept for frames that could not be parsed.")
    )
    error_code = models.CharField(_("error code"), max_length=64, blank=True)
    transaction_id = models.BigIntegerField(_("transaction id"), null=True, blank=True)
    order_no = models.CharField(_("order number"), max_length=20, blank=True)
    node = models.CharField(_("gateway node"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("protocol frame")
        verbose_name_plural = _("protocol log")
        ordering = ["-at", "-id"]
        # Every index is paid by each of the billions of rows: only those the log search
        # and the session page use (by pile, by action, by order number; time on its own
        # for the newest-first list). A pile's or an action's frames use the pair indexes.
        indexes = [
            models.Index(fields=["pile_code", "-at"], name="frame_pile_time"),
            models.Index(fields=["action", "-at"], name="frame_action_time"),
            models.Index(fields=["order_no"], name="frame_order_no"),
        ]

    def __str__(self) -> str:
        at = timezone.localtime(self.at)  # the back office's zone, like the time field beside it
        direction = self.get_direction_display()
        return f"{at:%Y-%m-%d %H:%M:%S} {self.pile_code} {direction} {self.action}"


# In the database the primary key is (id, at); ids stay unique (see chargenet.partitions).
FRAME_PARTITIONS = TimePartitions(Frame._meta.db_table, "at", days=1)


class PileConsole(Pile):
    """Proxy of a pile for the admin's remote-command page (see protocol/admin.py)."""

    class Meta:
        proxy = True
        verbose_name = _("pile remote control")
        verbose_name_plural = _("pile remote control")
