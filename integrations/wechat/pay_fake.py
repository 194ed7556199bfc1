"""A local WeChat Pay API v3 server speaking the wire `integrations.wechat.pay` uses, for
tests and development. Like WeChat it checks every request's merchant signature
(``Authorization: WECHATPAY2-SHA256-RSA2048 ...``), signs every answer and notification
with the platform key (``Wechatpay-Signature`` over timestamp, nonce and body, the
``Wechatpay-Serial`` naming the platform public key id), and encrypts a notification's
resource with AES-256-GCM under the merchant's APIv3 key. So the library's own
verification and decryption run against it.

    keys = PayKeys.generate()                      # throw-away test keys, never real ones
    with FakeWeChatPay(keys=keys) as pay:          # 127.0.0.1, a free port
        client = WeChatPayClient(**keys.client_kwargs(), base_url=pay.url)
        prepay_id = client.jsapi_order_create(...)
        pay.pay("RC..")                            # the driver pays: WeChat notifies
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHINA = dt.timezone(dt.timedelta(hours=8))
_AUTH = re.compile(r'(\w+)="([^"]*)"')


def _pem_private(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _pem_public(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _sign(key, message: str) -> str:
    return base64.b64encode(
        key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()


@dataclass(frozen=True)
class PayKeys:
    """A merchant key pair (requests) and a platform key pair (answers, notifications),
    generated on the spot, plus the APIv3 key: test material only."""

    mchid: str
    appid: str
    merchant_key: rsa.RSAPrivateKey
    cert_serial_no: str
    platform_key: rsa.RSAPrivateKey
    public_key_id: str
    apiv3_key: str

    @classmethod
    def generate(cls, *, mchid: str = "1900000109", appid: str = "wxd678efh567hg6787"):
        def key():
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)

        return cls(
            mchid=mchid,
            appid=appid,
            merchant_key=key(),
            cert_serial_no=secrets.token_hex(20).upper(),
            platform_key=key(),
            public_key_id=f"PUB_KEY_ID_{secrets.token_hex(16).upper()}",
            apiv3_key=secrets.token_hex(16),  # 32 characters, as WeChat's
        )

    def save(self, path: Path) -> None:
        data = {
            **self.client_kwargs(),
            "merchant_key": _pem_private(self.merchant_key),
            "platform_key": _pem_private(self.platform_key),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
        path.chmod(0o600)

    @classmethod
    def load_or_generate(cls, path: Path) -> PayKeys:
        """Development keys kept in ``path`` (made on first use): the web process and the
        fake's process must share them."""
        if not path.exists():
            cls.generate().save(path)
        data = json.loads(path.read_text())

        def key(pem: str):
            return serialization.load_pem_private_key(pem.encode(), password=None)

        return cls(
            mchid=data["mchid"],
            appid=data["appid"],
            merchant_key=key(data["merchant_key"]),
            cert_serial_no=data["cert_serial_no"],
            platform_key=key(data["platform_key"]),
            public_key_id=data["public_key_id"],
            apiv3_key=data["apiv3_key"],
        )

    def settings_env(self, *, url: str) -> dict[str, str]:
        """The ``WECHATPAY_*`` environment that points the platform at a fake on ``url``."""
        return {
            f"WECHATPAY_{name.upper()}": value for name, value in self.client_kwargs().items()
        } | {"WECHATPAY_API_BASE": url, "WECHATPAY_FAKE_URL": url}

    def client_kwargs(self) -> dict[str, str]:
        """The merchant side's settings: what `WeChatPayClient` is built from."""
        return {
            "mchid": self.mchid,
            "appid": self.appid,
            "private_key": _pem_private(self.merchant_key),
            "cert_serial_no": self.cert_serial_no,
            "apiv3_key": self.apiv3_key,
            "public_key": _pem_public(self.platform_key),
            "public_key_id": self.public_key_id,
        }

    def signed_headers(self, body: str, *, timestamp: int | None = None) -> dict[str, str]:
        """Headers WeChat puts on an answer or a notification with ``body``."""
        timestamp = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(16)
        return {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": self.public_key_id,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
            "Wechatpay-Signature": _sign(self.platform_key, f"{timestamp}\n{nonce}\n{body}\n"),
        }

    def notification(
        self, *, event_type: str, resource: dict, original_type: str, timestamp: int | None = None
    ) -> tuple[dict[str, str], str]:
        """(headers, body) of a notification: the resource AES-256-GCM encrypted under the
        APIv3 key (a 12-character nonce, ``original_type`` as associated data), signed."""
        nonce = secrets.token_hex(6)
        ciphertext = AESGCM(self.apiv3_key.encode()).encrypt(
            nonce.encode(), json.dumps(resource).encode(), original_type.encode()
        )
        body = json.dumps(
            {
                "id": f"EV-{secrets.token_hex(10)}",
                "create_time": dt.datetime.now(CHINA).isoformat(timespec="seconds"),
                "resource_type": "encrypt-resource",
                "event_type": event_type,
                "summary": "支付成功" if event_type == "TRANSACTION.SUCCESS" else "退款通知",
                "resource": {
                    "original_type": original_type,
                    "algorithm": "AEAD_AES_256_GCM",
                    "ciphertext": base64.b64encode(ciphertext).decode(),
                    "associated_data": original_type,
                    "nonce": nonce,
                },
            },
            ensure_ascii=False,
        )
        return self.signed_headers(body, timestamp=timestamp), body


@dataclass
class FakeOrder:
    out_trade_no: str
    appid: str
    description: str
    total: int
    openid: str
    notify_url: str
    prepay_id: str
    trade_state: str = "NOTPAY"
    transaction_id: str = ""
    success_time: str = ""
    refunded: int = 0


@dataclass
class FakeRefund:
    out_refund_no: str
    out_trade_no: str
    transaction_id: str
    refund_id: str
    refund: int
    total: int
    notify_url: str
    status: str = "PROCESSING"
    success_time: str = ""


@dataclass
class FakeWeChatPay:
    keys: PayKeys
    orders: dict[str, FakeOrder] = field(default_factory=dict)
    refunds: dict[str, FakeRefund] = field(default_factory=dict)
    calls: list[tuple[str, str, dict | None]] = field(default_factory=list)
    # (notify url, the status our server answered, or the error) for each notification.
    notified: list[tuple[str, int | str]] = field(default_factory=list)
    port: int = 0  # 0: any free port
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ---- what the driver and WeChat do ------------------------------------------------

    def pay(self, out_trade_no: str, *, notify: bool = True) -> None:
        """The driver pays the order; WeChat notifies the merchant (unless ``notify`` is
        off: the notification that never arrives)."""
        with self._lock:
            order = self.orders[out_trade_no]
            if order.trade_state != "NOTPAY":
                raise ValueError(f"order {out_trade_no} is {order.trade_state}")
            order.trade_state = "SUCCESS"
            order.transaction_id = "4200" + secrets.token_hex(12)[:24]
            order.success_time = dt.datetime.now(CHINA).isoformat(timespec="seconds")
        if notify:
            self.notify(out_trade_no)

    def order_resource(self, out_trade_no: str) -> dict:
        order = self.orders[out_trade_no]
        data = {
            "appid": order.appid,
            "mchid": self.keys.mchid,
            "out_trade_no": order.out_trade_no,
            "trade_type": "JSAPI",
            "trade_state": order.trade_state,
            "trade_state_desc": {"SUCCESS": "支付成功", "CLOSED": "已关闭"}.get(
                order.trade_state, "未支付"
            ),
            "payer": {"openid": order.openid},
            "amount": {"total": order.total, "currency": "CNY"},
        }
        if order.trade_state in ("SUCCESS", "REFUND"):
            data.update(
                transaction_id=order.transaction_id,
                bank_type="OTHERS",
                success_time=order.success_time,
            )
            data["amount"].update(payer_total=order.total, payer_currency="CNY")
        return data

    def payment_notification(
        self, out_trade_no: str, *, timestamp: int | None = None
    ) -> tuple[dict, str]:
        return self.keys.notification(
            event_type="TRANSACTION.SUCCESS",
            resource=self.order_resource(out_trade_no),
            original_type="transaction",
            timestamp=timestamp,
        )

    def notify(self, out_trade_no: str) -> int | str:
        """Send (again) the payment notification of a paid order to its notify URL."""
        headers, body = self.payment_notification(out_trade_no)
        return self._post(self.orders[out_trade_no].notify_url, headers, body)

    def refund_finish(self, out_refund_no: str, *, status: str = "SUCCESS", notify: bool = True):
        """WeChat finishes a refund (SUCCESS, CLOSED or ABNORMAL) and notifies."""
        with self._lock:
            refund = self.refunds[out_refund_no]
            refund.status = status
            if status == "SUCCESS":
                refund.success_time = dt.datetime.now(CHINA).isoformat(timespec="seconds")
            else:
                self.orders[refund.out_trade_no].refunded -= refund.refund
        if notify:
            headers, body = self.refund_notification(out_refund_no)
            return self._post(refund.notify_url, headers, body)
        return None

    def refund_notification(self, out_refund_no: str) -> tuple[dict, str]:
        refund = self.refunds[out_refund_no]
        resource = {
            "mchid": self.keys.mchid,
            "out_trade_no": refund.out_trade_no,
            "transaction_id": refund.transaction_id,
            "out_refund_no": refund.out_refund_no,
            "refund_id": refund.refund_id,
            "refund_status": refund.status,
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": refund.total,
                "refund": refund.refund,
                "payer_total": refund.total,
                "payer_refund": refund.refund,
            },
        }
        if refund.success_time:
            resource["success_time"] = refund.success_time
        return self.keys.notification(
            event_type=f"REFUND.{refund.status}", resource=resource, original_type="refund"
        )

    def _post(self, url: str, headers: dict, body: str) -> int | str:
        request = urllib.request.Request(
            url,
            data=body.encode(),
            headers={**headers, "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                outcome: int | str = response.status
        except urllib.error.HTTPError as exc:
            outcome = exc.code
        except (urllib.error.URLError, TimeoutError) as exc:
            outcome = str(exc)
        self.notified.append((url, outcome))
        return outcome

    # ---- the API --------------------------------------------------------------------

    def _refund_resource(self, refund: FakeRefund) -> dict:
        return {
            "refund_id": refund.refund_id,
            "out_refund_no": refund.out_refund_no,
            "transaction_id": refund.transaction_id,
            "out_trade_no": refund.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": dt.datetime.now(CHINA).isoformat(timespec="seconds"),
            "status": refund.status,
            "amount": {
                "total": refund.total,
                "refund": refund.refund,
                "payer_total": refund.total,
                "payer_refund": refund.refund,
                "currency": "CNY",
            },
            **({"success_time": refund.success_time} if refund.success_time else {}),
        }

    def handle(self, method: str, path: str, body: str) -> tuple[int, dict | None]:
        """One verified API call: (status, answer)."""
        payload = json.loads(body) if body else None
        self.calls.append((method, path, payload))
        url = urlparse(path)
        parts = url.path.strip("/").split("/")
        with self._lock:
            if method == "POST" and url.path == "/v3/pay/transactions/jsapi":
                return self._jsapi(payload)
            if parts[:4] == ["v3", "pay", "transactions", "out-trade-no"] and len(parts) >= 5:
                order = self.orders.get(parts[4])
                if order is None:
                    return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
                if method == "GET" and len(parts) == 5:
                    if url.query != f"mchid={self.keys.mchid}":
                        return 400, {"code": "PARAM_ERROR", "message": "mchid 与订单不符"}
                    return 200, self.order_resource(order.out_trade_no)
                if method == "POST" and parts[5:] == ["close"]:
                    if order.trade_state in ("SUCCESS", "REFUND"):
                        return 400, {"code": "ORDERPAID", "message": "订单已支付"}
                    order.trade_state = "CLOSED"
                    return 204, None
            if method == "POST" and url.path == "/v3/refund/domestic/refunds":
                return self._refund(payload)
            if method == "GET" and parts[:4] == ["v3", "refund", "domestic", "refunds"]:
                refund = self.refunds.get(parts[4] if len(parts) > 4 else "")
                if refund is None:
                    return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"}
                return 200, self._refund_resource(refund)
        return 404, {"code": "NOT_FOUND", "message": "无此接口"}

    def _jsapi(self, payload: dict) -> tuple[int, dict]:
        required = ("appid", "mchid", "description", "out_trade_no", "notify_url", "amount")
        missing = [k for k in required if not payload.get(k)]
        openid = (payload.get("payer") or {}).get("openid")
        if missing or not openid:
            return 400, {"code": "PARAM_ERROR", "message": f"缺少参数 {missing or ['payer']}"}
        if payload["mchid"] != self.keys.mchid or payload["appid"] != self.keys.appid:
            return 400, {"code": "PARAM_ERROR", "message": "appid 和 mch_id 不匹配"}
        total = payload["amount"].get("total")
        if not isinstance(total, int) or total <= 0:
            return 400, {"code": "PARAM_ERROR", "message": "金额不正确"}
        existing = self.orders.get(payload["out_trade_no"])
        if existing is not None:
            if existing.trade_state == "SUCCESS":
                return 400, {"code": "ORDERPAID", "message": "该订单已支付"}
            if (existing.total, existing.openid) != (total, openid):
                return 400, {"code": "INVALID_REQUEST", "message": "201 商户订单号重复"}
            return 200, {"prepay_id": existing.prepay_id}
        order = FakeOrder(
            out_trade_no=payload["out_trade_no"],
            appid=payload["appid"],
            description=payload["description"],
            total=total,
            openid=openid,
            notify_url=payload["notify_url"],
            prepay_id="wx" + secrets.token_hex(14),
        )
        self.orders[order.out_trade_no] = order
        return 200, {"prepay_id": order.prepay_id}

    def _refund(self, payload: dict) -> tuple[int, dict]:
        order = self.orders.get(payload.get("out_trade_no", ""))
        if order is None or order.trade_state not in ("SUCCESS", "REFUND"):
            return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在或未支付"}
        amount = payload.get("amount") or {}
        existing = self.refunds.get(payload.get("out_refund_no", ""))
        if existing is not None:  # the same refund number again: the same refund
            return 200, self._refund_resource(existing)
        if amount.get("total") != order.total:
            return 400, {"code": "PARAM_ERROR", "message": "订单金额不符"}
        if not 0 < amount.get("refund", 0) <= order.total - order.refunded:
            return 403, {"code": "NOT_ENOUGH", "message": "可退款金额不足"}
        order.refunded += amount["refund"]
        order.trade_state = "REFUND"
        refund = FakeRefund(
            out_refund_no=payload["out_refund_no"],
            out_trade_no=order.out_trade_no,
            transaction_id=order.transaction_id,
            refund_id="5030" + secrets.token_hex(12),
            refund=amount["refund"],
            total=order.total,
            notify_url=payload.get("notify_url", ""),
        )
        self.refunds[refund.out_refund_no] = refund
        return 200, self._refund_resource(refund)

    def verify(self, method: str, path: str, body: str, authorization: str) -> str | None:
        """Why a request's merchant signature does not verify, or None."""
        scheme, _sep, rest = (authorization or "").partition(" ")
        fields = dict(_AUTH.findall(rest))
        if scheme != "WECHATPAY2-SHA256-RSA2048" or fields.get("mchid") != self.keys.mchid:
            return "Authorization 格式或商户号不正确"
        if fields.get("serial_no") != self.keys.cert_serial_no:
            return "商户证书序列号不正确"
        message = (
            f"{method}\n{path}\n{fields.get('timestamp')}\n{fields.get('nonce_str')}\n{body}\n"
        )
        try:
            self.keys.merchant_key.public_key().verify(
                base64.b64decode(fields.get("signature", "")),
                message.encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError):
            return "签名错误"
        return None

    def __enter__(self) -> FakeWeChatPay:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                problem = fake.verify(method, self.path, body, self.headers.get("Authorization"))
                if problem:
                    status, answer = 401, {"code": "SIGN_ERROR", "message": problem}
                else:
                    status, answer = fake.handle(method, self.path, body)
                text = json.dumps(answer, ensure_ascii=False) if answer is not None else ""
                data = text.encode()
                self.send_response(status)
                for name, value in fake.keys.signed_headers(text).items():
                    self.send_header(name, value)
                self.send_header("Request-ID", secrets.token_hex(8))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                if self.path.startswith("/fake/pay/"):
                    return self._driver_pays(self.path.removeprefix("/fake/pay/"))
                self._serve("POST")

            def _driver_pays(self, out_trade_no: str) -> None:
                """Development only: the driver confirms the payment in WeChat (what the
                phone's WeChat does when the page calls getBrandWCPayRequest)."""
                try:
                    fake.pay(out_trade_no)
                    status, answer = 200, {"trade_state": "SUCCESS"}
                except (KeyError, ValueError) as exc:
                    status, answer = 400, {"code": "INVALID_REQUEST", "message": str(exc)}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    """Serve the fake until killed (`make run`: the demo driver's WeChat Pay)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--keys", type=Path, required=True, help="development keys (JSON)")
    args = parser.parse_args()
    with FakeWeChatPay(keys=PayKeys.load_or_generate(args.keys), port=args.port) as fake:
        print(f"fake WeChat Pay on {fake.url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
