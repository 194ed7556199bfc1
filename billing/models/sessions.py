"""Charging sessions as the gateway opens and closes them, and their meter samples.

A session becomes a bill at settlement (see billing services). The state table lives in
`billing.services.sessions.states.TRANSITIONS`; every move writes a `SessionTransition`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from chargenet.partitions import TimePartitions


class Channel(models.TextChoices):
    """How the charge was started (启动方式)."""

    SCAN = "scan", _("scan (WeChat)")
    PASSWORD = "password", pgettext_lazy("start channel", "station password")
    CARD = "card", _("card (one card one vehicle)")
    PARTNER = "partner", _("partner app")
    UNKNOWN = "unknown", _("unknown")


class SessionState(models.TextChoices):
    STARTED = "started", _("started")
    CHARGING = "charging", _("charging")
    STOPPED = "stopped", _("stopped")
    SETTLED = "settled", _("settled")
    FAULT = "fault", _("fault bill")
    REPAIRED = "repaired", _("repaired")
    # The platform refused the start (the pile still got a transaction id). Not active: the
    # one-session-per-connector rule and the lost-bill sweep leave it alone, and it becomes
    # a bill only if the pile charged anyway (see `billing.services.sessions.states`).
    REFUSED = "refused", _("start refused")


ACTIVE_STATES = [SessionState.STARTED, SessionState.CHARGING]


class ChargingSession(models.Model):
    """One charge on one connector (充电订单), found by (pile, ``protocol_ref``): the
    reference the pile's protocol uses for the transaction."""

    order_no = models.CharField(_("order number"), max_length=20, unique=True)
    operator = models.ForeignKey(
        "orgs.Operator", verbose_name=_("operator"), on_delete=models.PROTECT, related_name="+"
    )
    # station, pile, sub_operator and the four rarely set links carry no index of their
    # own: see Meta.indexes.
    station = models.ForeignKey(
        "stations.Station",
        verbose_name=_("station"),
        on_delete=models.PROTECT,
        related_name="sessions",
        db_index=False,
    )
    pile = models.ForeignKey(
        "stations.Pile",
        verbose_name=_("pile"),
        on_delete=models.PROTECT,
        related_name="sessions",
        db_index=False,
    )
    connector = models.ForeignKey(
        "stations.Connector",
        verbose_name=_("connector"),
        on_delete=models.PROTECT,
        related_name="sessions",
    )
    # Whatever the pile's protocol calls the transaction: a number the platform assigned
    # (`billing.services.sessions.start`: the session id when the adapter brings none), a
    # 2.0.1 string id, a YKC serial as 32 hex digits, a partner's 27-character order.
    protocol_ref = models.CharField(_("protocol transaction reference"), max_length=64)
    channel = models.CharField(
        _("channel"), max_length=16, choices=Channel.choices, default=Channel.UNKNOWN
    )
    id_tag = models.CharField(_("id tag"), max_length=20)
    member = models.ForeignKey(
        "orgs.Member",
        verbose_name=_("member"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sessions",
    )
    vehicle = models.ForeignKey(
        "orgs.Vehicle",
        verbose_name=_("vehicle"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sessions",
        db_index=False,
    )
    card = models.ForeignKey(
        "orgs.Card",
        verbose_name=_("card"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sessions",
        db_index=False,
    )
    department = models.ForeignKey(
        "orgs.Department",
        verbose_name=_("department"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sessions",
        db_index=False,
    )
    sub_operator = models.ForeignKey(
        "orgs.SubOperator",
        verbose_name=_("attributed sub-operator"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sessions",
        db_index=False,
    )
    partner = models.ForeignKey(
        "orgs.Partner",
        verbose_name=_("partner"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sessions",
        db_index=False,
    )
    vin = models.CharField(_("VIN reported"), max_length=17, blank=True)
    # The decision when the platform refused its start (an `AuthDecision`: invalid, blocked,
    # expired, concurrent); kept after the session leaves ``refused`` (the pile charged anyway),
    # so replays get the same answer and settlement bills it without debiting a wallet.
    refused_as = models.CharField(_("start refused as"), max_length=16, blank=True)
    state = models.CharField(
        _("state"), max_length=16, choices=SessionState.choices, default=SessionState.STARTED
    )
    # As the pile reported them (pile clock); the platform's own view comes from samples.
    started_at = models.DateTimeField(_("start (pile)"), db_index=True)
    stopped_at = models.DateTimeField(_("stop (pile)"), null=True, blank=True)
    meter_start_wh = models.DecimalField(_("meter at start (Wh)"), max_digits=14, decimal_places=3)
    meter_stop_wh = models.DecimalField(
        _("meter at stop (Wh)"), max_digits=14, decimal_places=3, null=True, blank=True
    )
    stop_reason = models.CharField(_("stop reason"), max_length=32, blank=True)
    stop_received_at = models.DateTimeField(_("stop received at"), null=True, blank=True)
    # What some piles report of their own pricing: stored beside ours, never trusted over it.
    pile_reported = models.JSONField(_("pile-reported values"), default=dict, blank=True)
    last_sample_at = models.DateTimeField(_("last meter sample"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("charging session")
        verbose_name_plural = _("charging sessions")
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["connector"],
                condition=Q(state__in=ACTIVE_STATES),
                name="session_one_active_per_connector",
            ),
            models.UniqueConstraint(
                fields=["member"],
                condition=Q(state__in=ACTIVE_STATES) & Q(member__isnull=False),
                name="session_one_active_per_member",
            ),
            # Empty only inside the transaction that opens the session and assigns it.
            models.UniqueConstraint(
                fields=["pile", "protocol_ref"],
                condition=~Q(protocol_ref=""),
                name="session_protocol_ref_unique",
            ),
            # A start the pile replays is the same session, not a second one.
            models.UniqueConstraint(
                fields=["pile", "connector", "id_tag", "started_at"],
                name="session_start_idempotent",
            ),
            models.CheckConstraint(
                condition=Q(order_no__regex=r"^[0-9]{20}$"), name="session_order_no_20_digits"
            ),
        ]
        indexes = [
            # Not (state, last_sample_at): every MeterValues moves last_sample_at, and an
            # indexed column changed makes PostgreSQL write a new entry in each of the
            # table's twenty-odd indexes; unindexed (and with the table's fillfactor
            # leaving room on the page) the update is HOT, in place. The silence sweep
            # reads last_sample_at through COALESCE, which this index never served.
            models.Index(fields=["state"], name="session_state"),
            # Every start writes an entry in each index and every move of the state in
            # each again, so the table keeps only the indexes a query needs: station,
            # sub-operator and pile are found through these two and the unique
            # constraints above, which lead with them; vehicle, card, department and
            # partner, empty for most sessions, are indexed only where set.
            models.Index(fields=["station", "-started_at"]),
            models.Index(fields=["sub_operator", "-started_at"]),
            *(
                models.Index(
                    fields=[link],
                    condition=Q(**{f"{link}__isnull": False}),
                    name=f"session_{link}_set",
                )
                for link in ("vehicle", "card", "department", "partner")
            ),
        ]

    def __str__(self) -> str:
        return self.order_no

    @property
    def energy_wh(self):
        if self.meter_stop_wh is None:
            return None
        return self.meter_stop_wh - self.meter_start_wh


class MeterSample(models.Model):
    """One sampled moment of a session (energy register and, when sent, power etc.)."""

    session = models.ForeignKey(
        ChargingSession,
        verbose_name=_("charging session"),
        on_delete=models.CASCADE,
        related_name="samples",
        db_index=False,  # meter_sample_once_per_time (session, at) serves it
    )
    at = models.DateTimeField(_("time"))
    energy_wh = models.DecimalField(
        _("energy register (Wh)"), max_digits=14, decimal_places=3, null=True, blank=True
    )
    power_w = models.DecimalField(
        _("power (W)"), max_digits=10, decimal_places=1, null=True, blank=True
    )
    current_a = models.DecimalField(
        _("current (A)"), max_digits=8, decimal_places=2, null=True, blank=True
    )
    voltage_v = models.DecimalField(
        _("voltage (V)"), max_digits=8, decimal_places=2, null=True, blank=True
    )
    soc = models.PositiveSmallIntegerField(_("state of charge (%)"), null=True, blank=True)
    context = models.CharField(_("context"), max_length=32, blank=True)

    class Meta:
        verbose_name = _("meter sample")
        verbose_name_plural = _("meter samples")
        ordering = ["session", "at"]
        constraints = [
            models.UniqueConstraint(fields=["session", "at"], name="meter_sample_once_per_time"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id} {self.at:%Y-%m-%d %H:%M:%S} {self.energy_wh} Wh"


# Partitioned by week (migration 0012; in the database the primary key is (id, at)):
# beat creates weeks ahead, `meter_samples_prune` drops the weeks past retention.
METER_SAMPLE_PARTITIONS = TimePartitions(MeterSample._meta.db_table, "at", days=7)


class SessionTransition(models.Model):
    """A recorded move in the session state table."""

    session = models.ForeignKey(
        ChargingSession,
        verbose_name=_("charging session"),
        on_delete=models.CASCADE,
        related_name="transitions",
    )
    from_state = models.CharField(
        _("from"), max_length=16, choices=SessionState.choices, blank=True
    )
    to_state = models.CharField(_("to"), max_length=16, choices=SessionState.choices)
    at = models.DateTimeField(_("time"), auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    reason = models.CharField(_("reason"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("session state change")
        verbose_name_plural = _("session state changes")
        ordering = ["session", "at", "id"]
        # Staff moves only: the gateway's, most of them, have no actor to index.
        indexes = [
            models.Index(
                fields=["actor"], condition=Q(actor__isnull=False), name="transition_actor_set"
            )
        ]

    def __str__(self) -> str:
        return f"{self.session_id}: {self.from_state or '-'} → {self.to_state}"


class OrphanStop(models.Model):
    """A stop whose transaction reference matched no session of that pile.

    Never dropped: the fault-bill desk matches it to a lost session or explains it.
    """

    pile = models.ForeignKey(
        "stations.Pile",
        verbose_name=_("pile"),
        on_delete=models.PROTECT,
        related_name="orphan_stops",
    )
    protocol_ref = models.CharField(_("transaction reference sent"), max_length=64)
    id_tag = models.CharField(_("id tag"), max_length=20, blank=True)
    meter_stop_wh = models.DecimalField(_("meter at stop (Wh)"), max_digits=14, decimal_places=3)
    stopped_at = models.DateTimeField(_("stop (pile)"))
    reason = models.CharField(_("stop reason"), max_length=32, blank=True)
    transaction_data = models.JSONField(_("transaction data"), default=list, blank=True)
    received_at = models.DateTimeField(_("received at"), db_index=True)
    session = models.ForeignKey(
        ChargingSession,
        verbose_name=_("matched session"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="orphan_stops",
        help_text=_("Set when the fault-bill desk matches the record to a session."),
    )

    class Meta:
        verbose_name = _("orphan stop record")
        verbose_name_plural = _("orphan stop records")
        ordering = ["-received_at"]
        constraints = [
            # A pile resending the same orphan stop is one record.
            models.UniqueConstraint(
                fields=["pile", "protocol_ref", "stopped_at"], name="orphan_stop_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pile_id} tx {self.protocol_ref} {self.stopped_at:%Y-%m-%d %H:%M:%S}"
