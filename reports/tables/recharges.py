"""Recharges per day × payment channel, over billing's recharge orders (`Recharge`: a
WeChat Pay order, credited to the wallet once paid) and their WeChat refunds.

A row is the orders opened on one day (the back office's zone) through one channel and
what became of them: count and amount ordered, credited (paid, so credited exactly once),
pending (still awaiting payment; closed and failed orders are in neither) and refunded
(the successful WeChat refunds of those orders, whenever they came). "Channel" here is the
payment channel; the station has no meaning for a recharge and is disabled on the page.
A member's sub-operator and department are those of the department the member is filed in.
"""

from __future__ import annotations

from django.db.models import Count, DecimalField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import PayChannel, RechargeRefund, RechargeRefundState, RechargeState
from billing.selectors import recharges_visible_to

from ..exports.tabular import Column
from .base import Report, yuan

_MONEY = DecimalField(max_digits=16, decimal_places=2)


class Recharges(Report):
    slug = "recharges"
    title = _("Recharges")
    honoured = ("sub_operator", "department", "channel")
    channel_choices = PayChannel.choices
    columns = [
        Column("day", _("day"), "date"),
        Column("channel", _("channel"), "text"),
        Column("count", _("recharges"), "int"),
        Column("amount", _("amount (yuan)"), "yuan"),
        Column("credited", _("credited (yuan)"), "yuan"),
        Column("pending", _("pending (yuan)"), "yuan"),
        Column("refunded", _("refunded (yuan)"), "yuan"),
    ]

    def _orders(self):
        f = self.filters
        start, end = f.window()
        orders = recharges_visible_to(self.staff).filter(created_at__gte=start, created_at__lt=end)
        if f.sub_operator is not None:
            orders = orders.filter(member__department__sub_operator=f.sub_operator)
        if f.department is not None:
            orders = orders.filter(member__department=f.department)
        if f.channel:
            orders = orders.filter(channel=f.channel)
        refunded = (
            RechargeRefund.objects.filter(
                recharge=OuterRef("pk"), state=RechargeRefundState.SUCCESS
            )
            .order_by()
            .values("recharge")
            .annotate(s=Sum("amount"))
            .values("s")
        )
        return orders.annotate(
            refunded=Coalesce(Subquery(refunded, output_field=_MONEY), Value(0, _MONEY))
        )

    FIGURES = {
        "n": Count("pk"),
        "a": Sum("amount"),
        "c": Sum("amount", filter=Q(state=RechargeState.PAID)),
        "p": Sum("amount", filter=Q(state=RechargeState.PENDING)),
        "r": Sum("refunded"),
    }

    def rows(self):
        channels = dict(PayChannel.choices)
        grouped = (
            self._orders()
            .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
            .values("day", "channel")
            .annotate(**self.FIGURES)
            .order_by("day", "channel")
        )
        for row in grouped:
            yield (row["day"], str(channels.get(row["channel"], row["channel"])), row["n"],
                   yuan(row["a"]), yuan(row["c"]), yuan(row["p"]), yuan(row["r"]))  # fmt: skip

    def totals(self):
        s = self._orders().aggregate(**self.FIGURES)
        return (str(_("total")), "", s["n"], yuan(s["a"]), yuan(s["c"]), yuan(s["p"]),
                yuan(s["r"]))  # fmt: skip
