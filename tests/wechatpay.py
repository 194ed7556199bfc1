"""Test helper: a local fake WeChat Pay (`integrations.wechat.pay_fake`) with throw-away
keys, and the settings that point the platform's client at it.

    from tests.wechatpay import pay_keys_fixture, wechat_pay_fixture  # noqa: F401
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Recharge, RechargeState
from billing.services.wallet import wallet_recharge
from integrations.wechat.pay_fake import FakeWeChatPay, PayKeys


@pytest.fixture(scope="session", name="pay_keys")
def pay_keys_fixture() -> PayKeys:
    return PayKeys.generate()


def point_settings_at(settings, keys: PayKeys, url: str) -> None:
    kwargs = keys.client_kwargs()
    settings.WECHATPAY_MCHID = kwargs["mchid"]
    settings.WECHATPAY_APPID = kwargs["appid"]
    settings.WECHATPAY_PRIVATE_KEY = kwargs["private_key"]
    settings.WECHATPAY_CERT_SERIAL_NO = kwargs["cert_serial_no"]
    settings.WECHATPAY_APIV3_KEY = kwargs["apiv3_key"]
    settings.WECHATPAY_PUBLIC_KEY = kwargs["public_key"]
    settings.WECHATPAY_PUBLIC_KEY_ID = kwargs["public_key_id"]
    settings.WECHATPAY_API_BASE = url


@pytest.fixture(name="wechat_pay")
def wechat_pay_fixture(pay_keys, settings):
    """The fake WeChat Pay, listening; the platform's settings point at it."""
    with FakeWeChatPay(keys=pay_keys) as fake:
        point_settings_at(settings, pay_keys, fake.url)
        yield fake


_numbers = itertools.count(1)


def paid_recharge(member, amount: Decimal = Decimal("50.00"), *, state=RechargeState.PAID):
    """A recharge as WeChat Pay leaves it: paid (and credited to the wallet) by default,
    or pending/closed without money."""
    n = next(_numbers)
    now = timezone.now()
    paid = state == RechargeState.PAID
    recharge = Recharge.objects.create(
        member=member,
        out_trade_no=f"RCT{member.pk:06d}{n:08d}",
        amount=amount,
        openid=member.wechat_openid or "",
        expires_at=now + dt.timedelta(minutes=30),
        state=state,
        transaction_id=f"4200{n:012d}" if paid else "",
        paid_at=now if paid else None,
    )
    if paid:
        wallet_recharge(member=member, amount=amount, reference=recharge.out_trade_no)
    return recharge
