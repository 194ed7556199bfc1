"""Senders for driver notifications: WeChat template messages, and a log for development.

Which sender runs is a setting: ``FAULTS_NOTIFICATION_SENDER = "log" | "wechat"`` (default
"log"); the WeChat one reads ``WECHAT_APP_ID``, ``WECHAT_APP_SECRET``,
``WECHAT_TEMPLATE_CHARGE_FINISHED``, ``WECHAT_TEMPLATE_BEING_CHECKED`` and
``WECHAT_API_BASE`` (all in chargenet/settings.py, from the environment; tests point the
base at a local fake server).

The WeChat wire format (公众号 template messages):
- ``GET /cgi-bin/token?grant_type=client_credential&appid=..&secret=..`` →
  ``{"access_token": "...", "expires_in": 7200}`` or ``{"errcode": 40013, "errmsg": ...}``;
- ``POST /cgi-bin/message/template/send?access_token=..`` with
  ``{"touser": openid, "template_id": ..., "data": {"first": {"value": ...}, ...}}`` →
  ``{"errcode": 0, "errmsg": "ok", "msgid": 200228332}``.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Protocol

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext as _

logger = logging.getLogger("chargenet.notifications")

# Access-token errors after which a fresh token is fetched and the send retried once.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})


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


class LogSender:
    """Development: writes the message to the log instead of sending it."""

    name = "log"

    def send(self, *, openid: str, kind: str, payload: dict) -> str:
        logger.info("notification to %s: %s", openid or "-", message_lines(kind, payload))
        return ""


class WeChatTemplateSender:
    name = "wechat"

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        templates: dict[str, str],
        base_url: str = "https://api.weixin.qq.com",
        timeout: float = 5.0,
    ):
        self.app_id = app_id
        self.app_secret = app_secret
        self.templates = templates
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    @property
    def _token_key(self) -> str:
        return f"wechat-token:{self.app_id}"

    def _call(self, path: str, *, query: dict, body: dict | None = None) -> dict:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(query)}"
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json; charset=utf-8"
        request = urllib.request.Request(url, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            raise NotificationError(f"WeChat API unreachable: {exc}") from exc

    def access_token(self, *, refresh: bool = False) -> str:
        token = None if refresh else cache.get(self._token_key)
        if token:
            return token
        answer = self._call(
            "/cgi-bin/token",
            query={
                "grant_type": "client_credential",
                "appid": self.app_id,
                "secret": self.app_secret,
            },
        )
        if "access_token" not in answer:
            raise NotificationError(
                f"WeChat token error {answer.get('errcode')}: {answer.get('errmsg')}"
            )
        # Refresh well before WeChat expires it (7200 s).
        ttl = max(int(answer.get("expires_in", 7200)) - 300, 60)
        cache.set(self._token_key, answer["access_token"], ttl)
        return answer["access_token"]

    def send(self, *, openid: str, kind: str, payload: dict) -> str:
        if not openid:
            raise NotificationError("member has no WeChat openid")
        body = {
            "touser": openid,
            "template_id": self.templates[kind],
            "data": {k: {"value": str(v)} for k, v in message_lines(kind, payload).items()},
        }
        if payload.get("url"):
            body["url"] = payload["url"]
        for attempt in (1, 2):
            answer = self._call(
                "/cgi-bin/message/template/send",
                query={"access_token": self.access_token(refresh=attempt == 2)},
                body=body,
            )
            code = answer.get("errcode", 0)
            if code == 0:
                return str(answer.get("msgid", ""))
            if code not in TOKEN_ERRORS:
                break
        raise NotificationError(f"WeChat send error {code}: {answer.get('errmsg')}")


def configured_sender() -> Sender:
    if settings.FAULTS_NOTIFICATION_SENDER == "wechat":
        return WeChatTemplateSender(
            app_id=settings.WECHAT_APP_ID,
            app_secret=settings.WECHAT_APP_SECRET,
            templates={
                "charge_finished": settings.WECHAT_TEMPLATE_CHARGE_FINISHED,
                "being_checked": settings.WECHAT_TEMPLATE_BEING_CHECKED,
            },
            base_url=settings.WECHAT_API_BASE,
        )
    return LogSender()
