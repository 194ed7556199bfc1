"""The WeChat official-account API client: driver notifications and driver login (web-page
OAuth); with WeChat Pay's own library beside it, payments add their calls here.

Wire format (公众号 server API, JSON over HTTPS):
- ``GET /cgi-bin/token?grant_type=client_credential&appid=..&secret=..`` →
  ``{"access_token": "...", "expires_in": 7200}`` or ``{"errcode": 40013, "errmsg": ...}``;
- ``POST /cgi-bin/message/template/send?access_token=..`` with
  ``{"touser": openid, "template_id": ..., "data": {"first": {"value": ...}, ...}}`` →
  ``{"errcode": 0, "errmsg": "ok", "msgid": 200228332}``;
- the driver's browser is sent to ``/connect/oauth2/authorize?appid=..&redirect_uri=..
  &response_type=code&scope=snsapi_base&state=..#wechat_redirect`` (open.weixin.qq.com) and
  comes back to ``redirect_uri?code=..&state=..``; then
  ``GET /sns/oauth2/access_token?appid=..&secret=..&code=..&grant_type=authorization_code``
  → ``{"access_token": .., "expires_in": 7200, "refresh_token": .., "openid": ..,
  "scope": "snsapi_base", "unionid": .. (when the account is bound to an open platform)}``
  or ``{"errcode": 40029, "errmsg": "invalid code"}`` (40163: code been used).

Never call it inside a database transaction: a slow WeChat would hold row locks.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

# Access-token errors after which a fresh token is fetched and the call retried once.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})


class WeChatError(Exception):
    """WeChat could not be reached or refused the call; ``code`` is its errcode, if any."""

    def __init__(self, message: str, *, code: int | None = None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class OAuthIdentity:
    """Who the driver is to WeChat: openid (per official account), unionid (per open
    platform, when bound; empty otherwise)."""

    openid: str
    unionid: str = ""


class WeChatClient:
    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        base_url: str = "https://api.weixin.qq.com",
        timeout: float = 5.0,
    ):
        self.app_id = app_id
        self.app_secret = app_secret
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
                answer = json.loads(response.read().decode("utf-8"))
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            raise WeChatError(f"WeChat API unreachable: {exc}") from exc
        if not isinstance(answer, dict):
            raise WeChatError("WeChat API answered something that is not a JSON object")
        return answer

    def access_token(self, *, refresh: bool = False) -> str:
        """The server access token, cached (shared by every process) until shortly
        before WeChat expires it."""
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
            raise WeChatError(
                f"WeChat token error {answer.get('errcode')}: {answer.get('errmsg')}",
                code=answer.get("errcode"),
            )
        ttl = max(int(answer.get("expires_in", 7200)) - 300, 60)
        cache.set(self._token_key, answer["access_token"], ttl)
        return answer["access_token"]

    def template_send(
        self, *, openid: str, template_id: str, data: dict[str, str], url: str = ""
    ) -> str:
        """Send one template message; returns WeChat's message id."""
        if not openid:
            raise WeChatError("member has no WeChat openid")
        body: dict = {
            "touser": openid,
            "template_id": template_id,
            "data": {k: {"value": str(v)} for k, v in data.items()},
        }
        if url:
            body["url"] = url
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
        raise WeChatError(f"WeChat send error {code}: {answer.get('errmsg')}", code=code)

    def oauth_authorize_url(
        self, *, redirect_uri: str, state: str = "", authorize_base: str = ""
    ) -> str:
        """Where the driver's browser goes to log in silently (scope snsapi_base)."""
        query = urllib.parse.urlencode(
            {
                "appid": self.app_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": "snsapi_base",
                "state": state,
            }
        )
        base = authorize_base or "https://open.weixin.qq.com/connect/oauth2/authorize"
        return f"{base}?{query}#wechat_redirect"

    def oauth_identity(self, *, code: str) -> OAuthIdentity:
        """Exchange the web-page OAuth code WeChat gave the driver's browser for the
        driver's openid (and unionid). A code works once, for five minutes."""
        answer = self._call(
            "/sns/oauth2/access_token",
            query={
                "appid": self.app_id,
                "secret": self.app_secret,
                "code": code,
                "grant_type": "authorization_code",
            },
        )
        if not answer.get("openid"):
            raise WeChatError(
                f"WeChat OAuth error {answer.get('errcode')}: {answer.get('errmsg')}",
                code=answer.get("errcode"),
            )
        return OAuthIdentity(openid=answer["openid"], unionid=answer.get("unionid") or "")


def configured_client() -> WeChatClient:
    """The official account's client from settings (``WECHAT_APP_ID``, ``WECHAT_APP_SECRET``,
    ``WECHAT_API_BASE``): the one every WeChat use goes through."""
    return WeChatClient(
        app_id=settings.WECHAT_APP_ID,
        app_secret=settings.WECHAT_APP_SECRET,
        base_url=settings.WECHAT_API_BASE,
    )
