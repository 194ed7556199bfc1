"""Fault rules run when a session is settled (the billing hook).

`detect_on_settlements` is what `billing.services.settlement.bills_settle` calls, inside
its transaction, with the sessions locked (`detect_on_settlement` is the same for one
session). For each session it runs

- the pricing-error rules in `SETTLEMENT_RULES` (``(session, pricing) -> FaultCode | None``:
  tariff missing, register backwards, stop before start as the engine saw them), and
- every anomaly rule of `faults.rules` over the session's facts (samples, status history,
  offline records, the gateway's receive times),

records the fault bill (`FaultCase`, with each code's reasons and the pile-vs-platform
values) when any code is found — keeping the codes of a case the sweep already opened —,
queues the driver's "session ended" message ("charging finished" with energy and amount,
or "being checked"), and returns the codes in order. Settlement runs it for a batch
(`detect_on_settlements`): facts, thresholds and open codes of every session are one query,
the messages one INSERT, whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from billing.pricing import (
    Pricing,
    PricingError,
    RegisterBackwards,
    TariffMissing,
    TimeReversed,
    TimesImplausible,
    TooManySegments,
)

from .codes import FaultCode, blocks_payment
from .facts import session_facts_with_limits
from .rules import (
    Finding,
    Reason,
    SessionFacts,
    Thresholds,
    detect,
    explain,
    implausible_times,
    propose_lost_bill,
    rule_energy_beyond_power,
)


@dataclass(frozen=True)
class PricingAttempt:
    """What settlement got from the pricing engine: a result, or the error it raised."""

    result: Pricing | None = None
    error: PricingError | None = None
    # Why it was not priced at all, when the rules decided so before pricing.
    findings: tuple[Finding, ...] = ()


def pricing_refused(
    facts: SessionFacts, limits: Thresholds, *, start, end
) -> PricingAttempt | None:
    """Settlement asks this BEFORE pricing ``start``–``end``: an attempt that is not
    priced, with its fault findings and the reasons as the error message, when the times
    or the duration are implausible (`faults.rules.implausible_times`) or the energy is
    beyond what the connector can deliver (code 13: no price of it means anything, and
    9×10^10 Wh priced is a nine-digit bill); else None."""
    findings = implausible_times(facts, limits, start=start, end=end)
    findings += rule_energy_beyond_power(facts, limits)
    if not findings:
        return None
    message = " ".join(explain(reason) for f in findings for reason in f.reasons)
    return PricingAttempt(error=TimesImplausible(message), findings=tuple(findings))


def tariff_missing(session, pricing: PricingAttempt) -> FaultCode | None:
    # Never a default price: no tariff in force makes a fault bill.
    return FaultCode.TARIFF_MISSING if isinstance(pricing.error, TariffMissing) else None


def register_went_backwards(session, pricing: PricingAttempt) -> FaultCode | None:
    # A register that drops (reset, replaced meter) lost energy: never a negative amount.
    backwards = isinstance(pricing.error, RegisterBackwards) or (
        session.meter_stop_wh is not None and session.meter_stop_wh < session.meter_start_wh
    )
    return FaultCode.ENERGY_LOST if backwards else None


def stopped_before_start(session, pricing: PricingAttempt) -> FaultCode | None:
    reversed_time = isinstance(pricing.error, TimeReversed) or (
        session.stopped_at is not None and session.stopped_at < session.started_at
    )
    return FaultCode.TIME_ANOMALY if reversed_time else None


def too_long_to_price(session, pricing: PricingAttempt) -> FaultCode | None:
    # The engine's own bound: longer than it walks, whatever the operator's maximum says.
    return FaultCode.DURATION_ANOMALY if isinstance(pricing.error, TooManySegments) else None


SETTLEMENT_RULES: list[Callable[..., FaultCode | None]] = [
    tariff_missing,
    register_went_backwards,
    stopped_before_start,
    too_long_to_price,
]


def settlement_findings(
    *, session, pricing: PricingAttempt, facts=None, limits=None
) -> list[Finding]:
    """Every finding for a stopped session: the anomaly rules over its facts, plus the
    pricing-error rules (their reason is the engine's own message)."""
    if facts is None:
        facts, limits, _open = session_facts_with_limits(session=session)
    findings = {f.code: f for f in detect(facts, limits)}
    for refusal in pricing.findings:  # not priced: the rule's reasons, then why not priced
        found = findings.get(refusal.code)
        reasons = found.reasons if found else ()
        reasons += tuple(r for r in refusal.reasons if r not in reasons)
        findings[refusal.code] = Finding(refusal.code, reasons)
    for rule in SETTLEMENT_RULES:
        code = rule(session, pricing)
        if code is not None and code not in findings:
            message = str(pricing.error) if pricing.error else ""
            findings[code] = Finding(code, (Reason("pricing_error", {"message": message}),))
    return [findings[c] for c in sorted(findings)]


def detect_on_settlement(*, session, pricing: PricingAttempt) -> list[FaultCode]:
    facts = session_facts_with_limits(session=session)
    return detect_on_settlements(
        checks=[SettlementCheck(session, pricing, *facts)],
    )[session.pk]


@dataclass(frozen=True)
class SettlementCheck:
    """One session of a settlement batch: its pricing and what `sessions_facts_with_limits`
    read about it (facts, the operator's thresholds, the codes of an open case)."""

    session: object
    pricing: PricingAttempt
    facts: SessionFacts
    limits: Thresholds
    open_codes: list[int]


def detect_on_settlements(*, checks: Sequence[SettlementCheck]) -> dict[int, list[FaultCode]]:
    """`detect_on_settlement` for a batch: the rules run in memory; the fault bills and the
    drivers' messages are written with a constant number of statements (see
    `fault_cases_open`, `notifications_enqueue`). Returns {session id: codes in order}."""
    from .services.cases import CaseOpening, fault_cases_open
    from .services.notify import SessionEnded, notifications_enqueue

    out: dict[int, list[FaultCode]] = {}
    openings, messages = [], []
    for check in checks:
        findings = settlement_findings(
            session=check.session, pricing=check.pricing, facts=check.facts, limits=check.limits
        )
        # A case the sweep opened stays a fault bill even when the late StopTransaction
        # makes the facts look normal now: customer service decides, with the late values.
        codes = sorted({f.code for f in findings} | {FaultCode(c) for c in check.open_codes})
        out[check.session.pk] = codes
        if findings:
            lost = any(c in (FaultCode.BILL_LOST, FaultCode.BILL_LOST_OFFLINE) for c in codes)
            openings.append(
                CaseOpening(
                    session=check.session,
                    facts=check.facts,
                    findings=findings,
                    proposal=propose_lost_bill(check.facts) if lost else None,
                )
            )
        result = check.pricing.result
        if blocks_payment(codes):
            messages.append(SessionEnded(check.session, being_checked=True))
        else:
            messages.append(
                SessionEnded(
                    check.session,
                    being_checked=False,
                    energy_wh=result.energy_wh if result else None,
                    amount=result.total if result else None,
                )
            )
    fault_cases_open(openings=openings)
    notifications_enqueue(messages=messages)
    return out
