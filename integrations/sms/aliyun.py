"""Aliyun SMS (阿里云短信服务, Dysmsapi 2017-05-25) over its HTTP RPC API.

Wire format: ``GET https://dysmsapi.aliyuncs.com/?<params>&Signature=..`` with the common
parameters (AccessKeyId, Action=SendSms, Format=JSON, RegionId, SignatureMethod=HMAC-SHA1,
SignatureNonce, SignatureVersion=1.0, Timestamp in UTC ``YYYY-MM-DDThh:mm:ssZ``,
Version=2017-05-25) and SendSms's (PhoneNumbers, SignName, TemplateCode, TemplateParam as
JSON). The signature (RPC v1): sort the parameters, percent-encode names and values
(RFC 3986, space as %20, ``~`` kept), join with ``&``; sign
``GET&%2F&<percent-encoded query>`` with HMAC-SHA1 under ``<secret>&``, base64.

Answer: ``{"Code": "OK", "Message": "OK", "BizId": .., "RequestId": ..}``, or another Code
(``isv.MOBILE_NUMBER_ILLEGAL``, ``isv.BUSINESS_LIMIT_CONTROL``, ``SignatureDoesNotMatch``,
``InvalidAccessKeyId.NotFound``) with HTTP 200 or 4xx.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid

from integrations.sms import SmsError


def percent_encode(value: str) -> str:
    return urllib.parse.quote(str(value), safe="~")


def rpc_signature(params: dict[str, str], *, secret: str, method: str = "GET") -> str:
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items())
    )
    to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class AliyunSmsClient:
    def __init__(
        self,
        *,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        template_code: str,
        endpoint: str = "https://dysmsapi.aliyuncs.com",
        region: str = "cn-hangzhou",
        timeout: float = 5.0,
    ):
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_name = sign_name
        self.template_code = template_code
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.timeout = timeout

    def send_code(self, *, phone: str, code: str) -> str:
        params = {
            "AccessKeyId": self.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": self.region,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
            "PhoneNumbers": phone,
            "SignName": self.sign_name,
            "TemplateCode": self.template_code,
            "TemplateParam": json.dumps({"code": code}),
        }
        params["Signature"] = rpc_signature(params, secret=self.access_key_secret)
        url = f"{self.endpoint}/?{urllib.parse.urlencode(params, quote_via=urllib.parse.quote)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                answer = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:  # Aliyun answers errors as JSON too
            try:
                answer = json.loads(exc.read().decode("utf-8"))
            except ValueError:
                raise SmsError(f"Aliyun SMS HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            raise SmsError(f"Aliyun SMS unreachable: {exc}") from exc
        if not isinstance(answer, dict) or answer.get("Code") != "OK":
            code = answer.get("Code", "") if isinstance(answer, dict) else ""
            message = answer.get("Message", "") if isinstance(answer, dict) else ""
            raise SmsError(f"Aliyun SMS refused: {code} {message}", code=code)
        return str(answer.get("BizId", ""))
