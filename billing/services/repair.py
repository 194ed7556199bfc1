"""Billing services the fault-bill desk calls: a session whose end never came becomes a
fault bill, and corrections to a fault bill are priced (`fault_bill_quote`) and applied
(`settlement.bill_repair_apply`).

They live in billing because they change sessions and money; `faults/` decides *that*
something is wrong and runs the repair workflow (`faults.services.repair`), billing
decides what it costs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.utils.translation import gettext_lazy as _

from chargenet.errors import Conflict, DomainError
from chargenet.events import events_publish

from ..events import SESSION_STOPPED
from ..models import (
    SessionState,
)
from ..models.sessions import ACTIVE_STATES
from ..pricing import Pricing, PricingError, price_session
from ..selectors import corrected_points, tariff_specs_for
from .sessions.states import sessions_transition


def sessions_mark_lost(
    *, session_ids: Sequence[int], reason: str, now: dt.datetime
) -> dict[int, str]:
    """Close still-active sessions whose stop never came: they move to
    ``stopped`` (stop reason "Lost", no stop values — like a session superseded by a new
    transaction) and are settled, where the fault rules make them fault bills (code 1/2).
    Returns {session id: previous state} for those actually moved.

    One statement whatever the number of sessions; the caller queues their settlement
    on commit (`faults.tasks.lost_bills_settle_task`). A session stopped meanwhile (its
    stop raced the sweep) is left alone: the state condition is re-checked in the UPDATE.
    Call inside the caller's transaction."""
    moved = sessions_transition(
        session_ids=session_ids,
        from_states=ACTIVE_STATES,
        to_state=SessionState.STOPPED,
        reason=reason,
        now=now,
        values={"stop_reason": "Lost"},
    )
    events_publish(
        kind=SESSION_STOPPED,
        events=[(session_id, {"session_id": session_id, "lost": True}) for session_id in moved],
    )
    return moved


@dataclass(frozen=True)
class BillCorrections:
    """What customer service changes on a fault bill; None keeps the pile's value."""

    reason: str
    started_at: dt.datetime | None = None
    stopped_at: dt.datetime | None = None
    meter_stop_wh: Decimal | None = None

    FIELDS = ("started_at", "stopped_at", "meter_stop_wh")

    def changed_from(self, session) -> dict:
        """{field: corrected value} of the corrections that change the session's value."""
        return {
            name: value
            for name in self.FIELDS
            if (value := getattr(self, name)) is not None and value != getattr(session, name)
        }


@dataclass(frozen=True)
class RepairQuote:
    """The bill as it would be charged after the corrections (nothing written)."""

    started_at: dt.datetime
    stopped_at: dt.datetime
    meter_start_wh: Decimal
    meter_stop_wh: Decimal
    pricing: Pricing
    samples: tuple[tuple[dt.datetime, Decimal], ...] = ()

    @property
    def energy_wh(self) -> Decimal:
        return self.meter_stop_wh - self.meter_start_wh

    def as_json(self) -> dict:
        return {
            "started_at": self.started_at.isoformat(),
            "stopped_at": self.stopped_at.isoformat(),
            "meter_stop_wh": str(self.meter_stop_wh),
            "energy_wh": str(self.pricing.energy_wh),
            "electricity_fee": str(self.pricing.electricity_fee),
            "service_fee": str(self.pricing.service_fee),
            "total": str(self.pricing.total),
        }


class RepairConflict(Conflict):
    code = "fault_bill_taken"


def fault_bill_quote(*, session, corrections: BillCorrections) -> RepairQuote:
    """Price ``session`` with ``corrections`` applied: the same engine, the tariff versions
    in force at the station then (a read; raises a `DomainError` naming the field)."""
    start = corrections.started_at or session.started_at
    stop = corrections.stopped_at or session.stopped_at
    register = (
        corrections.meter_stop_wh
        if corrections.meter_stop_wh is not None
        else session.meter_stop_wh
    )
    if stop is None:
        raise DomainError(
            _("Stop time: the pile never sent one; enter the stop time (see the proposal)."),
            code="repair_stop_required",
            details={"field": "stopped_at"},
        )
    if register is None:
        raise DomainError(
            _("Stop register: the pile never sent one; enter the meter reading at the stop."),
            code="repair_register_required",
            details={"field": "meter_stop_wh"},
        )
    if stop <= start:
        raise DomainError(
            _("Stop time: it must be after the start (%(start)s).") % {"start": start.isoformat()},
            code="repair_stop_before_start",
            details={"field": "stopped_at"},
        )
    if register < session.meter_start_wh:
        raise DomainError(
            _("Stop register: it cannot be below the start register (%(start)s Wh).")
            % {"start": session.meter_start_wh},
            code="repair_register_below_start",
            details={"field": "meter_stop_wh"},
        )
    samples = corrected_points(session, start=start, stop=stop, register=Decimal(register))
    specs = tariff_specs_for(
        station=session.station, current_type=session.pile.current_type, start=start, end=stop
    )
    try:
        pricing = price_session(
            samples=samples,
            tariffs=specs,
            zone=session.station.time_zone,
            rounding=session.operator.rounding_mode,
        )
    except PricingError as error:
        raise DomainError(error.message, code=error.code) from error
    return RepairQuote(
        started_at=start,
        stopped_at=stop,
        meter_start_wh=session.meter_start_wh,
        meter_stop_wh=Decimal(register),
        pricing=pricing,
        samples=tuple(samples),
    )
