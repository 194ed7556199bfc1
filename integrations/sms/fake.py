"""A local Aliyun SMS (Dysmsapi SendSms) server for tests: it checks the RPC v1 signature,
the common parameters and the phone number as Aliyun does, and keeps what it "sent".

    with FakeAliyunSms(access_key_id="id", access_key_secret="secret") as sms:
        client = AliyunSmsClient(access_key_id="id", access_key_secret="secret",
                                 sign_name="充电网", template_code="SMS_1", endpoint=sms.url)
        sms.fail_next_with.append("isv.BUSINESS_LIMIT_CONTROL")
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

from integrations.sms.aliyun import rpc_signature

REQUIRED = (
    "AccessKeyId",
    "Action",
    "Format",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "Timestamp",
    "Version",
    "PhoneNumbers",
    "SignName",
    "TemplateCode",
)


class FakeAliyunSms:
    def __init__(self, *, access_key_id: str = "id", access_key_secret: str = "secret"):
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sent: list[dict] = []  # accepted SendSms parameters
        self.fail_next_with: list[str] = []  # business error codes for the next sends
        self._nonces: set[str] = set()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def codes_sent_to(self, phone: str) -> list[str]:
        return [
            json.loads(p["TemplateParam"])["code"] for p in self.sent if p["PhoneNumbers"] == phone
        ]

    def _answer_for(self, params: dict[str, str]) -> tuple[int, dict]:
        request_id = str(uuid.uuid4()).upper()

        def error(status: int, code: str, message: str) -> tuple[int, dict]:
            return status, {"Code": code, "Message": message, "RequestId": request_id}

        missing = [name for name in REQUIRED if not params.get(name)]
        if missing:
            return error(400, "MissingParameter", f"{missing[0]} is mandatory for this action.")
        if params["AccessKeyId"] != self.access_key_id:
            return error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        signature = params.pop("Signature", "")
        if signature != rpc_signature(params, secret=self.access_key_secret):
            return error(400, "SignatureDoesNotMatch", "Specified signature is not matched.")
        if params["SignatureNonce"] in self._nonces:
            return error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self._nonces.add(params["SignatureNonce"])
        if params["Action"] != "SendSms" or params["Version"] != "2017-05-25":
            return error(400, "InvalidAction.NotFound", "Specified api is not found.")
        if not re.fullmatch(r"1\d{10}", params["PhoneNumbers"]):
            return 200, {
                "Code": "isv.MOBILE_NUMBER_ILLEGAL",
                "Message": "非法手机号",
                "RequestId": request_id,
            }
        if self.fail_next_with:
            code = self.fail_next_with.pop(0)
            return 200, {"Code": code, "Message": "simulated", "RequestId": request_id}
        self.sent.append(params)
        return 200, {
            "Code": "OK",
            "Message": "OK",
            "BizId": f"{len(self.sent):06d}^0",
            "RequestId": request_id,
        }

    def __enter__(self) -> FakeAliyunSms:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                params = dict(parse_qsl(urlparse(self.path).query, keep_blank_values=True))
                status, body = fake._answer_for(params)
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
