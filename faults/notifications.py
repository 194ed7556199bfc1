"""Senders for driver notifications: WeChat template messages, and a log for development.

Which sender runs is a setting: ``FAULTS_NOTIFICATION_SENDER = "log" | "wechat"`` (default
"log"); the WeChat one reads ``WECHAT_APP_ID``, ``WECHAT_APP_SECRET``,
``WECHAT_TEMPLATE_CHARGE_FINISHED``, ``WECHAT_TEMPLATE_BEING_CHECKED``,
``WECHAT_TEMPLATE_REFUND`` and ``WECHAT_TEMPLATE_INVOICE`` (the driver's money: a message
of a kind without its template stays pending, then failed, saying so) and
``WECHAT_API_BASE`` (all in chargenet/settings.py, from the environment; tests point the
base at a local fake server).

The WeChat wire format is the shared client's (`integrations.wechat.client`).
"""

from __future__ import annotations

import logging
from typing import Protocol

from django.conf import settings
from django.utils.translation import gettext as _

from integrations.wechat import WeChatClient, WeChatError, configured_client

logger = logging.getLogger("chargenet.notifications")


class NotificationError(Exception):
    """The sender could not deliver; the message stays pending for a retry."""


class Sender(Protocol):
    name: str

    def send(self, *, openid: str, kind: str, payload: dict) -> str:
        """Deliver one message; return the provider's message id."""


def message_lines(kind: str, payload: dict) -> dict[str, str]:
    """The driver-facing text of a message, as template fields (first, keywords, remark)."""
    if kind == "charge_finished":
        return {
            "first": _("Charging finished"),
            "keyword1": payload.get("order_no", ""),
            "keyword2": payload.get("station", ""),
            "keyword3": _("%(kwh)s kWh") % {"kwh": payload.get("energy_kwh", "")},
            "keyword4": _("%(amount)s yuan") % {"amount": payload.get("amount", "")},
            "keyword5": payload.get("ended_at", ""),
            "remark": _("Thank you for charging with us."),
        }
    if kind in MONEY_LINES:
        return MONEY_LINES[kind](payload)
    return {
        "first": _("Charging finished: your bill is being checked"),
        "keyword1": payload.get("order_no", ""),
        "keyword2": payload.get("station", ""),
        "keyword3": payload.get("ended_at", ""),
        "remark": _(
            "The pile's charge record needs a check by customer service; you are not charged "
            "until it is done."
        ),
    }


def _yuan(value) -> str:
    return _("%(amount)s yuan") % {"amount": value or ""}


# The driver's money: balance refunds and invoices (template fields as above).
MONEY_LINES = {
    "refund_approved": lambda p: {
        "first": _("Your balance refund was approved"),
        "keyword1": _yuan(p.get("amount")),
        "keyword2": _("WeChat Pay is refunding it"),
        "remark": _("The money returns to the account you paid with, usually within days."),
    },
    "refund_rejected": lambda p: {
        "first": _("Your balance refund was not approved"),
        "keyword1": _yuan(p.get("amount")),
        "keyword2": p.get("reason", ""),
        "remark": _("The amount stays in your wallet."),
    },
    "refund_refunded": lambda p: {
        "first": _("Your balance was refunded"),
        "keyword1": _yuan(p.get("refunded") or p.get("amount")),
        "keyword2": _("refunded"),
        "remark": _("It is back in the account you paid with."),
    },
    "refund_failed": lambda p: {
        "first": _("Your balance refund did not go through"),
        "keyword1": _yuan(p.get("amount")),
        "keyword2": _("refunded: %(amount)s") % {"amount": _yuan(p.get("refunded", "0.00"))},
        "remark": _("Customer service will contact you; nothing of yours is lost."),
    },
    "invoice_issued": lambda p: {
        "first": _("Your invoice is ready"),
        "keyword1": p.get("title", ""),
        "keyword2": _yuan(p.get("amount")),
        "remark": _("Download it in the wallet, under Invoices."),
    },
    "invoice_rejected": lambda p: {
        "first": _("Your invoice request was rejected"),
        "keyword1": p.get("title", ""),
        "keyword2": p.get("reason", ""),
        "remark": _("You may ask for it again with corrected details."),
    },
}


class LogSender:
    """Development: writes the message to the log instead of sending it."""

    name = "log"

    def send(self, *, openid: str, kind: str, payload: dict) -> str:
        logger.info("notification to %s: %s", openid or "-", message_lines(kind, payload))
        return ""


class WeChatTemplateSender:
    """Template messages through the shared WeChat client (integrations.wechat)."""

    name = "wechat"

    def __init__(self, *, client: WeChatClient, templates: dict[str, str]):
        self.client = client
        self.templates = templates

    def send(self, *, openid: str, kind: str, payload: dict) -> str:
        if not self.templates.get(kind):
            raise NotificationError(f"no WeChat template is configured for {kind} messages")
        try:
            return self.client.template_send(
                openid=openid,
                template_id=self.templates[kind],
                data=message_lines(kind, payload),
                url=payload.get("url", ""),
            )
        except WeChatError as exc:
            raise NotificationError(str(exc)) from exc


def configured_sender() -> Sender:
    if settings.FAULTS_NOTIFICATION_SENDER == "wechat":
        return WeChatTemplateSender(
            client=configured_client(),
            templates={
                "charge_finished": settings.WECHAT_TEMPLATE_CHARGE_FINISHED,
                "being_checked": settings.WECHAT_TEMPLATE_BEING_CHECKED,
                **dict.fromkeys(
                    ("refund_approved", "refund_rejected", "refund_refunded", "refund_failed"),
                    settings.WECHAT_TEMPLATE_REFUND,
                ),
                **dict.fromkeys(
                    ("invoice_issued", "invoice_rejected"), settings.WECHAT_TEMPLATE_INVOICE
                ),
            },
        )
    return LogSender()
