"""Settlement: a stopped session becomes a bill, priced, checked and paid (or not).

`bill_settle` is the one use case. It runs in one transaction under a row lock on the
session, so retries and concurrent calls settle a session once: whoever comes second
finds the bill and returns it. The wallet is debited at most once (also guarded by a
unique constraint on the bill's charge entry).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chargenet.audit import audit_record
from chargenet.errors import Conflict, DomainError, NotFound
from faults.codes import NON_BLOCKING
from faults.detection import PricingAttempt, detect_on_settlement

from ..models import (
    Bill,
    BillLine,
    ChargingSession,
    PaymentState,
    SessionState,
    SessionTransition,
)
from ..pricing import Pricing, PricingError, price_session
from ..selectors import session_samples, tariff_specs_for
from .wallet import wallet_debit_bill, wallet_record_charge, wallet_take

SETTLEABLE = {SessionState.STOPPED}
SETTLED_STATES = {SessionState.SETTLED, SessionState.FAULT, SessionState.REPAIRED}


class SessionNotStopped(Conflict):
    code = "session_not_stopped"


def session_price(*, session: ChargingSession) -> PricingAttempt:
    """Price ``session`` with the tariffs in force at its station (a read)."""
    samples = session_samples(session)
    start, end = samples[0][0], samples[-1][0]
    try:
        specs = tariff_specs_for(
            station=session.station,
            current_type=session.pile.current_type,
            start=min(start, end),
            end=max(start, end),
        )
        result = price_session(
            samples=samples,
            tariffs=specs,
            zone=session.station.time_zone,
            rounding=session.operator.rounding_mode,
        )
    except PricingError as error:
        return PricingAttempt(error=error)
    return PricingAttempt(result=result)


def _move(session: ChargingSession, to_state: str, reason: str = "") -> None:
    SessionTransition.objects.create(
        session=session, from_state=session.state, to_state=to_state, reason=reason[:200]
    )
    session.state = to_state
    session.save(update_fields=["state", "updated_at"])


def _write_lines(bill: Bill, pricing: Pricing) -> None:
    BillLine.objects.bulk_create(
        BillLine(
            bill=bill,
            tariff_version_id=line.version_id,
            period=line.period,
            energy_wh=line.energy_wh,
            electricity_price=line.electricity_price,
            service_price=line.service_price,
            electricity_fee=line.electricity_fee,
            service_fee=line.service_fee,
        )
        for line in pricing.lines
    )


@transaction.atomic
def bill_settle(*, session_id: int) -> Bill:
    """Settle a stopped session: price it, run the fault rules, then charge the member's
    wallet (paid, or owed when the balance is short) or keep the bill as a fault bill
    (not charged). Idempotent: a session settled already returns its bill."""
    # A retry of a settled session needs no lock (a lock writes, and waits for the disk).
    settled = Bill.objects.filter(session_id=session_id).first()
    if settled is not None:
        return settled
    session = (
        ChargingSession.objects.select_for_update(of=("self",))
        .select_related("station", "pile", "operator")
        .filter(pk=session_id)
        .first()
    )
    if session is None:
        raise NotFound(_("Charging session %(id)s does not exist.") % {"id": session_id})
    if session.state not in SETTLEABLE:
        # Settled already (a retry, or a concurrent call that won the lock): same bill.
        existing = Bill.objects.filter(session=session).first()
        if existing is not None:
            return existing
        raise SessionNotStopped(
            _("Session %(order)s is %(state)s; only a stopped session is settled.")
            % {"order": session.order_no, "state": session.get_state_display()}
        )

    attempt = session_price(session=session)
    codes = detect_on_settlement(session=session, pricing=attempt)
    blocking = [c for c in codes if c not in NON_BLOCKING]
    pricing = attempt.result
    ended_at = session.stopped_at or session.last_sample_at or session.started_at
    now = timezone.now()
    total = pricing.total if pricing else 0
    taken = None
    if blocking:
        payment_state = PaymentState.FAULT
    elif total == 0:
        payment_state = PaymentState.PAID
    elif session.member_id is None:
        payment_state = PaymentState.UNPAID  # e.g. a partner's session, paid by the partner
    else:
        taken = wallet_take(member_id=session.member_id, amount=total)
        payment_state = PaymentState.PAID if taken else PaymentState.OWED
    bill = Bill.objects.create(
        session=session,
        order_no=session.order_no,
        operator_id=session.operator_id,
        station_id=session.station_id,
        channel=session.channel,
        member_id=session.member_id,
        department_id=session.department_id,
        sub_operator_id=session.sub_operator_id,
        current_type=session.pile.current_type,
        started_at=session.started_at,
        ended_at=ended_at,
        duration_s=max(0, int((ended_at - session.started_at).total_seconds())),
        energy_wh=pricing.energy_wh if pricing else 0,
        electricity_fee=pricing.electricity_fee if pricing else 0,
        service_fee=pricing.service_fee if pricing else 0,
        total=total,
        rounding_mode=session.operator.rounding_mode,
        tariff_version_id=pricing.version_ids[0] if pricing and pricing.lines else None,
        payment_state=payment_state,
        fault_codes=[int(c) for c in codes],
        fault_detail=str(attempt.error) if attempt.error else "",
        pile_reported=session.pile_reported,
        settled_at=now,
        paid_at=now if payment_state == PaymentState.PAID else None,
    )
    if pricing and pricing.lines:
        _write_lines(bill, pricing)
    if taken:
        wallet_record_charge(wallet_id=taken[0], bill=bill, balance_after=taken[1])
    if blocking:
        # The reason names the codes as numbers: stored text stays language-neutral.
        _move(session, SessionState.FAULT, reason="fault codes " + ",".join(map(str, blocking)))
    else:
        _move(session, SessionState.SETTLED)
    return bill


class BillNotFault(Conflict):
    code = "bill_not_fault"


def _bill_snapshot(bill: Bill) -> dict:
    return {
        "energy_wh": bill.energy_wh,
        "total": bill.total,
        "electricity_fee": bill.electricity_fee,
        "service_fee": bill.service_fee,
        "payment_state": bill.payment_state,
        "fault_codes": list(bill.fault_codes),
        "lines": [
            [line.tariff_version_id, line.period, str(line.energy_wh), str(line.amount)]
            for line in bill.lines.all()
        ],
    }


@transaction.atomic
def bill_repair_apply(
    *,
    bill_id: int,
    samples: list[tuple[dt.datetime, Decimal]],
    actor,
    reason: str,
) -> Bill:
    """Apply customer service's repair of a fault bill: price the corrected meter
    readings (``samples``: (time, register Wh), e.g. start and stop as corrected) with the
    same engine and the tariffs in force, replace the bill's figures and lines, move the
    session fault → repaired → settled and charge the wallet exactly once. Audited with
    before/after and the reason. Two agents applying at once: the second is told."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(_("A repair needs a reason."), code="repair_reason_required")
    bill = Bill.objects.filter(pk=bill_id).values_list("session_id", flat=True).first()
    if bill is None:
        raise NotFound(_("Bill %(id)s does not exist.") % {"id": bill_id})
    session = (
        ChargingSession.objects.select_for_update(of=("self",))
        .select_related("station", "pile", "operator")
        .get(pk=bill)
    )
    bill = Bill.objects.select_for_update().get(pk=bill_id)
    if bill.payment_state != PaymentState.FAULT or session.state != SessionState.FAULT:
        raise BillNotFault(
            _(
                "Bill %(order)s is not a fault bill any more (%(state)s): someone applied a "
                "repair already. Reload the page."
            )
            % {"order": bill.order_no, "state": bill.get_payment_state_display()}
        )
    samples = sorted(samples)
    specs = tariff_specs_for(
        station=session.station,
        current_type=session.pile.current_type,
        start=samples[0][0],
        end=samples[-1][0],
    )
    pricing = price_session(
        samples=samples,
        tariffs=specs,
        zone=session.station.time_zone,
        rounding=session.operator.rounding_mode,
    )  # a PricingError here propagates: bad corrections change nothing
    before = _bill_snapshot(bill)
    bill.lines.all().delete()
    _write_lines(bill, pricing)
    bill.started_at, bill.ended_at = samples[0][0], samples[-1][0]
    bill.duration_s = int((bill.ended_at - bill.started_at).total_seconds())
    bill.energy_wh = pricing.energy_wh
    bill.electricity_fee = pricing.electricity_fee
    bill.service_fee = pricing.service_fee
    bill.total = pricing.total
    bill.tariff_version_id = pricing.version_ids[0] if pricing.lines else None
    bill.payment_state = PaymentState.UNPAID
    bill.save()
    _move(session, SessionState.REPAIRED, reason=reason)
    if bill.total == 0:
        bill.payment_state = PaymentState.PAID
        bill.paid_at = timezone.now()
        bill.save(update_fields=["payment_state", "paid_at"])
    elif bill.member_id is not None:
        wallet_debit_bill(bill=bill)
    _move(session, SessionState.SETTLED, reason=reason)
    audit_record(
        actor=actor,
        action="fault_bill_repair",
        obj=bill,
        before=before,
        after=_bill_snapshot(bill),
        reason=reason,
    )
    return bill
