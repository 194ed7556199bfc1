"""The notification outbox and the WeChat template sender, against a local fake WeChat API."""

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.cache import cache

from faults.models import Notification
from faults.notifications import LogSender, NotificationError, WeChatTemplateSender
from faults.services.notify import MAX_ATTEMPTS, notification_enqueue, notification_send

from .conftest import at


class FakeWeChat(BaseHTTPRequestHandler):
    """Speaks the two WeChat endpoints the sender uses; records what it received."""

    calls: list
    tokens: list  # tokens handed out, newest last
    fail_next_send_with: list  # errcodes to answer the next sends with

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
        self.calls.append(("GET", url.path, query, None))
        if query.get("secret") != ["s3cret"]:
            return self._answer({"errcode": 40125, "errmsg": "invalid appsecret"})
        token = f"TOKEN{len(self.tokens) + 1}"
        self.tokens.append(token)
        return self._answer({"access_token": token, "expires_in": 7200})

    def do_POST(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8"))
        self.calls.append(("POST", url.path, query, body))
        if self.fail_next_send_with:
            code = self.fail_next_send_with.pop(0)
            return self._answer({"errcode": code, "errmsg": "simulated"})
        if query.get("access_token") != [self.tokens[-1]]:
            return self._answer({"errcode": 40001, "errmsg": "invalid credential"})
        return self._answer({"errcode": 0, "errmsg": "ok", "msgid": 200228332})


@pytest.fixture
def wechat():
    handler = type("Handler", (FakeWeChat,), {"calls": [], "tokens": [], "fail_next_send_with": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    cache.delete("wechat-token:wx-app")
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    cache.delete("wechat-token:wx-app")


def sender(base_url, secret="s3cret"):
    return WeChatTemplateSender(
        app_id="wx-app",
        app_secret=secret,
        templates={"charge_finished": "TPL-FIN", "being_checked": "TPL-CHK"},
        base_url=base_url,
    )


def test_wechat_template_message_wire_format(wechat):
    handler, url = wechat
    msgid = sender(url).send(
        openid="o-123",
        kind="charge_finished",
        payload={
            "order_no": "20261101100000000001",
            "station": "Torch Park",
            "energy_kwh": "20.00",
            "amount": "23.00",
            "ended_at": "2026-11-01 11:00",
        },
    )
    assert msgid == "200228332"
    (get, post) = handler.calls
    assert get[:3] == (
        "GET",
        "/cgi-bin/token",
        {"grant_type": ["client_credential"], "appid": ["wx-app"], "secret": ["s3cret"]},
    )
    assert post[:3] == ("POST", "/cgi-bin/message/template/send", {"access_token": ["TOKEN1"]})
    assert post[3] == {
        "touser": "o-123",
        "template_id": "TPL-FIN",
        "data": {
            "first": {"value": "Charging finished"},
            "keyword1": {"value": "20261101100000000001"},
            "keyword2": {"value": "Torch Park"},
            "keyword3": {"value": "20.00 kWh"},
            "keyword4": {"value": "23.00 yuan"},
            "keyword5": {"value": "2026-11-01 11:00"},
            "remark": {"value": "Thank you for charging with us."},
        },
    }


def test_token_is_cached_and_refreshed_once_when_expired(wechat):
    handler, url = wechat
    wx = sender(url)
    wx.send(openid="o-1", kind="being_checked", payload={})
    wx.send(openid="o-1", kind="being_checked", payload={})
    assert [c[1] for c in handler.calls].count("/cgi-bin/token") == 1
    handler.fail_next_send_with.append(42001)  # access_token expired
    wx.send(openid="o-1", kind="being_checked", payload={})
    assert handler.tokens == ["TOKEN1", "TOKEN2"]


@pytest.mark.parametrize(
    ("secret", "fail", "message"),
    [
        ("wrong", [], "WeChat token error 40125: invalid appsecret"),
        ("s3cret", [43004], "WeChat send error 43004: simulated"),
    ],
)
def test_wechat_errors_are_named(wechat, secret, fail, message):
    handler, url = wechat
    handler.fail_next_send_with.extend(fail)
    with pytest.raises(NotificationError, match=message):
        sender(url, secret).send(openid="o-1", kind="being_checked", payload={})


def test_unreachable_wechat_is_a_notification_error():
    with pytest.raises(NotificationError, match="unreachable"):
        sender("http://127.0.0.1:9").send(openid="o-1", kind="being_checked", payload={})


def test_charge_finished_is_sent_exactly_once(
    make_session, wechat, django_capture_on_commit_callbacks
):
    handler, url = wechat
    session = make_session(stopped_at=at(60))
    with django_capture_on_commit_callbacks() as callbacks:
        first = notification_enqueue(
            session=session, being_checked=False, energy_wh=Decimal(20000), amount=Decimal("23.00")
        )
        again = notification_enqueue(session=session, being_checked=True)
    assert len(callbacks) == 1
    assert again is None
    assert first.payload == {
        "order_no": session.order_no,
        "station": "Torch Park",
        "ended_at": "2026-11-01 11:00",
        "energy_kwh": "20.00",
        "amount": "23.00",
    }
    sent = notification_send(notification_id=first.pk, sender=sender(url))
    assert (sent.state, sent.external_id, sent.attempts) == ("sent", "200228332", 1)
    assert notification_send(notification_id=first.pk, sender=sender(url)) is None
    assert [c[1] for c in handler.calls].count("/cgi-bin/message/template/send") == 1
    assert Notification.objects.filter(session=session).count() == 1


def test_failed_sends_stay_pending_then_fail(make_session):
    session = make_session(member=True)
    notification = notification_enqueue(session=session, being_checked=True)

    class Down(LogSender):
        def send(self, **kwargs):
            raise NotificationError("down")

    for attempt in range(1, MAX_ATTEMPTS + 1):
        result = notification_send(notification_id=notification.pk, sender=Down())
        assert result.attempts == attempt
    assert (result.state, result.last_error) == ("failed", "down")


def test_log_sender_delivers(make_session):
    session = make_session()
    notification = notification_enqueue(session=session, being_checked=True)
    sent = notification_send(notification_id=notification.pk, sender=LogSender())
    assert (sent.state, sent.sender) == ("sent", "log")


def test_configured_sender_follows_the_settings(settings):
    from faults.notifications import LogSender, configured_sender

    assert isinstance(configured_sender(), LogSender)
    settings.FAULTS_NOTIFICATION_SENDER = "wechat"
    settings.WECHAT_APP_ID = "wx-app"
    settings.WECHAT_TEMPLATE_CHARGE_FINISHED = "TPL-FIN"
    settings.WECHAT_TEMPLATE_BEING_CHECKED = "TPL-CHK"
    settings.WECHAT_API_BASE = "http://fake"
    chosen = configured_sender()
    assert isinstance(chosen, WeChatTemplateSender)
    assert (chosen.app_id, chosen.templates, chosen.base_url) == (
        "wx-app",
        {"charge_finished": "TPL-FIN", "being_checked": "TPL-CHK"},
        "http://fake",
    )
