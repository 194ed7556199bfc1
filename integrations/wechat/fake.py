"""A local WeChat API server speaking the wire format `WeChatClient` uses, for tests and
development: token and template messages, with the errors WeChat gives.

    with FakeWeChat(secret="s3cret") as wechat:   # listens on 127.0.0.1, a free port
        client = WeChatClient(app_id="wx", app_secret="s3cret", base_url=wechat.url)
        wechat.fail_next_send_with.append(40001)
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class FakeWeChat:
    def __init__(self, *, secret: str = "s3cret"):
        self.secret = secret
        self.calls: list[tuple[str, str, dict, dict | None]] = []
        self.tokens: list[str] = []  # handed out, newest last (the only valid one)
        self.fail_next_send_with: list[int] = []  # errcodes for the next sends
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

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
                if query.get("secret") != [fake.secret]:
                    return self._answer({"errcode": 40125, "errmsg": "invalid appsecret"})
                token = f"TOKEN{len(fake.tokens) + 1}"
                fake.tokens.append(token)
                return self._answer({"access_token": token, "expires_in": 7200})

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

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
