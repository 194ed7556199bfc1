"""Rollups of bills (reports' one source of figures) and the service-fee share rates.

Every rollup row is a sum over the bills of one station and one local day (the day the
charge started, in the station's zone). `reports.services.rollups` is their only writer:
it recomputes whole station-days from the bills (on each bill event, see
`reports.consumers`, and for a date range, `manage.py reports_rebuild`), so a late bill,
a repair or a payment moves exactly the day it belongs to and a repeated event changes
nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from billing.models import Channel


class _StationDay(models.Model):
    day = models.DateField(_("day"))
    operator = models.ForeignKey(
        "orgs.Operator", verbose_name=_("operator"), on_delete=models.CASCADE, related_name="+"
    )
    station = models.ForeignKey(
        "stations.Station", verbose_name=_("station"), on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.station_id} {self.day}"


class _Scoped(_StationDay):
    """Rows staff see as they see the bills: by station, or by attributed sub-operator."""

    sub_operator = models.ForeignKey(
        "orgs.SubOperator",
        verbose_name=_("attributed sub-operator"),
        null=True,
        on_delete=models.CASCADE,
        related_name="+",
    )

    class Meta:
        abstract = True


class _Departmental(_Scoped):
    department = models.ForeignKey(
        "orgs.Department",
        verbose_name=_("department"),
        null=True,
        on_delete=models.CASCADE,
        related_name="+",
    )

    class Meta:
        abstract = True


class _Attributed(_Departmental):
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    # The pile's firmware when the charge started (its firmware history), else its current one.
    firmware = models.CharField(_("firmware"), max_length=64)

    class Meta:
        abstract = True


def _wh(name):
    return models.DecimalField(name, max_digits=18, decimal_places=3, default=0)


def _yuan(name):
    return models.DecimalField(name, max_digits=16, decimal_places=2, default=0)


class _BillFigures(models.Model):
    """The sums of a group of bills."""

    sessions = models.PositiveIntegerField(_("sessions"), default=0)
    energy_wh = _wh(_("energy (Wh)"))
    energy_sharp_wh = _wh(_("sharp energy (Wh)"))
    energy_peak_wh = _wh(_("peak energy (Wh)"))
    energy_flat_wh = _wh(_("flat energy (Wh)"))
    energy_valley_wh = _wh(_("valley energy (Wh)"))
    electricity_fee = _yuan(_("electricity fee (yuan)"))
    service_fee = _yuan(_("service fee (yuan)"))
    total = _yuan(_("total (yuan)"))
    paid = _yuan(_("paid (yuan)"))
    owed = _yuan(_("owed (yuan)"))
    unpaid = _yuan(_("unpaid (yuan)"))
    fault_waiting = _yuan(_("fault bills waiting (yuan)"))
    fault_bills = models.PositiveIntegerField(_("fault bills"), default=0)
    repaired = models.PositiveIntegerField(_("repaired"), default=0)
    recovered = _yuan(_("amount recovered (yuan)"))
    charging_s = models.BigIntegerField(_("charging time (s)"), default=0)

    class Meta:
        abstract = True


class BillDay(_Attributed, _BillFigures):
    """Bills of one station-day × sub-operator × department × channel × firmware."""

    class Meta:
        verbose_name = _("daily bill rollup")
        verbose_name_plural = _("daily bill rollups")
        indexes = [
            models.Index(fields=["operator", "day"], name="billday_operator_day"),
            models.Index(fields=["station", "day"], name="billday_station_day"),
            models.Index(fields=["sub_operator", "day"], name="billday_subop_day"),
        ]


class StationBillDay(_Departmental, _BillFigures):
    """The same sums without channel and firmware (a few rows per station-day): what the
    dashboard and the daily report read unless a channel is asked for."""

    class Meta:
        verbose_name = _("daily station rollup")
        verbose_name_plural = _("daily station rollups")
        indexes = [
            models.Index(fields=["operator", "day"], name="stationday_operator_day"),
            models.Index(fields=["station", "day"], name="stationday_station_day"),
            models.Index(fields=["sub_operator", "day"], name="stationday_subop_day"),
        ]


class StationDayTotal(_StationDay, _BillFigures):
    """The same sums per station-day only (one row): what operator-wide staff's dashboard and
    the daily report's totals and chart read (a month is a few thousand rows, not the ~100
    thousand of a busy network's station rollup). Sub-operator staff never read it: they
    also see bills attributed to them at other stations, which it does not tell apart."""

    class Meta:
        verbose_name = _("daily station total")
        verbose_name_plural = _("daily station totals")
        indexes = [
            models.Index(fields=["operator", "day"], name="stationtotal_operator_day"),
            models.Index(fields=["station", "day"], name="stationtotal_station_day"),
        ]


class FaultDay(_Attributed):
    """Fault bills of one station-day × … × fault code (a bill with two codes counts in both)."""

    code = models.PositiveSmallIntegerField(_("fault code"))
    fault_bills = models.PositiveIntegerField(_("fault bills"), default=0)
    waiting = models.PositiveIntegerField(_("waiting"), default=0)
    repaired = models.PositiveIntegerField(_("repaired"), default=0)
    recovered = _yuan(_("amount recovered (yuan)"))

    class Meta:
        verbose_name = _("daily fault rollup")
        verbose_name_plural = _("daily fault rollups")
        indexes = [
            models.Index(fields=["operator", "day"], name="faultday_operator_day"),
            models.Index(fields=["station", "day"], name="faultday_station_day"),
        ]


class PileDay(_StationDay):
    """Charging time of one pile on one day (sessions counted on the day they started)."""

    pile = models.ForeignKey(
        "stations.Pile", verbose_name=_("pile"), on_delete=models.CASCADE, related_name="+"
    )
    sessions = models.PositiveIntegerField(_("sessions"), default=0)
    charging_s = models.BigIntegerField(_("charging time (s)"), default=0)

    class Meta:
        verbose_name = _("daily pile rollup")
        verbose_name_plural = _("daily pile rollups")
        indexes = [models.Index(fields=["station", "day"], name="pileday_station_day")]


class HourLoad(_Scoped):
    """Energy delivered in one clock hour by the bills of one station-day (a bill's energy is
    spread evenly over its charging time): the load curve."""

    hour = models.DateTimeField(_("hour"))
    energy_wh = _wh(_("energy (Wh)"))

    class Meta:
        verbose_name = _("hourly load")
        verbose_name_plural = _("hourly load")
        indexes = [
            models.Index(fields=["operator", "hour"], name="hourload_operator_hour"),
            models.Index(fields=["station", "day"], name="hourload_station_day"),
        ]


class ServiceFeeShare(models.Model):
    """The share of the service fee due to a sub-operator (结算单), versioned like tariffs:
    a rate applies to bills from its day on, until the next version's day."""

    operator = models.ForeignKey(
        "orgs.Operator", verbose_name=_("operator"), on_delete=models.PROTECT, related_name="+"
    )
    sub_operator = models.ForeignKey(
        "orgs.SubOperator",
        verbose_name=_("sub-operator"),
        on_delete=models.PROTECT,
        related_name="service_fee_shares",
    )
    rate = models.DecimalField(
        _("share of the service fee"),
        max_digits=5,
        decimal_places=4,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text=_("0.3000 = 30% of the service fee is due to the sub-operator."),
    )
    effective_from = models.DateField(_("effective from"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("service-fee share rate")
        verbose_name_plural = _("service-fee share rates")
        ordering = ["sub_operator", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["sub_operator", "effective_from"], name="fee_share_one_per_day"
            ),
            models.CheckConstraint(
                condition=models.Q(rate__gte=0) & models.Q(rate__lte=1),
                name="fee_share_rate_0_to_1",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sub_operator} {self.rate * 100:.2f}% {self.effective_from}"
