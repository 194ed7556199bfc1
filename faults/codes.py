"""Fault-bill codes (故障账单): the operator's numbers, kept; new ones go after the last.

Never reuse or renumber a code: bills, reports and customer service speak these numbers.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class FaultCode(models.IntegerChoices):
    BILL_LOST = 1, _("bill lost")  # 账单丢失
    BILL_LOST_OFFLINE = 2, _("bill lost (device offline)")  # 账单丢失(设备离线)
    TIME_ANOMALY = 3, _("time anomaly")  # 时间异常
    DURATION_ANOMALY = 5, _("charging duration anomaly")  # 充电时长异常
    ENERGY_MISMATCH = 8, _("energy differs from the platform's")  # 充电电量与平台不符
    DURATION_MISMATCH = 9, _("charging duration differs from the platform's")  # 充电时长与平台不符
    OCCUPANCY_MISMATCH = (
        10,
        _("occupancy duration differs from the platform's"),
    )  # 占桩时长与平台不符
    ENERGY_LOST = 11, _("energy lost")  # 电量丢失
    TARIFF_MISSING = 12, _("tariff missing")  # 电价缺失
    ENERGY_IMPLAUSIBLE = 13, _("energy implausible for the connector's power")  # 电量超出充电桩功率
    # 合作方订单未确认或对账不符: a partner (T/CEC 102) order never acknowledged after a day of
    # retries, or disputed by the partner (its energy or amount differs from ours).
    PARTNER_ORDER_UNCONFIRMED = 14, _("partner order unconfirmed or disputed")


# Codes that are shown on a bill but do not stop it being charged (DOMAIN.md: code 10).
# A partner's order (14) is paid by the partner, not from a wallet: the desk settles it with
# the partner, the bill stays as priced.
NON_BLOCKING = frozenset({FaultCode.OCCUPANCY_MISMATCH, FaultCode.PARTNER_ORDER_UNCONFIRMED})


def blocks_payment(codes) -> bool:
    """A fault bill is not charged until repaired, unless every code leaves the amount alone."""
    return any(FaultCode(c) not in NON_BLOCKING for c in codes)
