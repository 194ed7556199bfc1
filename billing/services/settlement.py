"""Settlement: stopped sessions become bills, priced, checked and paid (or not).

`bills_settle` is the one use case, for one session (`bill_settle`, the per-session task
queued on commit after StopTransaction) or a batch (`sessions_settle_pending`, every few
seconds). It runs in one transaction under row locks on the sessions, so retries and
concurrent calls settle a session once: whoever comes second finds the bill and returns
it. The wallet is debited at most once (also guarded by a unique constraint on the bill's
charge entry). Its statements are set-based: their number does not grow with the batch.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from decimal import Decimal

from django.db import OperationalError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chargenet.audit import audit_record
from chargenet.bulk import bulk_insert
from chargenet.errors import Conflict, DomainError, NotFound
from chargenet.events import event_publish, events_publish

from ..events import BILL_REPAIRED, BILL_SETTLED
from ..models import (
    Bill,
    BillLine,
    ChargingSession,
    PaymentState,
    SessionState,
)
from ..pricing import Pricing, PricingError, price_session
from ..selectors import (
    session_points,
    tariff_rows_for_stations,
    tariff_specs_for,
    tariff_specs_from_rows,
)
from .sessions.states import session_transition, sessions_transition
from .settlement_check import Checked, PricingAttempt, Verdict, settlement_check
from .wallet import wallet_charges_record, wallet_debit_bill, wallets_take

logger = logging.getLogger(__name__)

SETTLEABLE = {SessionState.STOPPED}


class SessionNotStopped(Conflict):
    code = "session_not_stopped"


def _price(session: ChargingSession, samples, tariff_rows, evidence, check) -> PricingAttempt:
    start, end = samples[0][0], samples[-1][0]
    # Implausible times are a fault decided before pricing: never walk the year 2999.
    refused = check.refuse_pricing(
        session=session, evidence=evidence, start=min(start, end), end=max(start, end)
    )
    if refused is not None:
        return refused
    try:
        specs = tariff_specs_from_rows(
            tariff_rows,
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


def _lines(bill: Bill, pricing: Pricing) -> list[BillLine]:
    return [
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
    ]


def bill_settle(*, session_id: int) -> Bill:
    """Settle a stopped session: price it, run the fault rules, then charge the member's
    wallet (paid, or owed when the balance is short) or keep the bill as a fault bill
    (not charged). Idempotent: a session settled already returns its bill. The batch of
    one: the per-session task and the pending sweep share `bills_settle`."""
    return bills_settle(session_ids=[session_id])[0]


@transaction.atomic
def bills_settle(*, session_ids: Sequence[int]) -> list[Bill]:
    """Settle many stopped sessions in one transaction, with a number of statements that
    does not depend on how many: 12 for a batch of plain bills, at most 17 when some are
    fault bills or were settled meanwhile (see `_settle_locked`). Returns their bills in
    the order asked. Sessions settled already return their bill; a session that does not
    exist or is not stopped (and has no bill) raises, and nothing of the batch changes.

    Sessions are locked in primary-key order (concurrent batches cannot deadlock), and the
    wallets after them, also in key order. A second concurrent call waits for the first
    and then finds its bills: each session is billed, and each wallet charged, once."""
    ids = list(dict.fromkeys(session_ids))
    if not ids:
        return []
    # A retry of settled sessions needs no lock (a lock writes, and waits for the disk).
    bills = {bill.session_id: bill for bill in Bill.objects.filter(session_id__in=ids)}
    todo = sorted(set(ids) - bills.keys())
    if todo:
        bills.update(_settle_locked(todo))
    return [bills[session_id] for session_id in session_ids]


def _settle_locked(session_ids: list[int]) -> dict[int, Bill]:
    sessions = list(
        ChargingSession.objects.select_for_update(of=("self",))
        .select_related("station", "pile", "operator")
        .filter(pk__in=session_ids)
        .order_by("pk")
    )
    found = {session.pk for session in sessions}
    for session_id in session_ids:
        if session_id not in found:
            raise NotFound(_("Charging session %(id)s does not exist.") % {"id": session_id})
    bills: dict[int, Bill] = {}
    others = [session for session in sessions if session.state not in SETTLEABLE]
    if others:
        # Settled already (a retry, or a concurrent call that won the lock): same bills.
        bills = {b.session_id: b for b in Bill.objects.filter(session__in=others)}
        for session in others:
            if session.pk not in bills:
                raise SessionNotStopped(
                    _("Session %(order)s is %(state)s; only a stopped session is settled.")
                    % {"order": session.order_no, "state": session.get_state_display()}
                )
    sessions = [session for session in sessions if session.state in SETTLEABLE]
    if not sessions:
        return bills

    # Reads: the check's evidence (with every meter sample) in one query, tariffs in one.
    check = settlement_check()
    evidence = check.evidence(sessions=sessions)
    points = {s.pk: session_points(s, evidence[s.pk].samples) for s in sessions}
    tariffs = tariff_rows_for_stations(
        station_ids=[s.station_id for s in sessions],
        until=max(max(p[0][0], p[-1][0]) for p in points.values()),
    )
    checks = [
        Checked(
            s,
            _price(s, points[s.pk], tariffs.get(s.station_id, []), evidence[s.pk], check),
            evidence[s.pk],
        )
        for s in sessions
    ]
    verdicts = check.verdicts(checks=checks)  # in memory: the fault desk acts on the event

    # Who pays: the wallets are taken in session order, as one settlement after another.
    now = timezone.now()
    states: dict[int, str] = {}
    charges: list[tuple[ChargingSession, Decimal]] = []
    for check in checks:
        session, pricing = check.session, check.pricing.result
        total = pricing.total if pricing else Decimal(0)
        blocked = bool(verdicts[session.pk].blocking)
        if session.refused_as and total != 0 and not blocked:
            # The pile charged for a start the platform refused: billed, never debited.
            states[session.pk] = PaymentState.UNPAID
        elif not blocked and total != 0 and session.member_id:
            charges.append((session, total))
        elif not blocked and total != 0:
            states[session.pk] = PaymentState.UNPAID  # e.g. a partner's, paid by the partner
        elif not blocked:
            states[session.pk] = PaymentState.PAID
        else:
            states[session.pk] = PaymentState.FAULT
    taken = wallets_take(charges=[(s.member_id, total) for s, total in charges])
    for (session, _total), take in zip(charges, taken, strict=True):
        states[session.pk] = PaymentState.PAID if take else PaymentState.OWED

    new_bills = {c.session.pk: _bill(c, verdicts[c.session.pk], states, now) for c in checks}
    bulk_insert(
        list(new_bills.values()), unique_field="order_no"
    )  # bulk_create, minus quoting 2,500 values
    BillLine.objects.bulk_create(
        line
        for check in checks
        if check.pricing.result
        for line in _lines(new_bills[check.session.pk], check.pricing.result)
    )
    wallet_charges_record(
        charges=[
            (new_bills[session.pk], take)
            for (session, _total), take in zip(charges, taken, strict=True)
            if take
        ]
    )
    # Through the one state table: one statement per destination (fault, settled).
    faulty = {s.pk: verdicts[s.pk].blocking for s in sessions if verdicts[s.pk].blocking}
    for to_state, ids in (
        (SessionState.FAULT, [s.pk for s in sessions if s.pk in faulty]),
        (SessionState.SETTLED, [s.pk for s in sessions if s.pk not in faulty]),
    ):
        sessions_transition(
            session_ids=ids,
            from_states=SETTLEABLE,
            to_state=to_state,
            # The reason names the codes as numbers: stored text stays language-neutral.
            reason={pk: "fault codes " + ",".join(map(str, faulty[pk])) for pk in ids}
            if to_state == SessionState.FAULT
            else "",
            now=now,
        )
    for session in sessions:
        session.state = SessionState.FAULT if session.pk in faulty else SessionState.SETTLED
        session.updated_at = now
    events_publish(
        kind=BILL_SETTLED,
        events=[
            (bill.pk, bill_settled_payload(bill, verdicts[session_id]))
            for session_id, bill in new_bills.items()
        ],
    )
    return bills | new_bills


def bill_settled_payload(bill: Bill, verdict: Verdict) -> dict:
    """The ``bill.settled`` event: the bill's figures as strings (exact), its fault codes
    and the fault desk's own record of the verdict."""
    return {
        "bill_id": bill.pk,
        "session_id": bill.session_id,
        "order_no": bill.order_no,
        "operator_id": bill.operator_id,
        "station_id": bill.station_id,
        "member_id": bill.member_id,
        "channel": bill.channel,
        "payment_state": bill.payment_state,
        "energy_wh": str(bill.energy_wh),
        "electricity_fee": str(bill.electricity_fee),
        "service_fee": str(bill.service_fee),
        "total": str(bill.total),
        "codes": list(verdict.codes),
        "blocking": list(verdict.blocking),
        "record": verdict.record,
    }


# The bill's duration column is a PostgreSQL integer (68 years): a pile clock in the year
# 2999 (a fault bill, not priced) shows the longest it holds, rather than failing the batch.
_DURATION_S_MAX = 2**31 - 1


def _duration_s(duration: dt.timedelta) -> int:
    return min(max(0, int(duration.total_seconds())), _DURATION_S_MAX)


def _bill(check: Checked, verdict: Verdict, states: dict, now: dt.datetime) -> Bill:
    session, attempt = check.session, check.pricing
    pricing = attempt.result
    ended_at = session.stopped_at or session.last_sample_at or session.started_at
    payment_state = states[session.pk]
    return Bill(
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
        duration_s=_duration_s(ended_at - session.started_at),
        energy_wh=pricing.energy_wh if pricing else 0,
        electricity_fee=pricing.electricity_fee if pricing else 0,
        service_fee=pricing.service_fee if pricing else 0,
        total=pricing.total if pricing else 0,
        rounding_mode=session.operator.rounding_mode,
        tariff_version_id=pricing.version_ids[0] if pricing and pricing.lines else None,
        payment_state=payment_state,
        fault_codes=list(verdict.codes),
        fault_detail=str(attempt.error) if attempt.error else "",
        pile_reported=session.pile_reported,
        settled_at=now,
        paid_at=now if payment_state == PaymentState.PAID else None,
    )


PENDING_BATCH = 200


def _pending_locked(*, limit: int, among: Sequence[int] | None = None) -> list[int]:
    """Up to ``limit`` stopped sessions, oldest first, locked for this transaction; those
    another worker holds are skipped, not waited for."""
    pending = ChargingSession.objects.select_for_update(skip_locked=True, of=("self",)).filter(
        state=SessionState.STOPPED
    )
    if among is not None:
        pending = pending.filter(pk__in=among)
    return list(pending.order_by("pk").values_list("pk", flat=True)[:limit])


def sessions_settle_pending(*, limit: int = PENDING_BATCH) -> list[Bill]:
    """Settle up to ``limit`` stopped sessions nobody settled yet (their on-commit task was
    lost, or the stops came faster than the per-session tasks), oldest first, in one
    batch. Sessions another worker holds are skipped, not waited for.

    A session the batch cannot settle (e.g. its operator's rounding mode is unknown) must
    not hold back the others: the batch's transaction is then rolled back, which releases
    every lock, and it is settled again in halves, each its own transaction, down to the
    bad session alone. It stays stopped (logged with its error) and the rest settle;
    no lock on the others is held while it fails again. (Times no session can have are not
    such a failure: settlement makes them a fault bill before pricing.)"""
    ids: list[int] = []
    try:
        with transaction.atomic():
            ids = _pending_locked(limit=limit)
            return bills_settle(session_ids=ids)
    except OperationalError:
        raise  # the database itself: the task retries the whole job
    except Exception:  # one session's failure, whatever it is, is isolated
        logger.warning("A pending batch of %d sessions failed; settling it in halves", len(ids))
    return _settle_isolating(ids)


def _settle_isolating(ids: list[int]) -> list[Bill]:
    try:
        with transaction.atomic():
            return bills_settle(session_ids=_pending_locked(limit=len(ids), among=ids))
    except OperationalError:
        raise
    except Exception:  # see sessions_settle_pending
        if len(ids) == 1:
            logger.exception("Session %s cannot be settled; it stays stopped", ids[0])
            return []
    half = len(ids) // 2
    return _settle_isolating(ids[:half]) + _settle_isolating(ids[half:])


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
    # As instants: sorting (or subtracting) times of one zone goes by the wall clock, and
    # across the autumn change 02:10 (second pass) would come before 02:30 (first pass).
    samples = sorted((t.astimezone(dt.UTC), e) for t, e in samples)
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
    previous_started_at = bill.started_at
    bill.lines.all().delete()
    BillLine.objects.bulk_create(_lines(bill, pricing))
    bill.started_at, bill.ended_at = samples[0][0], samples[-1][0]
    bill.duration_s = int((bill.ended_at - bill.started_at).total_seconds())
    bill.energy_wh = pricing.energy_wh
    bill.electricity_fee = pricing.electricity_fee
    bill.service_fee = pricing.service_fee
    bill.total = pricing.total
    bill.tariff_version_id = pricing.version_ids[0] if pricing.lines else None
    bill.payment_state = PaymentState.UNPAID
    bill.save()
    session_transition(session=session, to_state=SessionState.REPAIRED, actor=actor, reason=reason)
    if bill.total == 0:
        bill.payment_state = PaymentState.PAID
        bill.paid_at = timezone.now()
        bill.save(update_fields=["payment_state", "paid_at"])
    elif bill.member_id is not None:
        wallet_debit_bill(bill=bill)
    session_transition(session=session, to_state=SessionState.SETTLED, actor=actor, reason=reason)
    audit_record(
        actor=actor,
        action="fault_bill_repair",
        obj=bill,
        before=before,
        after=_bill_snapshot(bill),
        reason=reason,
    )
    event_publish(
        kind=BILL_REPAIRED,
        key=bill.pk,
        payload={
            **bill_settled_payload(bill, Verdict()),
            "codes": list(bill.fault_codes),
            # A correction may move the start to another day: reports recount both days.
            "previous_started_at": previous_started_at.isoformat(),
        },
    )
    return bill
