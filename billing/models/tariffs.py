"""Time-of-use tariffs (分时电价): plans, their versions, and which plan a station uses.

A version is immutable once a bill used it (`billing.services.tariffs`); a price change is
a new version with an effective-from time. Writes go through `billing.services.tariffs`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Period(models.IntegerChoices):
    """The four periods of a day (尖/峰/平/谷)."""

    SHARP = 0, _("sharp")
    PEAK = 1, _("peak")
    FLAT = 2, _("flat")
    VALLEY = 3, _("valley")


class TariffPlan(models.Model):
    """A named price plan of an operator, e.g. "Zhongshan standard"."""

    operator = models.ForeignKey(
        "orgs.Operator",
        verbose_name=_("operator"),
        on_delete=models.PROTECT,
        related_name="tariff_plans",
    )
    name = models.CharField(_("name"), max_length=100)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("tariff plan")
        verbose_name_plural = _("tariff plans")
        ordering = ["operator", "name"]
        constraints = [
            models.UniqueConstraint(fields=["operator", "name"], name="tariff_plan_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class TariffVersion(models.Model):
    """The prices and day schedule of a plan from ``effective_from`` until the next version.

    ``schedule`` is 48 digits, the period (0 sharp … 3 valley) of each local half hour
    from 00:00, so it covers the day exactly by construction.
    """

    plan = models.ForeignKey(
        TariffPlan, verbose_name=_("plan"), on_delete=models.PROTECT, related_name="versions"
    )
    effective_from = models.DateTimeField(_("effective from"))
    schedule = models.CharField(_("day schedule"), max_length=48)
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        verbose_name = _("tariff version")
        verbose_name_plural = _("tariff versions")
        ordering = ["plan", "effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "effective_from"], name="tariff_version_from_unique"
            ),
            models.CheckConstraint(
                condition=Q(schedule__regex=r"^[0-3]{48}$"), name="tariff_schedule_48_slots"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan} @ {timezone.localtime(self.effective_from):%Y-%m-%d %H:%M}"


class TariffPrice(models.Model):
    """Electricity and service price (yuan/kWh) of one period for AC or DC."""

    version = models.ForeignKey(
        TariffVersion, verbose_name=_("version"), on_delete=models.CASCADE, related_name="prices"
    )
    current_type = models.CharField(
        _("AC/DC"), max_length=2, choices=[("AC", _("AC")), ("DC", _("DC"))]
    )
    period = models.PositiveSmallIntegerField(_("period"), choices=Period.choices)
    electricity = models.DecimalField(
        _("electricity price (yuan/kWh)"), max_digits=9, decimal_places=5
    )
    service = models.DecimalField(_("service price (yuan/kWh)"), max_digits=9, decimal_places=5)

    class Meta:
        verbose_name = _("tariff price")
        verbose_name_plural = _("tariff prices")
        ordering = ["version", "current_type", "period"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "current_type", "period"], name="tariff_price_unique"
            ),
            models.CheckConstraint(
                condition=Q(electricity__gte=0) & Q(service__gte=0),
                name="tariff_price_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.current_type} p{self.period} {self.electricity}+{self.service}"


class StationTariff(models.Model):
    """A station uses ``plan`` from ``effective_from`` on (history: one row per change)."""

    station = models.ForeignKey(
        "stations.Station",
        verbose_name=_("station"),
        on_delete=models.CASCADE,
        related_name="tariff_assignments",
    )
    plan = models.ForeignKey(
        TariffPlan,
        verbose_name=_("plan"),
        on_delete=models.PROTECT,
        related_name="assignments",
    )
    effective_from = models.DateTimeField(_("effective from"))
    assigned_at = models.DateTimeField(_("assigned at"), auto_now_add=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assigned by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        verbose_name = _("station tariff")
        verbose_name_plural = _("station tariffs")
        ordering = ["station", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["station", "effective_from"], name="station_tariff_from_unique"
            ),
        ]

    def __str__(self) -> str:
        since = timezone.localtime(self.effective_from, self.station.zone)
        return f"{self.station} → {self.plan} @ {since:%Y-%m-%d %H:%M}"
