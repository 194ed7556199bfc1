"""The notification outbox and the WeChat template sender, against a local fake WeChat API."""

import threading
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, connections
from django.utils import timezone

from faults.models import Notification
from faults.notifications import LogSender, NotificationError, WeChatTemplateSender
from faults.services.notify import (
    MAX_ATTEMPTS,
    SessionEnded,
    notification_send,
    notifications_enqueue,
)
from integrations.wechat import WeChatClient
from integrations.wechat.fake import FakeWeChat

from .conftest import at


def notification_enqueue(*, session, **message):
    return notifications_enqueue(messages=[SessionEnded(session, **message)])


@pytest.fixture
def wechat():
    cache.delete("wechat-token:wx-app")
    with FakeWeChat(secret="s3cret") as fake:
        yield fake, fake.url
    cache.delete("wechat-token:wx-app")


def sender(base_url, secret="s3cret"):
    return WeChatTemplateSender(
        client=WeChatClient(app_id="wx-app", app_secret=secret, base_url=base_url),
        templates={"charge_finished": "TPL-FIN", "being_checked": "TPL-CHK"},
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
        [first] = notification_enqueue(
            session=session, being_checked=False, energy_wh=Decimal(20000), amount=Decimal("23.00")
        )
        again = notification_enqueue(session=session, being_checked=True)
    assert len(callbacks) == 1
    assert again == []
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
    [notification] = notification_enqueue(session=session, being_checked=True)

    class Down(LogSender):
        def send(self, **kwargs):
            raise NotificationError("down")

    for attempt in range(1, MAX_ATTEMPTS + 1):
        result = notification_send(notification_id=notification.pk, sender=Down())
        assert result.attempts == attempt
    assert (result.state, result.last_error) == ("failed", "down")


def test_log_sender_delivers(make_session):
    session = make_session()
    [notification] = notification_enqueue(session=session, being_checked=True)
    sent = notification_send(notification_id=notification.pk, sender=LogSender())
    assert (sent.state, sent.sender) == ("sent", "log")


def test_configured_sender_follows_the_settings(settings):
    from faults.notifications import LogSender, configured_sender

    assert isinstance(configured_sender(), LogSender)
    settings.FAULTS_NOTIFICATION_SENDER = "wechat"
    settings.WECHAT_APP_ID = "wx-app"
    settings.WECHAT_TEMPLATE_CHARGE_FINISHED = "TPL-FIN"
    settings.WECHAT_TEMPLATE_BEING_CHECKED = "TPL-CHK"
    settings.WECHAT_TEMPLATE_REFUND = "TPL-REF"
    settings.WECHAT_TEMPLATE_INVOICE = "TPL-INV"
    settings.WECHAT_API_BASE = "http://fake"
    chosen = configured_sender()
    assert isinstance(chosen, WeChatTemplateSender)
    assert (chosen.client.app_id, chosen.templates, chosen.client.base_url) == (
        "wx-app",
        {
            "charge_finished": "TPL-FIN",
            "being_checked": "TPL-CHK",
            "refund_approved": "TPL-REF",
            "refund_rejected": "TPL-REF",
            "refund_refunded": "TPL-REF",
            "refund_failed": "TPL-REF",
            "invoice_issued": "TPL-INV",
            "invoice_rejected": "TPL-INV",
        },
        "http://fake",
    )


@pytest.mark.django_db(transaction=True)
def test_the_provider_is_called_with_no_transaction_and_no_lock(make_session):
    """A slow WeChat must not hold a row lock: while the sender runs, no transaction is
    open and another connection can lock the notification at once."""
    session = make_session(member=True)
    [notification] = notification_enqueue(session=session, being_checked=True)
    seen = {}

    class Probe(LogSender):
        def send(self, **kwargs):
            seen["in_transaction"] = connection.in_atomic_block

            def lock_elsewhere():
                other = connections.create_connection("default")
                try:
                    with other.cursor() as cursor:
                        cursor.execute("SET lock_timeout = '200ms'")
                        cursor.execute(
                            "SELECT id FROM faults_notification WHERE id = %s FOR UPDATE NOWAIT",
                            [notification.pk],
                        )
                        seen["locked_by_other"] = cursor.fetchone()[0]
                finally:
                    other.close()

            thread = threading.Thread(target=lock_elsewhere)
            thread.start()
            thread.join(5)
            # A second worker meanwhile finds it leased and leaves it alone.
            seen["second_worker"] = notification_send(
                notification_id=notification.pk, sender=LogSender()
            )
            return "msg-1"

    sent = notification_send(notification_id=notification.pk, sender=Probe())
    assert seen == {
        "in_transaction": False,
        "locked_by_other": notification.pk,
        "second_worker": None,
    }
    assert (sent.state, sent.external_id, sent.attempts, sent.claimed_until) == (
        "sent",
        "msg-1",
        1,
        None,
    )


@pytest.mark.django_db
def test_a_dead_workers_lease_expires_and_the_message_is_sent_again(make_session):
    session = make_session(member=True)
    [notification] = notification_enqueue(session=session, being_checked=True)
    # A worker claimed it and died mid-send: its lease is still running.
    Notification.objects.filter(pk=notification.pk).update(
        attempts=1, claimed_until=timezone.now() + timezone.timedelta(seconds=30)
    )
    assert notification_send(notification_id=notification.pk, sender=LogSender()) is None
    Notification.objects.filter(pk=notification.pk).update(
        claimed_until=timezone.now() - timezone.timedelta(seconds=1)
    )
    sent = notification_send(notification_id=notification.pk, sender=LogSender())
    assert (sent.state, sent.attempts, sent.claimed_until) == ("sent", 2, None)
