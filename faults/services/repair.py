"""The repair of a fault bill: customer service's corrections, priced and applied by
billing, recorded on the fault case (who, when, before, after, why)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import Bill, ChargingSession, PaymentState, SessionState
from billing.services.repair import BillCorrections, RepairConflict, fault_bill_quote
from billing.services.settlement import bill_repair_apply, bill_settle

from ..models import UNRESOLVED_STATES, FaultAction, FaultCase, FaultState
from .cases import fault_case_record, require_reason


@transaction.atomic
def fault_bill_repair(*, session, corrections: BillCorrections, acting_user) -> Bill:
    """Repair a fault bill from customer service's corrections: price them (the same engine
    and tariff versions), then settle through `bill_repair_apply` — the bill's figures and
    lines replaced, the session fault → repaired → settled, the wallet charged exactly once
    — and record the repair on the fault case (who, when, before, after, why). A lost bill
    whose settlement has not run yet is settled as a fault bill first.

    The session row is locked first: of two agents applying at once, the second waits, then
    finds the case repaired and gets a `RepairConflict` naming who repaired it and when."""
    reason = require_reason(corrections.reason)
    session = (
        ChargingSession.objects.select_for_update(of=("self",))
        .select_related("station", "pile", "operator")
        .get(pk=session.pk)
    )
    case = (
        FaultCase.objects.select_for_update(of=("self",))
        .select_related("resolved_by")
        .get(session=session)
    )
    if case.state not in UNRESOLVED_STATES:
        who = case.resolved_by.get_username() if case.resolved_by else "-"
        raise RepairConflict(
            _("This fault bill was already %(state)s by %(user)s at %(time)s; nothing changed.")
            % {
                "state": FaultState(case.state).label,
                "user": who,
                "time": timezone.localtime(case.resolved_at).strftime("%Y-%m-%d %H:%M:%S"),
            }
        )
    bill = Bill.objects.filter(session=session).first()
    if bill is None and session.state == SessionState.STOPPED:
        # A lost bill whose queued settlement has not run yet: the fault bill first.
        bill = bill_settle(session_id=session.pk)
    if bill is None or bill.payment_state != PaymentState.FAULT:
        raise RepairConflict(
            _(
                "Bill %(order_no)s is not waiting for a repair (%(state)s): its codes do not "
                "block payment. Dismiss the fault bill, or refund through the wallet."
            )
            % {
                "order_no": session.order_no,
                "state": bill.get_payment_state_display() if bill else session.get_state_display(),
            }
        )
    quote = fault_bill_quote(session=session, corrections=corrections)
    # The audit names what the agent changed, nothing they left as it was.
    changed = corrections.changed_from(session)
    before = {
        **{name: getattr(session, name) for name in changed},
        "bill_total": bill.total,
        "payment_state": bill.payment_state,
    }
    after = {
        name: value
        for name, value in quote.as_json().items()
        if name in changed or name not in BillCorrections.FIELDS
    }
    # Billing's one repair path: same engine and tariffs, lines replaced, fault → repaired
    # → settled, the wallet charged once, audited.
    bill = bill_repair_apply(
        bill_id=bill.pk, samples=quote.samples, actor=acting_user, reason=reason
    )
    fault_case_record(
        case=case,
        kind=FaultAction.Kind.REPAIR,
        acting_user=acting_user,
        to_state=FaultState.REPAIRED,
        before=before,
        after={**after, "payment_state": bill.payment_state},
        reason=reason,
    )
    return bill
