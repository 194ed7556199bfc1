"""Test helper: a local fake WeChat Pay (`integrations.wechat.pay_fake`) with throw-away
keys, and the settings that point the platform's client at it.

    from tests.wechatpay import pay_keys_fixture, wechat_pay_fixture  # noqa: F401
"""

from __future__ import annotations

import pytest

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
