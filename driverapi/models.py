"""A driver's start, recorded before it is sent: the phone is answered at once and reads
the pile's answer later (`driverapi.starts`)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class StartState(models.TextChoices):
    STARTING = "starting", _("starting")  # sent; the pile has not answered yet
    ACCEPTED = "accepted", _("accepted")  # the pile said yes; its start report comes next
    CHARGING = "charging", _("charging")  # the session opened
    REJECTED = "rejected", _("rejected")
    OFFLINE = "offline", _("offline")
    TIMEOUT = "timeout", _("no answer in time")
    FAILED = "failed", _("not sent")  # not supported by the pile, or an invalid request


# What can still change; the other states are final.
OPEN_STATES = (StartState.STARTING, StartState.ACCEPTED)


class DriverStart(models.Model):
    """One start a driver asked for, by its idempotency key (a retried request finds it:
    one command to the pile however often the phone resends)."""

    member = models.ForeignKey(
        "orgs.Member", verbose_name=_("member"), on_delete=models.PROTECT, related_name="+"
    )
    connector = models.ForeignKey(
        "stations.Connector",
        verbose_name=_("connector"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=64)
    state = models.CharField(
        _("state"), max_length=16, choices=StartState.choices, default=StartState.STARTING
    )
    # The command on its way (`protocol.adapters.Sent`): empty until it was sent.
    request_id = models.CharField(_("request id"), max_length=64, blank=True)
    action = models.CharField(_("command"), max_length=40, blank=True)
    expires = models.FloatField(_("answer due by (epoch s)"), null=True, blank=True)
    # The pile's answer in the platform's words (`protocol.adapters.Outcome`), once known.
    outcome = models.CharField(_("outcome"), max_length=16, blank=True)
    session = models.ForeignKey(
        "billing.ChargingSession",
        verbose_name=_("session"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("driver start")
        verbose_name_plural = _("driver starts")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "idempotency_key"], name="driverstart_one_per_key"
            )
        ]
        indexes = [models.Index(fields=["member", "-created_at"], name="driverstart_member_recent")]

    def __str__(self) -> str:
        return f"{self.member_id}/{self.idempotency_key}: {self.state}"
