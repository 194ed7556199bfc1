"""Reports read straight from the bills: 充电明细 (one row per bill) and 一卡一车 (per card)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import Channel, PaymentState
from billing.selectors import bills_visible_to

from ..exports.tabular import Column
from .base import Report, kwh, yuan


def _bills(report: Report):
    """The staff member's bills that started within the filters' days (the back office's
    zone) and match its other filters."""
    f = report.filters
    start, end = f.window()
    bills = bills_visible_to(report.staff).filter(started_at__gte=start, started_at__lt=end)
    for name in ("station", "sub_operator", "department"):
        if (value := getattr(f, name)) is not None:
            bills = bills.filter(**{name: value})
    if f.channel:
        bills = bills.filter(channel=f.channel)
    return bills


class ChargingDetail(Report):
    slug = "detail"
    title = _("Charging detail")
    columns = [
        Column("order_no", _("order number"), "text"),
        Column("station", _("station"), "text"),
        Column("channel", _("channel"), "text"),
        Column("member", _("member"), "text"),
        Column("sub_operator", _("sub-operator"), "text"),
        Column("department", _("department"), "text"),
        Column("current_type", _("AC/DC"), "text"),
        Column("started_at", _("start"), "datetime"),
        Column("ended_at", _("end"), "datetime"),
        Column("duration_s", _("duration (s)"), "int"),
        Column("energy", _("energy (kWh)"), "kwh"),
        Column("electricity_fee", _("electricity fee (yuan)"), "yuan"),
        Column("service_fee", _("service fee (yuan)"), "yuan"),
        Column("total", _("total (yuan)"), "yuan"),
        Column("payment_state", _("payment state"), "text"),
        Column("fault_codes", _("fault codes"), "text"),
        Column("settled_at", _("settled at"), "datetime"),
        Column("paid_at", _("paid at"), "datetime"),
    ]
    FIELDS = (
        "order_no", "station__name", "channel", "member__nickname", "sub_operator__name",
        "department__name", "current_type", "started_at", "ended_at", "duration_s",
        "energy_wh", "electricity_fee", "service_fee", "total", "payment_state", "fault_codes",
        "settled_at", "paid_at", "station__time_zone",
    )  # fmt: skip

    def _query(self):
        return _bills(self).order_by("started_at", "pk").values_list(*self.FIELDS)

    def _row(self, row, channels, states) -> tuple:
        (order, station, channel, member, sub, dept, ct, start, end, duration, energy,
         fee_e, fee_s, total, state, codes, settled, paid, zone_name) = row  # fmt: skip
        zone = ZoneInfo(zone_name)  # ZoneInfo keeps its instances
        start, end, settled, paid = (
            None if at is None else timezone.localtime(at, zone)
            for at in (start, end, settled, paid)
        )
        return (
            order, station, str(channels.get(channel, channel)), member or "", sub or "",
            dept or "", ct, start, end, duration, kwh(energy), fee_e, fee_s, total,
            str(states.get(state, state)), ",".join(map(str, codes)), settled, paid,
        )  # fmt: skip

    def rows(self):
        """Times on the station's clock, as the bills list and the exports show them."""
        channels, states = dict(Channel.choices), dict(PaymentState.choices)
        for row in self._query().iterator(chunk_size=2000):
            yield self._row(row, channels, states)

    def page_rows(self, n: int) -> list[tuple]:
        # LIMIT in the query: the page's cursor (WITH HOLD, in autocommit) would otherwise
        # have PostgreSQL materialise every bill of the range first (~9 s for a month of a
        # 10M-bills-a-year network).
        channels, states = dict(Channel.choices), dict(PaymentState.choices)
        return [self._row(row, channels, states) for row in self._query()[:n]]

    def totals(self):
        s = _bills(self).aggregate(
            n=Count("pk"),
            d=Sum("duration_s"),
            e=Sum("energy_wh"),
            fe=Sum("electricity_fee"),
            fs=Sum("service_fee"),
            t=Sum("total"),
        )
        return (
            str(_("total")), "", "", "", "", "", "", "", "", s["d"] or 0, kwh(s["e"]),
            yuan(s["fe"]), yuan(s["fs"]), yuan(s["t"]), "", "", "", "",
        )  # fmt: skip


class OneCardOneCar(Report):
    """Per card (一卡一车: the card's member account is named after the plate)."""

    slug = "cards"
    title = _("One card one car")
    columns = [
        Column("card", _("card number"), "text"),
        Column("plate", _("plate"), "text"),
        Column("nickname", _("account"), "text"),
        Column("department", _("department"), "text"),
        Column("sessions", _("sessions"), "int"),
        Column("energy", _("energy (kWh)"), "kwh"),
        Column("total", _("amount (yuan)"), "yuan"),
    ]

    def _bills(self):
        return _bills(self).filter(session__card__isnull=False)

    def rows(self):
        cards = (
            self._bills()
            .values(
                "session__card__number",
                "session__card__vehicle__plate",
                "session__card__member__nickname",
                "session__card__department__name",
            )
            .annotate(n=Count("pk"), e=Sum("energy_wh"), t=Sum("total"))
            .order_by("session__card__number")
        )
        for c in cards:
            yield (
                c["session__card__number"],
                c["session__card__vehicle__plate"] or "",
                c["session__card__member__nickname"] or "",
                c["session__card__department__name"] or "",
                c["n"],
                kwh(c["e"]),
                yuan(c["t"]),
            )

    def totals(self):
        s = self._bills().aggregate(n=Count("pk"), e=Sum("energy_wh"), t=Sum("total"))
        return (str(_("total")), "", "", "", s["n"], kwh(s["e"]), yuan(s["t"]))
