"""The settlement check: whether a bill may be charged, and what is wrong when it may not.

Settlement must never charge a bill the fault rules would stop, so it asks the check
synchronously, inside its transaction. The rules belong to the fault desk (`faults/`),
which builds on billing; billing does not import it. Instead the desk registers its
check at start-up (`faults.apps.FaultsConfig.ready` → `settlement_check_register`), the
way a payment gateway plugs into an order core. Without a registered check settlement
refuses to run: no bill is ever charged unchecked.

What the desk then does about a fault (open a case, tell the driver) is not part of the
check: settlement writes a ``bill.settled`` event (`chargenet.events`) carrying the
verdict's ``record``, and the desk's consumers act on it after commit.

A check works on a whole settlement batch, set-based:

1. ``evidence(sessions=)`` reads what the rules need (meter samples, status history,
   thresholds…) in a constant number of queries. Settlement prices from the evidence's
   ``samples`` (so the samples are read once).
2. ``refuse_pricing(session=, evidence=, start=, end=)`` may refuse to price a session
   at all (implausible times or energy: never walk the year 2999): a `PricingError`
   that settlement records instead of a price.
3. ``verdicts(checks=)`` gives each session its `Verdict`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured

from ..pricing import Pricing, PricingError


@dataclass(frozen=True)
class PricingAttempt:
    """What settlement got from the pricing engine: a result, or the error it raised (or
    the check's refusal to price, with the findings that made it refuse)."""

    result: Pricing | None = None
    error: PricingError | None = None
    findings: tuple = ()  # the check's own, opaque to billing


@dataclass(frozen=True)
class Checked:
    """One session of a batch as the check sees it: priced (or not) and its evidence."""

    session: object
    pricing: PricingAttempt
    evidence: object


@dataclass(frozen=True)
class Verdict:
    """The check's answer for one session. ``codes`` are the fault codes found (sorted),
    ``blocking`` those that stop the bill being charged; ``record`` is JSON the fault desk
    wants back in the ``bill.settled`` event (findings, pile vs platform values…)."""

    codes: tuple[int, ...] = ()
    blocking: tuple[int, ...] = ()
    record: dict | None = None


class SettlementCheck(Protocol):
    def evidence(self, *, sessions: Sequence) -> dict[int, object]: ...

    def refuse_pricing(
        self, *, session, evidence, start: dt.datetime, end: dt.datetime
    ) -> PricingAttempt | None: ...

    def verdicts(self, *, checks: Sequence[Checked]) -> dict[int, Verdict]: ...


_check: SettlementCheck | None = None


def settlement_check_register(check: SettlementCheck) -> None:
    global _check
    _check = check


def settlement_check() -> SettlementCheck:
    if _check is None:
        raise ImproperlyConfigured(
            "No settlement check is registered (the faults app registers it): "
            "settlement never charges a bill unchecked."
        )
    return _check
