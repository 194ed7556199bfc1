"""WeChat Pay API v3 (微信支付 APIv3) through its maintained Python library, ``wechatpayv3``.

What the platform uses, direct-merchant (直连) mode, official-account JSAPI payments:
- ``POST /v3/pay/transactions/jsapi`` opens an order and answers its ``prepay_id``; the
  page calls ``WeixinJSBridge.invoke('getBrandWCPayRequest', params)`` with the parameters
  `jsapi_parameters` signs (appId, timeStamp, nonceStr, package, signType, paySign);
- ``GET /v3/pay/transactions/out-trade-no/{no}?mchid=..`` (the order's trade_state);
- ``POST /v3/pay/transactions/out-trade-no/{no}/close``;
- ``POST /v3/refund/domestic/refunds`` and ``GET /v3/refund/domestic/refunds/{no}``;
- notifications (payment and refund) POSTed to our notify URLs: signed by WeChat
  (``Wechatpay-Signature`` over timestamp, nonce and body) with an AES-256-GCM encrypted
  ``resource`` under the merchant's APIv3 key.

Every request is signed with the merchant's private key and every answer and notification
verified with the WeChat Pay platform public key (微信支付公钥, ``public_key_id``), by the
library. `integrations.wechat.pay_fake` is a local server speaking the same wire.

Never call it inside a database transaction: a slow WeChat would hold row locks.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from wechatpayv3 import SignType, WeChatPay, WeChatPayType

# Notifications older (or newer) than this are refused: a replayed old one is not news.
NOTIFICATION_MAX_SKEW = dt.timedelta(minutes=5)


class WeChatPayError(Exception):
    """WeChat Pay could not be reached, refused the call (``code`` is its error code, e.g.
    ORDERPAID, ORDER_NOT_EXIST), or sent something that does not verify."""

    def __init__(self, message: str, *, code: str = ""):
        super().__init__(message)
        self.code = code


class SignatureInvalid(WeChatPayError):
    """A notification whose signature, timestamp or encrypted resource does not verify."""


@dataclass(frozen=True)
class PayOrder:
    """An order as WeChat Pay knows it (``trade_state``: SUCCESS, NOTPAY, CLOSED, REFUND,
    USERPAYING, PAYERROR, REVOKED); amounts in fen."""

    out_trade_no: str
    trade_state: str
    transaction_id: str
    total_fen: int
    success_time: dt.datetime | None
    openid: str


@dataclass(frozen=True)
class PayRefund:
    """A refund as WeChat Pay knows it (``status``: SUCCESS, CLOSED, PROCESSING, ABNORMAL)."""

    out_refund_no: str
    out_trade_no: str
    refund_id: str
    status: str
    refund_fen: int
    success_time: dt.datetime | None


@dataclass(frozen=True)
class PayNotification:
    """A verified, decrypted notification: ``event_type`` (TRANSACTION.SUCCESS,
    REFUND.SUCCESS, REFUND.ABNORMAL, REFUND.CLOSED) with the order or the refund."""

    event_id: str
    event_type: str
    order: PayOrder | None = None
    refund: PayRefund | None = None


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _order(data: dict) -> PayOrder:
    amount = data.get("amount") or {}
    return PayOrder(
        out_trade_no=data["out_trade_no"],
        trade_state=data["trade_state"],
        transaction_id=data.get("transaction_id", ""),
        total_fen=int(amount.get("total", 0)),
        success_time=_time(data.get("success_time")),
        openid=(data.get("payer") or {}).get("openid", ""),
    )


def _refund(data: dict) -> PayRefund:
    amount = data.get("amount") or {}
    return PayRefund(
        out_refund_no=data["out_refund_no"],
        out_trade_no=data.get("out_trade_no", ""),
        refund_id=data.get("refund_id", ""),
        status=data.get("status") or data.get("refund_status", ""),
        refund_fen=int(amount.get("refund", 0)),
        success_time=_time(data.get("success_time")),
    )


class WeChatPayClient:
    def __init__(
        self,
        *,
        mchid: str,
        appid: str,
        private_key: str,
        cert_serial_no: str,
        apiv3_key: str,
        public_key: str,
        public_key_id: str,
        base_url: str = "https://api.mch.weixin.qq.com",
        timeout: float = 5.0,
    ):
        self.mchid = mchid
        self.appid = appid
        if not (mchid and private_key and apiv3_key and public_key and public_key_id):
            # Without the platform public key the library would fetch certificates from
            # WeChat while it is being built: refuse instead.
            raise WeChatPayError("WeChat Pay is not configured", code="NOT_CONFIGURED")
        try:
            self._pay = WeChatPay(
                wechatpay_type=WeChatPayType.JSAPI,
                mchid=mchid,
                private_key=private_key,
                cert_serial_no=cert_serial_no,
                appid=appid,
                apiv3_key=apiv3_key,
                public_key=public_key,
                public_key_id=public_key_id,
                timeout=(timeout, timeout),
            )
        except Exception as exc:  # the library's own "failed to load private key" and such
            raise WeChatPayError(f"WeChat Pay keys unusable: {exc}", code="NOT_CONFIGURED") from exc
        # The library has no option for the host; the fake (and a sandbox) need another.
        self._pay._core._gate_way = base_url.rstrip("/")

    def _call(self, method, **kwargs) -> tuple[int, dict]:
        try:
            status, text = method(**kwargs)
        except Exception as exc:  # requests' errors, and the library's failed verification
            raise WeChatPayError(f"WeChat Pay unreachable or unverified: {exc}") from exc
        try:
            answer = json.loads(text) if text else {}
        except (TypeError, ValueError) as exc:
            raise WeChatPayError(f"WeChat Pay answered {status} with no JSON") from exc
        if not 200 <= status < 300:
            raise WeChatPayError(
                f"WeChat Pay {status} {answer.get('code')}: {answer.get('message')}",
                code=str(answer.get("code", "")),
            )
        return status, answer

    def jsapi_order_create(
        self,
        *,
        out_trade_no: str,
        description: str,
        total_fen: int,
        openid: str,
        time_expire: dt.datetime,
        notify_url: str,
    ) -> str:
        """Open a JSAPI order; returns its prepay_id (valid two hours)."""
        _status, answer = self._call(
            self._pay.pay,
            description=description,
            out_trade_no=out_trade_no,
            amount={"total": total_fen, "currency": "CNY"},
            payer={"openid": openid},
            time_expire=time_expire.isoformat(timespec="seconds"),
            notify_url=notify_url,
            pay_type=WeChatPayType.JSAPI,
        )
        return answer["prepay_id"]

    def jsapi_parameters(self, *, prepay_id: str) -> dict[str, str]:
        """What the page hands to ``getBrandWCPayRequest``, signed with the merchant key."""
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        package = f"prepay_id={prepay_id}"
        return {
            "appId": self.appid,
            "timeStamp": timestamp,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": self._pay.sign([self.appid, timestamp, nonce, package], SignType.RSA_SHA256),
        }

    def order_query(self, *, out_trade_no: str) -> PayOrder | None:
        """The order as WeChat knows it; None when WeChat has no such order."""
        try:
            _status, answer = self._call(self._pay.query, out_trade_no=out_trade_no)
        except WeChatPayError as exc:
            if exc.code == "ORDER_NOT_EXIST":
                return None
            raise
        return _order(answer)

    def order_close(self, *, out_trade_no: str) -> None:
        """Close an unpaid order (ORDERPAID when it was paid meanwhile)."""
        self._call(self._pay.close, out_trade_no=out_trade_no)

    def refund_create(
        self,
        *,
        out_refund_no: str,
        out_trade_no: str,
        refund_fen: int,
        total_fen: int,
        reason: str,
        notify_url: str,
    ) -> PayRefund:
        _status, answer = self._call(
            self._pay.refund,
            out_refund_no=out_refund_no,
            out_trade_no=out_trade_no,
            amount={"refund": refund_fen, "total": total_fen, "currency": "CNY"},
            reason=reason[:80] or None,
            notify_url=notify_url,
        )
        return _refund(answer)

    def refund_query(self, *, out_refund_no: str) -> PayRefund | None:
        try:
            _status, answer = self._call(self._pay.query_refund, out_refund_no=out_refund_no)
        except WeChatPayError as exc:
            if exc.code == "RESOURCE_NOT_EXISTS":
                return None
            raise
        return _refund(answer)

    def notification_parse(self, *, headers: dict, body: bytes | str) -> PayNotification:
        """Verify a notification's signature (the platform public key) and decrypt its
        resource (AES-256-GCM, the APIv3 key), both by the library; refuse a stale one.
        Raises `SignatureInvalid` for anything that does not verify."""
        headers = {k.lower(): v for k, v in headers.items()}
        try:
            sent = dt.datetime.fromtimestamp(int(headers.get("wechatpay-timestamp", "")), dt.UTC)
        except (TypeError, ValueError, OverflowError):
            raise SignatureInvalid("notification without a valid Wechatpay-Timestamp") from None
        if abs(dt.datetime.now(dt.UTC) - sent) > NOTIFICATION_MAX_SKEW:
            raise SignatureInvalid("notification timestamp outside the allowed window")
        try:
            data = self._pay.callback(headers=headers, body=body)
        except Exception as exc:  # an unknown signature type, or a body that is no JSON
            raise SignatureInvalid(f"notification refused: {exc}") from exc
        if not data or not isinstance(data.get("resource"), dict):
            raise SignatureInvalid("notification signature or resource does not verify")
        event_type = data.get("event_type", "")
        resource = data["resource"]
        try:
            if event_type.startswith("TRANSACTION."):
                if resource.get("mchid") != self.mchid or resource.get("appid") != self.appid:
                    raise SignatureInvalid("notification for another merchant or app")
                return PayNotification(data.get("id", ""), event_type, order=_order(resource))
            if event_type.startswith("REFUND."):
                if resource.get("mchid") != self.mchid:
                    raise SignatureInvalid("notification for another merchant")
                return PayNotification(data.get("id", ""), event_type, refund=_refund(resource))
        except (KeyError, TypeError, ValueError) as exc:
            raise SignatureInvalid(f"notification resource incomplete: {exc}") from exc
        raise SignatureInvalid(f"notification of unknown type {event_type!r}")


def pay_configured() -> bool:
    return bool(settings.WECHATPAY_MCHID)


def configured_pay_client() -> WeChatPayClient:
    """The merchant's client from settings (``WECHATPAY_*``): the one every WeChat Pay
    use goes through."""
    return WeChatPayClient(
        mchid=settings.WECHATPAY_MCHID,
        appid=settings.WECHATPAY_APPID,
        private_key=settings.WECHATPAY_PRIVATE_KEY,
        cert_serial_no=settings.WECHATPAY_CERT_SERIAL_NO,
        apiv3_key=settings.WECHATPAY_APIV3_KEY,
        public_key=settings.WECHATPAY_PUBLIC_KEY,
        public_key_id=settings.WECHATPAY_PUBLIC_KEY_ID,
        base_url=settings.WECHATPAY_API_BASE,
    )
