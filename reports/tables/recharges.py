"""Recharges per day × channel, over the wallet ledger's credit entries.

Billing has no recharge orders yet (only the ledger), so: a recharge is a credited
``recharge`` entry; "pending" (orders paid but not yet credited) cannot exist and is 0;
refunds are ``refund`` entries; the channel is how the credit was made — by staff in the
back office (the entry names its actor) or by a payment (no actor).
"""

from __future__ import annotations

from django.db.models import Case, CharField, Count, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from billing.models import EntryKind, LedgerEntry
from billing.selectors import wallets_visible_to

from ..exports.tabular import Column
from .base import Report, yuan

CHANNELS = {
    "payment": _("online payment"),
    "staff": pgettext_lazy("recharge channel", "back office"),
}


class Recharges(Report):
    slug = "recharges"
    title = _("Recharges")
    columns = [
        Column("day", _("day"), "date"),
        Column("channel", _("channel"), "text"),
        Column("count", _("recharges"), "int"),
        Column("amount", _("amount (yuan)"), "yuan"),
        Column("credited", _("credited (yuan)"), "yuan"),
        Column("pending", _("pending (yuan)"), "yuan"),
        Column("refunded", _("refunded (yuan)"), "yuan"),
    ]

    def _entries(self):
        f = self.filters
        start, end = f.window()
        entries = LedgerEntry.objects.filter(
            wallet__in=wallets_visible_to(self.staff).values("pk"),
            kind__in=[EntryKind.RECHARGE, EntryKind.REFUND],
            created_at__gte=start,
            created_at__lt=end,
        )
        if f.department is not None:
            entries = entries.filter(wallet__member__department=f.department)
        return entries

    FIGURES = {
        "n": Count("pk", filter=Q(kind=EntryKind.RECHARGE)),
        "a": Sum("amount", filter=Q(kind=EntryKind.RECHARGE)),
        "r": Sum("amount", filter=Q(kind=EntryKind.REFUND)),
    }

    def rows(self):
        grouped = (
            self._entries()
            .annotate(
                day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()),
                via=Case(
                    When(actor__isnull=True, then=Value("payment")),
                    default=Value("staff"),
                    output_field=CharField(),
                ),
            )
            .values("day", "via")
            .annotate(**self.FIGURES)
            .order_by("day", "via")
        )
        for row in grouped:
            amount = yuan(row["a"])
            yield (row["day"], CHANNELS[row["via"]], row["n"], amount, amount, yuan(0),
                   yuan(row["r"]))  # fmt: skip

    def totals(self):
        s = self._entries().aggregate(**self.FIGURES)
        amount = yuan(s["a"])
        return (str(_("total")), "", s["n"], amount, amount, yuan(0), yuan(s["r"]))
