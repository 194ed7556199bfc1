"""The fault desk's settlement check: the rules a bill must pass before it is charged.

Billing's settlement asks it, inside its transaction, with the sessions locked, through
the port `billing.services.settlement_check` (registered by `faults.apps`): billing never
imports the desk. For each session of a batch it runs

- the pricing-error rules in `SETTLEMENT_RULES` (``(session, pricing) -> FaultCode | None``:
  tariff missing, register backwards, stop before start as the engine saw them), and
- every anomaly rule of `faults.rules` over the session's facts (samples, status history,
  offline records, the gateway's receive times),

and answers the codes, those that block payment, and a JSON record (findings, pile vs
platform values, the proposal for a lost bill) that settlement carries in its
``bill.settled`` event. Opening the fault bill and telling the driver happen on that
event (`faults.consumers`), after commit. Facts, thresholds and open codes of a whole
batch are one query, whatever its size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from billing.pricing import (
    RegisterBackwards,
    TariffMissing,
    TimeReversed,
    TimesImplausible,
    TooManySegments,
)
from billing.services.settlement_check import Checked, PricingAttempt, Verdict

from .codes import NON_BLOCKING, FaultCode
from .facts import sessions_facts_with_limits
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
from .services.cases import case_record


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
    *, session, pricing: PricingAttempt, facts: SessionFacts, limits: Thresholds
) -> list[Finding]:
    """Every finding for a stopped session: the anomaly rules over its facts, plus the
    pricing-error rules (their reason is the engine's own message)."""
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


class FaultDeskCheck:
    """The desk's implementation of `billing.services.settlement_check.SettlementCheck`."""

    def evidence(self, *, sessions) -> dict[int, Evidence]:
        return {
            session_id: Evidence(facts, limits, open_codes)
            for session_id, (facts, limits, open_codes) in sessions_facts_with_limits(
                sessions=sessions
            ).items()
        }

    def refuse_pricing(self, *, session, evidence: Evidence, start, end) -> PricingAttempt | None:
        return pricing_refused(evidence.facts, evidence.limits, start=start, end=end)

    def verdicts(self, *, checks: Sequence[Checked]) -> dict[int, Verdict]:
        out = {}
        for check in checks:
            session, evidence = check.session, check.evidence
            findings = settlement_findings(
                session=session, pricing=check.pricing, facts=evidence.facts, limits=evidence.limits
            )
            # A case the sweep opened stays a fault bill even when the late StopTransaction
            # makes the facts look normal now: customer service decides, with the late values.
            codes = sorted({f.code for f in findings} | {FaultCode(c) for c in evidence.open_codes})
            record = None
            if findings:
                lost = any(c in (FaultCode.BILL_LOST, FaultCode.BILL_LOST_OFFLINE) for c in codes)
                proposal = propose_lost_bill(evidence.facts) if lost else None
                record = case_record(
                    facts=evidence.facts,
                    findings=findings,
                    proposal=proposal,
                    firmware=session.pile.firmware_version,
                )
            out[session.pk] = Verdict(
                codes=tuple(int(c) for c in codes),
                blocking=tuple(int(c) for c in codes if c not in NON_BLOCKING),
                record=record,
            )
        return out


@dataclass(frozen=True)
class Evidence:
    """What the rules know of one session: its facts (with every meter sample, which
    settlement prices from), the operator's thresholds, the codes of an open case."""

    facts: SessionFacts
    limits: Thresholds
    open_codes: list[int]

    @property
    def samples(self):
        return self.facts.samples
