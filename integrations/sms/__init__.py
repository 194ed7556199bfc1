"""Text messages (SMS) to drivers' phones: one small interface, a log sender for
development and Aliyun SMS (阿里云短信, `integrations.sms.aliyun`) for production, with a
local fake of Aliyun's wire (`integrations.sms.fake`).

    sender = configured_sender()          # settings.SMS_SENDER: "log" or "aliyun"
    sender.send_code(phone="13800138000", code="123456")

Never call a sender inside a database transaction.
"""

from __future__ import annotations

import logging
from typing import Protocol

from django.conf import settings

log = logging.getLogger("chargenet.sms")


class SmsError(Exception):
    """The provider could not be reached or refused the message; ``code`` is its own."""

    def __init__(self, message: str, *, code: str = ""):
        super().__init__(message)
        self.code = code


class SmsSender(Protocol):
    def send_code(self, *, phone: str, code: str) -> str:
        """Send a verification code; returns the provider's message id."""


class LogSender:
    """Development: the code goes to the log (``chargenet.sms``) instead of a phone."""

    def send_code(self, *, phone: str, code: str) -> str:
        log.info("SMS to %s: verification code %s", phone, code)
        return f"log-{phone}"


def configured_sender() -> SmsSender:
    if settings.SMS_SENDER == "aliyun":
        from integrations.sms.aliyun import AliyunSmsClient

        return AliyunSmsClient(
            access_key_id=settings.ALIYUN_SMS_ACCESS_KEY_ID,
            access_key_secret=settings.ALIYUN_SMS_ACCESS_KEY_SECRET,
            sign_name=settings.ALIYUN_SMS_SIGN_NAME,
            template_code=settings.ALIYUN_SMS_TEMPLATE_CODE,
            endpoint=settings.ALIYUN_SMS_ENDPOINT,
        )
    return LogSender()
