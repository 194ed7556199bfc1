"""Partner orders that did not end agreed become fault bills (code 14) on the repair desk:
an order information the partner never acknowledged within the retry window (its push
given up, or still unacknowledged a day after the bill), one it answered with a dispute,
and orders its daily reconciliation disputes (energy or amount differ)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from billing.models import Bill
from faults.codes import FaultCode
from faults.models import FaultCase, FaultSource
from faults.rules import Values
from faults.services.cases import CaseOpening, fault_cases_open, session_scope, values_json

from ..models import PartnerOrder, Push, PushState, Reconciliation
from .pushes import GIVE_UP_AFTER

ORDER_INFO = "notification_charge_order_info"


def _bill_values(bill: Bill, energy_wh: Decimal | None = None) -> dict:
    return values_json(
        Values(
            start=bill.started_at,
            end=bill.ended_at,
            duration=bill.ended_at - bill.started_at,
            charging_time=None,
            energy_wh=bill.energy_wh if energy_wh is None else energy_wh,
            occupancy=None,
        )
    )


_NOTHING = values_json(Values(None, None, None, None, None, None))


def _opening(order: PartnerOrder, bill: Bill, key: str, params: dict, theirs=None) -> CaseOpening:
    return CaseOpening(
        session_id=order.session_id,
        scope=session_scope(order.session),
        record={
            "findings": [
                {
                    "code": int(FaultCode.PARTNER_ORDER_UNCONFIRMED),
                    "reasons": [{"key": key, "params": params}],
                }
            ],
            "pile_values": _bill_values(bill),
            "platform_values": theirs or _NOTHING,
            "proposal": {},
            "firmware": order.session.pile.firmware_version,
        },
    )


@transaction.atomic
def orders_check(*, now: dt.datetime | None = None) -> int:
    """Open the fault bills of partner orders left unacknowledged or disputed (idempotent:
    an order already on the desk with code 14 is skipped). Returns how many were opened."""
    now = now or timezone.now()
    order_info = Push.objects.filter(order=OuterRef("pk"), operation=ORDER_INFO)
    on_desk = FaultCase.objects.filter(
        session_id=OuterRef("session_id"),
        codes__contains=[int(FaultCode.PARTNER_ORDER_UNCONFIRMED)],
    )
    orders = (
        PartnerOrder.objects.select_related("interconnection__partner", "session__pile")
        .filter(session__isnull=False)
        .filter(Exists(Bill.objects.filter(session_id=OuterRef("session_id"))))
        .exclude(Exists(on_desk))
        .filter(
            Q(Exists(order_info.filter(state=PushState.GIVEN_UP)))
            | Q(confirmed_at__isnull=True, session__bill__settled_at__lt=now - GIVE_UP_AFTER)
            | (Q(confirmed_at__isnull=False) & ~Q(confirm_result=0))
        )
    )
    openings = []
    for order in orders:
        bill = order.session.bill
        partner = order.interconnection.partner.name
        if order.confirmed_at is not None:
            openings.append(
                _opening(
                    order,
                    bill,
                    "partner_order_disputed",
                    {
                        "partner": partner,
                        "order": order.start_charge_seq,
                        "result": order.confirm_result,
                    },
                )
            )
            continue
        push = Push.objects.filter(order=order, operation=ORDER_INFO).first()
        openings.append(
            _opening(
                order,
                bill,
                "partner_order_unacknowledged",
                {
                    "partner": partner,
                    "order": order.start_charge_seq,
                    "attempts": push.attempts if push else 0,
                    "until": timezone.localtime(now).strftime("%Y-%m-%d %H:%M"),
                    "error": (push.last_error if push else "") or "-",
                },
            )
        )
    openings += _reconciliation_openings()
    fault_cases_open(openings=openings, source=FaultSource.PARTNER, now=now)
    return len(openings)


def _reconciliation_openings() -> list[CaseOpening]:
    openings = []
    answered = Reconciliation.objects.filter(checked_at__isnull=False).exclude(disputes=[])
    for rec in answered.select_related("interconnection__partner"):
        by_seq = {d.get("StartChargeSeq"): d for d in rec.disputes if isinstance(d, dict)}
        orders = PartnerOrder.objects.select_related("session__pile", "session__bill").filter(
            interconnection=rec.interconnection, start_charge_seq__in=list(by_seq)
        )
        for order in orders:
            if (
                order.session is None
                or FaultCase.objects.filter(
                    session_id=order.session_id,
                    codes__contains=[int(FaultCode.PARTNER_ORDER_UNCONFIRMED)],
                ).exists()
            ):
                continue
            dispute = by_seq[order.start_charge_seq]
            try:
                theirs_wh = Decimal(str(dispute.get("TotalPower"))) * 1000
            except (InvalidOperation, TypeError):
                theirs_wh = None
            bill = order.session.bill
            openings.append(
                _opening(
                    order,
                    bill,
                    "partner_reconciliation_dispute",
                    {
                        "partner": rec.interconnection.partner.name,
                        "order": order.start_charge_seq,
                        "day": rec.day.isoformat(),
                        "power": dispute.get("TotalPower"),
                        "money": dispute.get("TotalMoney"),
                        "reason": dispute.get("DisputeReason"),
                    },
                    theirs=_bill_values(bill, theirs_wh) if theirs_wh is not None else None,
                )
            )
    return openings
