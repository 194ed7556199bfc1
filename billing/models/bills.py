"""Bills (账单): a settled session priced by the engine, with its lines and payment state.

Written only by `billing.services.settlement`. The facts reports filter on (station,
sub-operator, department, channel, member) are copied from the session at settlement.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .sessions import Channel
from .tariffs import Period


class PaymentState(models.TextChoices):
    UNPAID = "unpaid", _("unpaid")
    PAID = "paid", _("paid")
    OWED = "owed", _("owed (arrears)")
    FAULT = "fault", _("fault bill, not charged")


class Bill(models.Model):
    session = models.OneToOneField(
        "billing.ChargingSession",
        verbose_name=_("charging session"),
        on_delete=models.PROTECT,
        related_name="bill",
    )
    order_no = models.CharField(_("order number"), max_length=20, unique=True)
    operator = models.ForeignKey(
        "orgs.Operator", verbose_name=_("operator"), on_delete=models.PROTECT, related_name="+"
    )
    station = models.ForeignKey(
        "stations.Station",
        verbose_name=_("station"),
        on_delete=models.PROTECT,
        related_name="bills",
    )
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    member = models.ForeignKey(
        "orgs.Member",
        verbose_name=_("member"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bills",
    )
    department = models.ForeignKey(
        "orgs.Department",
        verbose_name=_("department"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bills",
    )
    sub_operator = models.ForeignKey(
        "orgs.SubOperator",
        verbose_name=_("attributed sub-operator"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bills",
    )
    current_type = models.CharField(_("AC/DC"), max_length=2)
    started_at = models.DateTimeField(_("start"))
    ended_at = models.DateTimeField(_("end"))
    duration_s = models.PositiveIntegerField(_("duration (s)"))
    energy_wh = models.DecimalField(_("energy (Wh)"), max_digits=14, decimal_places=3)
    electricity_fee = models.DecimalField(
        _("electricity fee (yuan)"), max_digits=12, decimal_places=2
    )
    service_fee = models.DecimalField(_("service fee (yuan)"), max_digits=12, decimal_places=2)
    total = models.DecimalField(_("total (yuan)"), max_digits=12, decimal_places=2)
    rounding_mode = models.CharField(_("rounding"), max_length=16)
    tariff_version = models.ForeignKey(
        "billing.TariffVersion",
        verbose_name=_("tariff version"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bills",
        help_text=_("The version in force at the start; the lines name each version used."),
    )
    payment_state = models.CharField(
        _("payment state"), max_length=16, choices=PaymentState.choices, db_index=True
    )
    fault_codes = ArrayField(
        models.PositiveSmallIntegerField(), verbose_name=_("fault codes"), default=list, blank=True
    )
    fault_detail = models.TextField(_("fault detail"), blank=True)
    pile_reported = models.JSONField(_("pile-reported values"), default=dict, blank=True)
    settled_at = models.DateTimeField(_("settled at"))
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)

    class Meta:
        verbose_name = _("bill")
        verbose_name_plural = _("bills")
        ordering = ["-started_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(total=models.F("electricity_fee") + models.F("service_fee")),
                name="bill_total_is_sum_of_fees",
            ),
            models.CheckConstraint(condition=Q(total__gte=0), name="bill_total_not_negative"),
            models.CheckConstraint(
                condition=~Q(payment_state="fault") | ~Q(fault_codes=[]),
                name="bill_fault_has_codes",
            ),
        ]
        indexes = [
            models.Index(fields=["station", "-started_at"]),
            models.Index(fields=["sub_operator", "-started_at"]),
            models.Index(fields=["department", "-started_at"]),
            models.Index(fields=["operator", "payment_state", "-started_at"]),
        ]

    def __str__(self) -> str:
        return self.order_no


class BillLine(models.Model):
    """Energy and fees of one period under one tariff version; lines add up to the bill."""

    bill = models.ForeignKey(
        Bill, verbose_name=_("bill"), on_delete=models.CASCADE, related_name="lines"
    )
    tariff_version = models.ForeignKey(
        "billing.TariffVersion",
        verbose_name=_("tariff version"),
        on_delete=models.PROTECT,
        related_name="bill_lines",
    )
    period = models.PositiveSmallIntegerField(_("period"), choices=Period.choices)
    energy_wh = models.DecimalField(_("energy (Wh)"), max_digits=14, decimal_places=3)
    electricity_price = models.DecimalField(
        _("electricity price (yuan/kWh)"), max_digits=9, decimal_places=5
    )
    service_price = models.DecimalField(
        _("service price (yuan/kWh)"), max_digits=9, decimal_places=5
    )
    electricity_fee = models.DecimalField(
        _("electricity fee (yuan)"), max_digits=12, decimal_places=2
    )
    service_fee = models.DecimalField(_("service fee (yuan)"), max_digits=12, decimal_places=2)

    class Meta:
        verbose_name = _("bill line")
        verbose_name_plural = _("bill lines")
        ordering = ["bill", "tariff_version__effective_from", "period"]
        constraints = [
            models.UniqueConstraint(
                fields=["bill", "tariff_version", "period"], name="bill_line_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bill_id} {self.get_period_display()} {self.energy_wh} Wh"

    @property
    def amount(self):
        return self.electricity_fee + self.service_fee
