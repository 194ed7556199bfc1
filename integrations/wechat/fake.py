"""A local WeChat API server speaking the wire format `WeChatClient` uses, for tests and
development: token, template messages and web-page OAuth, with the errors WeChat gives.

    with FakeWeChat(secret="s3cret") as wechat:   # listens on 127.0.0.1, a free port
        client = WeChatClient(app_id="wx", app_secret="s3cret", base_url=wechat.url)
        wechat.fail_next_send_with.append(40001)
        code = wechat.oauth_code_for("openid-1", "unionid-1")   # as WeChat's redirect

OAuth: ``/connect/oauth2/authorize`` (open.weixin.qq.com's page) redirects the browser at
once to ``redirect_uri?code=..&state=..`` for the fake's current WeChat user
(``oauth_user``), as WeChat does for a snsapi_base login; ``/sns/oauth2/access_token``
exchanges a code once (40029 unknown code, 40163 code been used). ``python -m
integrations.wechat.fake --port 8010`` runs it for `make run`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse


class FakeWeChat:
    def __init__(
        self,
        *,
        secret: str = "s3cret",
        app_id: str = "",
        port: int = 0,
        oauth_user: tuple[str, str] = ("oDemoDriver0001", ""),
    ):
        self.secret = secret
        self.app_id = app_id  # when set, calls naming another app id get 40013
        self.port = port
        self.oauth_user = oauth_user  # (openid, unionid) of whoever "opens" the H5 page
        self.oauth_codes: dict[str, tuple[str, str]] = {}  # code → (openid, unionid)
        self.oauth_used: set[str] = set()
        self.calls: list[tuple[str, str, dict, dict | None]] = []
        self.tokens: list[str] = []  # handed out, newest last (the only valid one)
        self.fail_next_send_with: list[int] = []  # errcodes for the next sends
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def oauth_code_for(self, openid: str, unionid: str = "") -> str:
        """A fresh code, as WeChat puts in the redirect after the driver's login."""
        code = secrets.token_hex(16)
        self.oauth_codes[code] = (openid, unionid)
        return code

    def sent(self) -> list[dict]:
        """Bodies of the template messages WeChat accepted."""
        return [c[3] for c in self.calls if c[1] == "/cgi-bin/message/template/send"]

    def __enter__(self) -> FakeWeChat:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlparse(self.path)
                query = parse_qs(url.query)
                fake.calls.append(("GET", url.path, query, None))
                if url.path == "/connect/oauth2/authorize":
                    return self._authorize(query)
                if fake.app_id and query.get("appid") != [fake.app_id]:
                    return self._answer({"errcode": 40013, "errmsg": "invalid appid"})
                if query.get("secret") != [fake.secret]:
                    return self._answer({"errcode": 40125, "errmsg": "invalid appsecret"})
                if url.path == "/sns/oauth2/access_token":
                    return self._oauth_access_token(query)
                token = f"TOKEN{len(fake.tokens) + 1}"
                fake.tokens.append(token)
                return self._answer({"access_token": token, "expires_in": 7200})

            def _authorize(self, query: dict) -> None:
                redirect = (query.get("redirect_uri") or [""])[0]
                if not redirect or query.get("response_type") != ["code"]:
                    self.send_response(400)
                    self.end_headers()
                    return
                code = fake.oauth_code_for(*fake.oauth_user)
                state = (query.get("state") or [""])[0]
                glue = "&" if "?" in redirect else "?"
                self.send_response(302)
                self.send_header(
                    "Location", f"{redirect}{glue}{urlencode({'code': code, 'state': state})}"
                )
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _oauth_access_token(self, query: dict) -> None:
                if query.get("grant_type") != ["authorization_code"]:
                    return self._answer({"errcode": 40002, "errmsg": "invalid grant_type"})
                code = (query.get("code") or [""])[0]
                if code in fake.oauth_used:
                    return self._answer({"errcode": 40163, "errmsg": "code been used"})
                found = fake.oauth_codes.pop(code, None)
                if found is None:
                    return self._answer({"errcode": 40029, "errmsg": "invalid code"})
                fake.oauth_used.add(code)
                openid, unionid = found
                body = {
                    "access_token": f"OAUTH{secrets.token_hex(8)}",
                    "expires_in": 7200,
                    "refresh_token": f"REFRESH{secrets.token_hex(8)}",
                    "openid": openid,
                    "scope": "snsapi_base",
                    "is_snapshotuser": 0,
                }
                return self._answer({**body, **({"unionid": unionid} if unionid else {})})

            def do_POST(self):
                url = urlparse(self.path)
                query = parse_qs(url.query)
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length).decode("utf-8"))
                fake.calls.append(("POST", url.path, query, body))
                if fake.fail_next_send_with:
                    code = fake.fail_next_send_with.pop(0)
                    return self._answer({"errcode": code, "errmsg": "simulated"})
                if not fake.tokens or query.get("access_token") != [fake.tokens[-1]]:
                    return self._answer({"errcode": 40001, "errmsg": "invalid credential"})
                return self._answer({"errcode": 0, "errmsg": "ok", "msgid": 200228332})

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    """Serve the fake until killed (`make run`: the demo driver's WeChat)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--secret", default="s3cret")
    parser.add_argument("--openid", default="oDemoDriver0001")
    args = parser.parse_args()
    with FakeWeChat(secret=args.secret, port=args.port, oauth_user=(args.openid, "")) as fake:
        print(f"fake WeChat on {fake.url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
