"""Open fault bills and move them through their state table (dismiss, escalate, reopen).

Repairing — correcting values, repricing and settling — changes money, so it is a billing
service (`faults.services.repair.fault_bill_repair`); it records its action here through
`fault_case_record`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chargenet.audit import audit_record
from chargenet.errors import Conflict, DomainError

from ..codes import blocks_payment
from ..models import FAULT_TRANSITIONS, FaultAction, FaultCase, FaultSource, FaultState
from ..rules import Finding, Proposal, SessionFacts, Values, pile_values, platform_values


def _json(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return int(value.total_seconds())
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    return value


def values_json(values: Values) -> dict:
    """A `Values` as JSON: times ISO, durations in seconds, energy in Wh as a string."""
    return {
        "start": _json(values.start),
        "end": _json(values.end),
        "duration_s": _json(values.duration),
        "charging_time_s": _json(values.charging_time),
        "energy_wh": _json(values.energy_wh),
        "occupancy_s": _json(values.occupancy),
    }


def findings_json(findings: list[Finding]) -> list[dict]:
    return [
        {"code": int(f.code), "reasons": [{"key": r.key, "params": r.params} for r in f.reasons]}
        for f in findings
    ]


def proposal_json(proposal: Proposal | None) -> dict:
    if proposal is None:
        return {}
    return {
        "stopped_at": _json(proposal.stopped_at),
        "meter_stop_wh": _json(proposal.meter_stop_wh),
        "energy_wh": _json(proposal.energy_wh),
        "basis": {"key": proposal.basis.key, "params": proposal.basis.params},
    }


def session_scope(session) -> dict:
    """The session's columns a fault case copies for scoping and filtering."""
    return {
        "operator_id": session.operator_id,
        "station_id": session.station_id,
        "sub_operator_id": session.sub_operator_id,
        "channel": session.channel,
    }


def case_record(
    *, facts: SessionFacts, findings: list[Finding], proposal: Proposal | None, firmware: str
) -> dict:
    """What a fault case records of its detection, as JSON: it travels in settlement's
    ``bill.settled`` event to `fault_cases_open`."""
    return {
        "findings": findings_json(findings),
        "pile_values": values_json(pile_values(facts)),
        "platform_values": values_json(platform_values(facts)),
        "proposal": proposal_json(proposal),
        "firmware": firmware,
    }


def fault_case_build(
    *, session_id: int, scope: dict, record: dict, source: str, now: dt.datetime
) -> FaultCase:
    """An unsaved case (the sweep saves thousands at once). ``scope`` is `session_scope`
    of the session (the sweep passes its selected row), ``record`` a `case_record`."""
    codes = sorted(f["code"] for f in record["findings"])
    return FaultCase(
        session_id=session_id,
        operator_id=scope["operator_id"],
        station_id=scope["station_id"],
        sub_operator_id=scope["sub_operator_id"],
        channel=scope["channel"],
        codes=codes,
        blocks_payment=blocks_payment(codes),
        state=FaultState.OPEN,
        source=source,
        findings=record["findings"],
        pile_values=record["pile_values"],
        platform_values=record["platform_values"],
        proposal=record["proposal"],
        firmware=record["firmware"],
        detected_at=now,
    )


@dataclass(frozen=True)
class CaseOpening:
    """What `fault_cases_open` records for one session: its scope columns
    (`session_scope`) and its `case_record`."""

    session_id: int
    scope: dict
    record: dict


def fault_cases_open(
    *,
    openings: Sequence[CaseOpening],
    source: str = FaultSource.SETTLEMENT,
    now: dt.datetime | None = None,
) -> list[FaultCase]:
    """The one writer of fault cases: record the fault bills of many sessions in the
    caller's transaction, with a number of statements that does not grow with them (lock
    the existing cases; COPY the new ones and INSERT … SELECT their detection actions;
    update the ones given new codes and add their actions; read them back). Idempotent: a
    settlement retried after a crash, a repeated event, or a session the sweep already
    recorded finds the case and only adds the codes it did not carry yet."""
    if not openings:
        return []
    if any(not o.record["findings"] for o in openings):
        raise DomainError(_("A fault bill needs at least one fault code."), code="fault_no_code")
    session_ids = [o.session_id for o in openings]
    existing = {
        case.session_id: case
        for case in FaultCase.objects.select_for_update().filter(session_id__in=session_ids)
    }
    now = now or timezone.now()
    new_cases, changed, actions = {}, [], []
    for o in openings:
        case = existing.get(o.session_id) or new_cases.get(o.session_id)
        if case is None:
            new_cases[o.session_id] = fault_case_build(
                session_id=o.session_id, scope=o.scope, record=o.record, source=source, now=now
            )
        elif (action := _add_findings(case, o.record["findings"], now)) is not None:
            changed.append(case)
            actions.append(action)
    _cases_insert(list(new_cases.values()), now=now)
    if changed:
        FaultCase.objects.bulk_update(changed, ["codes", "blocks_payment", "findings"])
        FaultAction.objects.bulk_create(actions)
    cases = {c.session_id: c for c in FaultCase.objects.filter(session_id__in=session_ids)}
    return [cases[session_id] for session_id in dict.fromkeys(session_ids)]


_CASE_COLUMNS = (
    "session_id",
    "operator_id",
    "station_id",
    "sub_operator_id",
    "channel",
    "codes",
    "blocks_payment",
    "state",
    "source",
    "findings",
    "pile_values",
    "platform_values",
    "proposal",
    "firmware",
    "detected_at",
)
_JSON_COLUMNS = {"findings", "pile_values", "platform_values", "proposal"}


def _cases_insert(cases: list[FaultCase], *, now: dt.datetime) -> None:
    """New cases by COPY (the sweep may open thousands), then their detection actions by
    one INSERT … SELECT."""
    if not cases:
        return
    with connection.cursor() as cursor:
        columns = ", ".join(_CASE_COLUMNS)
        with cursor.cursor.copy(f"COPY {FaultCase._meta.db_table} ({columns}) FROM STDIN") as copy:
            for case in cases:
                copy.write_row(
                    tuple(
                        json.dumps(getattr(case, name), ensure_ascii=False)
                        if name in _JSON_COLUMNS
                        else getattr(case, name)
                        for name in _CASE_COLUMNS
                    )
                )
        cursor.execute(
            f"""
            INSERT INTO {FaultAction._meta.db_table}
                (case_id, kind, at, from_state, to_state, after, reason)
            SELECT id, %s, %s, '', state, jsonb_build_object('codes', codes), ''
            FROM {FaultCase._meta.db_table} WHERE session_id = ANY(%s)
            """,
            [FaultAction.Kind.DETECT, now, [case.session_id for case in cases]],
        )


def _add_findings(case: FaultCase, findings: list[dict], now) -> FaultAction | None:
    """Add the codes ``case`` does not carry yet (unsaved; ``findings`` as JSON); the
    detection action, or None when nothing changes."""
    new = [f for f in findings if f["code"] not in case.codes]
    if not new or case.state not in (FaultState.OPEN, FaultState.ESCALATED):
        return None
    before = list(case.codes)
    case.codes = sorted(case.codes + [f["code"] for f in new])
    case.blocks_payment = blocks_payment(case.codes)
    case.findings = sorted(case.findings + new, key=lambda f: f["code"])
    return FaultAction(
        case=case,
        kind=FaultAction.Kind.DETECT,
        at=now,
        from_state=case.state,
        to_state=case.state,
        before={"codes": before},
        after={"codes": case.codes},
    )


def fault_case_record(
    *,
    case: FaultCase,
    kind: str,
    acting_user,
    to_state: str | None = None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
) -> FaultAction:
    """Write one action row (and the shared audit row), moving the state if asked.

    Call inside the caller's transaction with ``case`` locked (select_for_update)."""
    from_state = case.state
    now = timezone.now()
    if to_state is not None and to_state != from_state:
        if to_state not in FAULT_TRANSITIONS[from_state]:
            raise Conflict(
                _("This fault bill is %(state)s; it cannot be %(action)s.")
                % {"state": FaultState(from_state).label, "action": FaultAction.Kind(kind).label},
                code="fault_illegal_transition",
            )
        case.state = to_state
        fields = ["state"]
        if to_state in (FaultState.REPAIRED, FaultState.DISMISSED):
            case.resolved_at, case.resolved_by = now, acting_user
            fields += ["resolved_at", "resolved_by"]
        case.save(update_fields=fields)
    action = FaultAction.objects.create(
        case=case,
        kind=kind,
        at=now,
        actor=acting_user if getattr(acting_user, "pk", None) else None,
        from_state=from_state,
        to_state=case.state,
        before=before,
        after=after,
        reason=reason,
    )
    audit_record(
        actor=acting_user,
        action=f"fault_bill.{kind}",
        obj=case.session,
        before={"state": from_state, **(before or {})},
        after={"state": case.state, **(after or {})},
        reason=reason,
    )
    return action


def fault_case_note_quote(*, case: FaultCase, acting_user, quote_json: dict, reason: str) -> None:
    """Record on the fault bill's history that someone recalculated it (nothing changes:
    the amount is only a proposal until applied)."""
    now = timezone.now()
    FaultAction.objects.create(
        case=case,
        kind=FaultAction.Kind.RECALCULATE,
        at=now,
        actor=acting_user if getattr(acting_user, "pk", None) else None,
        from_state=case.state,
        to_state=case.state,
        after=quote_json,
        reason=reason,
    )


def _locked(case_id: int) -> FaultCase:
    return FaultCase.objects.select_for_update().select_related("session").get(pk=case_id)


def require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(
            _("Reason: say why, so the next person reading this bill understands."),
            code="reason_required",
            details={"field": "reason"},
        )
    return reason


@transaction.atomic
def fault_case_dismiss(*, case: FaultCase, acting_user, reason: str) -> FaultCase:
    """Close a fault bill without changing it (e.g. code 10 only: the amount is right).

    A dismissed bill that was blocking payment stays unpaid here: dismissing says "the
    pile's figures are right", and charging it is billing's repair with no corrections."""
    reason = require_reason(reason)
    case = _locked(case.pk)
    fault_case_record(
        case=case,
        kind=FaultAction.Kind.DISMISS,
        acting_user=acting_user,
        to_state=FaultState.DISMISSED,
        reason=reason,
    )
    return case


@transaction.atomic
def fault_case_escalate(*, case: FaultCase, acting_user, reason: str) -> FaultCase:
    reason = require_reason(reason)
    case = _locked(case.pk)
    fault_case_record(
        case=case,
        kind=FaultAction.Kind.ESCALATE,
        acting_user=acting_user,
        to_state=FaultState.ESCALATED,
        reason=reason,
    )
    return case


@transaction.atomic
def fault_case_reopen(*, case: FaultCase, acting_user, reason: str) -> FaultCase:
    reason = require_reason(reason)
    case = _locked(case.pk)
    fault_case_record(
        case=case,
        kind=FaultAction.Kind.REOPEN,
        acting_user=acting_user,
        to_state=FaultState.OPEN,
        reason=reason,
    )
    return case
