"""The operator's fault-bill codes (DOMAIN.md). Keep them; add new ones after 12, never reuse."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class FaultCode(models.IntegerChoices):
    BILL_LOST = 1, _("bill lost")
    BILL_LOST_OFFLINE = 2, _("bill lost (device offline)")
    TIME_ANOMALY = 3, _("time anomaly")
    DURATION_ANOMALY = 5, _("charging duration anomaly")
    ENERGY_MISMATCH = 8, _("energy differs from the platform's")
    CHARGING_TIME_MISMATCH = 9, _("charging duration differs from the platform's")
    OCCUPANCY_MISMATCH = 10, _("occupancy duration differs from the platform's")
    ENERGY_LOST = 11, _("energy lost")
    TARIFF_MISSING = 12, _("tariff missing")


# Codes that do not change the amount: a bill carrying only these is still charged.
NON_BLOCKING_CODES = frozenset({FaultCode.OCCUPANCY_MISMATCH})


def blocks_payment(codes) -> bool:
    """A fault bill is not charged until repaired, unless every code leaves the amount alone."""
    return any(FaultCode(c) not in NON_BLOCKING_CODES for c in codes)
