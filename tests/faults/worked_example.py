"""DOMAIN.md's worked example as the fault-bill tests use it: Shanghai wall-clock times,
the session's meter samples, and a member whose wallet can pay the bill."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from billing.services.wallet import wallet_recharge
from tests.billing.factories import MemberFactory

SH = ZoneInfo("Asia/Shanghai")


def at(*args):
    return dt.datetime(*args, tzinfo=SH)


# With a sample just before the stop: the platform saw 34800 Wh at 10:40:00 but the pile
# reports a stop register of 44820 Wh (code 8).
SAMPLES = [
    (at(2019, 9, 6, 23, 26, 13), "0"),
    (at(2019, 9, 7, 0, 0), "1000"),
    (at(2019, 9, 7, 8, 0), "26980"),
    (at(2019, 9, 7, 10, 40), "34800"),
    (at(2019, 9, 7, 10, 40, 40), "44820"),
]


def funded_member(operator, amount="100.00"):
    member = MemberFactory(operator=operator)
    wallet_recharge(member=member, amount=Decimal(amount), reference=f"WX{member.pk}")
    return member
