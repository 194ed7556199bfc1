"""Recharges through the fake WeChat Pay: the library's real signing, verification and
AES-256-GCM decryption run against it. Credited exactly once, whatever arrives when."""

import base64
import datetime as dt
from decimal import Decimal as D

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.events import PAYMENT_RECEIVED, RECHARGE_CLOSED
from billing.models import EntryKind, LedgerEntry, Recharge, RechargeState
from billing.services.recharges import (
    PAY_NOTIFY_PATH,
    NotificationRefused,
    PaymentUnavailable,
    RechargeError,
    pay_notification_handle,
    recharge_create,
    recharge_paid_record,
    recharges_reconcile_pending,
)
from billing.services.wallet import wallet_balance
from chargenet.errors import Conflict
from chargenet.models import OutboxEvent
from integrations.wechat.pay import PayOrder
from integrations.wechat.pay_fake import PayKeys
from tests.factories import MemberFactory
from tests.wechatpay import pay_keys_fixture, wechat_pay_fixture  # noqa: F401

pytestmark = pytest.mark.django_db


def _credits(recharge) -> list[D]:
    return list(
        LedgerEntry.objects.filter(
            kind=EntryKind.RECHARGE, reference=recharge.out_trade_no
        ).values_list("amount", flat=True)
    )


def _age(recharge, minutes: int) -> None:
    """Make a recharge ``minutes`` old (created, and its expiry moved with it)."""
    Recharge.objects.filter(pk=recharge.pk).update(
        created_at=recharge.created_at - dt.timedelta(minutes=minutes),
        expires_at=recharge.expires_at - dt.timedelta(minutes=minutes),
    )


def test_a_recharge_opens_a_jsapi_order_and_signs_the_page_parameters(wechat_pay, pay_keys):
    member = MemberFactory()
    started = recharge_create(member=member, amount=D("50.00"))
    recharge = Recharge.objects.get()
    assert (recharge.state, recharge.amount, recharge.openid) == (
        RechargeState.PENDING,
        D("50.00"),
        member.wechat_openid,
    )
    order = wechat_pay.orders[recharge.out_trade_no]
    assert (order.total, order.openid, order.notify_url) == (
        5000,
        member.wechat_openid,
        "http://127.0.0.1:8000" + PAY_NOTIFY_PATH,
    )
    params = started.jsapi
    assert params["package"] == f"prepay_id={order.prepay_id}" == f"prepay_id={recharge.prepay_id}"
    assert (params["appId"], params["signType"]) == (pay_keys.appid, "RSA")
    # WeChat checks paySign with the merchant's public key over the four lines.
    message = "".join(f"{params[k]}\n" for k in ("appId", "timeStamp", "nonceStr", "package"))
    pay_keys.merchant_key.public_key().verify(
        base64.b64decode(params["paySign"]), message.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    assert wallet_balance(member=member) == D("0.00")


@pytest.mark.parametrize(
    ("amount", "openid", "message"),
    [
        (D("0.50"), "oWx", "between 1.00 and 5000.00 yuan"),
        (D("5000.01"), "oWx", "between 1.00 and 5000.00 yuan"),
        (D("10.00"), None, "from the WeChat official account"),
    ],
)
def test_a_recharge_out_of_bounds_or_without_wechat_is_refused(wechat_pay, amount, openid, message):
    member = MemberFactory(wechat_openid=openid)
    with pytest.raises(RechargeError, match=message):
        recharge_create(member=member, amount=amount)
    assert not Recharge.objects.exists()
    assert wechat_pay.calls == []


def test_wechat_unreachable_fails_the_order_and_says_so(pay_keys, settings):
    from tests.wechatpay import point_settings_at

    point_settings_at(settings, pay_keys, "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(PaymentUnavailable, match="cannot be reached"):
        recharge_create(member=MemberFactory(), amount=D("20.00"))
    assert Recharge.objects.get().state == RechargeState.FAILED


def test_the_payment_notification_credits_once_whatever_repeats(wechat_pay):
    member = MemberFactory()
    recharge = recharge_create(member=member, amount=D("30.00")).recharge
    wechat_pay.pay(recharge.out_trade_no, notify=False)
    headers, body = wechat_pay.payment_notification(recharge.out_trade_no)
    first = pay_notification_handle(headers=headers, body=body.encode())
    # The same notification again, a fresh one for the same order, then the beat job's
    # query: all harmless.
    assert pay_notification_handle(headers=headers, body=body.encode()).pk == first.pk
    headers2, body2 = wechat_pay.payment_notification(recharge.out_trade_no)
    assert pay_notification_handle(headers=headers2, body=body2.encode()).pk == first.pk
    _age(recharge, 10)
    assert recharges_reconcile_pending() == {}  # paid: nothing pending to ask about
    recharge.refresh_from_db()
    assert recharge.state == RechargeState.PAID
    assert recharge.transaction_id == wechat_pay.orders[recharge.out_trade_no].transaction_id
    assert _credits(recharge) == [D("30.00")]
    assert wallet_balance(member=member) == D("30.00")
    assert OutboxEvent.objects.filter(kind=PAYMENT_RECEIVED, key=recharge.out_trade_no).count() == 1


def _forged(wechat_pay, recharge, pay_keys):
    headers, body = wechat_pay.payment_notification(recharge.out_trade_no)
    other = PayKeys.generate()
    yield "body altered", headers, body.replace('"TRANSACTION.SUCCESS"', '"TRANSACTION.SUCCES5"')
    yield (
        "signature of another key",
        {
            **headers,
            **{
                k: v
                for k, v in other.signed_headers(body).items()
                if k != "Wechatpay-Serial"  # claims the real platform key id
            },
        },
        body,
    )
    stale = int(timezone.now().timestamp()) - 3600
    yield "an hour old", *wechat_pay.payment_notification(recharge.out_trade_no, timestamp=stale)
    encrypted_elsewhere = other.notification(
        event_type="TRANSACTION.SUCCESS",
        resource=wechat_pay.order_resource(recharge.out_trade_no),
        original_type="transaction",
    )[1]
    yield (
        "resource under another APIv3 key",
        pay_keys.signed_headers(encrypted_elsewhere),
        (encrypted_elsewhere),
    )
    yield "no signature", {k: v for k, v in headers.items() if k != "Wechatpay-Signature"}, body


def test_a_forged_notification_is_refused_and_changes_nothing(wechat_pay, pay_keys):
    member = MemberFactory()
    recharge = recharge_create(member=member, amount=D("30.00")).recharge
    wechat_pay.pay(recharge.out_trade_no, notify=False)
    cases = list(_forged(wechat_pay, recharge, pay_keys))
    assert len(cases) == 5
    for _name, headers, body in cases:
        with pytest.raises(NotificationRefused):
            pay_notification_handle(headers=headers, body=body.encode())
    recharge.refresh_from_db()
    assert (recharge.state, _credits(recharge), wallet_balance(member=member)) == (
        RechargeState.PENDING,
        [],
        D("0.00"),
    )


def test_the_stuck_pending_recharge_is_queried_and_credited_exactly_once(wechat_pay):
    """Seed ticket: paid at WeChat, the notification never came."""
    member = MemberFactory()
    recharge = recharge_create(member=member, amount=D("100.00")).recharge
    wechat_pay.pay(recharge.out_trade_no, notify=False)
    assert recharges_reconcile_pending() == {}  # too young to ask about
    _age(recharge, 6)
    assert recharges_reconcile_pending() == {"paid": 1}
    assert recharges_reconcile_pending() == {}
    # The notification turns up late after all.
    headers, body = wechat_pay.payment_notification(recharge.out_trade_no)
    pay_notification_handle(headers=headers, body=body.encode())
    recharge.refresh_from_db()
    assert (recharge.state, _credits(recharge)) == (RechargeState.PAID, [D("100.00")])
    assert wallet_balance(member=member) == D("100.00")
    queries = [c for c in wechat_pay.calls if c[0] == "GET"]
    assert [c[1] for c in queries] == [
        f"/v3/pay/transactions/out-trade-no/{recharge.out_trade_no}?mchid=1900000109"
    ]


def test_an_unpaid_order_waits_then_is_closed_at_wechat_when_expired(wechat_pay):
    member = MemberFactory()
    recharge = recharge_create(member=member, amount=D("20.00")).recharge
    _age(recharge, 6)
    assert recharges_reconcile_pending() == {"pending": 1}  # not expired: the driver may pay
    recharge.refresh_from_db()
    assert (recharge.state, recharge.checked_until) == (RechargeState.PENDING, None)
    assert recharge.checked_at is not None
    _age(recharge, 30)
    assert recharges_reconcile_pending() == {"closed": 1}
    recharge.refresh_from_db()
    assert (recharge.state, recharge.failure) == (RechargeState.CLOSED, "expired")
    assert wechat_pay.orders[recharge.out_trade_no].trade_state == "CLOSED"
    assert OutboxEvent.objects.filter(kind=RECHARGE_CLOSED, key=recharge.out_trade_no).count() == 1
    assert _credits(recharge) == []


def test_money_taken_after_the_order_closed_here_is_still_credited(wechat_pay):
    """Out of order: closed here (say, by a query racing the payment), then WeChat's
    notification says paid: the money was taken, so it is credited."""
    member = MemberFactory()
    recharge = recharge_create(member=member, amount=D("15.00")).recharge
    Recharge.objects.filter(pk=recharge.pk).update(
        state=RechargeState.CLOSED, closed_at=timezone.now()
    )
    wechat_pay.pay(recharge.out_trade_no, notify=False)
    headers, body = wechat_pay.payment_notification(recharge.out_trade_no)
    pay_notification_handle(headers=headers, body=body.encode())
    recharge.refresh_from_db()
    assert (recharge.state, _credits(recharge)) == (RechargeState.PAID, [D("15.00")])


def test_a_paid_order_with_another_amount_is_refused(wechat_pay):
    member = MemberFactory()
    recharge = recharge_create(member=member, amount=D("15.00")).recharge
    order = PayOrder(recharge.out_trade_no, "SUCCESS", "4200X", 1600, timezone.now(), "")
    with pytest.raises(Conflict, match=r"with 16\.00 yuan; it was opened for 15\.00"):
        recharge_paid_record(order=order)
    recharge.refresh_from_db()
    assert (recharge.state, _credits(recharge)) == (RechargeState.PENDING, [])


def test_the_database_refuses_a_second_credit_of_one_order():
    member = MemberFactory()
    from billing.services.wallet import wallet_recharge

    entry = wallet_recharge(member=member, amount=D("5.00"), reference="RC1")
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            wallet=entry.wallet,
            kind=EntryKind.RECHARGE,
            amount=D("5.00"),
            balance_after=D("10.00"),
            reference="RC1",
        )


def test_development_keys_are_kept_and_the_fake_serves_a_client_built_from_them(tmp_path):
    """`make run`: the web process and the fake's process share keys through a file."""
    from integrations.wechat.pay import WeChatPayClient
    from integrations.wechat.pay_fake import FakeWeChatPay

    path = tmp_path / "keys.json"
    keys = PayKeys.load_or_generate(path)
    again = PayKeys.load_or_generate(path)
    assert again.client_kwargs() == keys.client_kwargs()
    with FakeWeChatPay(keys=again) as fake:
        env = keys.settings_env(url=fake.url)
        client = WeChatPayClient(
            **{
                k.removeprefix("WECHATPAY_").lower(): env[k]
                for k in env
                if k.endswith(
                    (
                        "MCHID",
                        "APPID",
                        "PRIVATE_KEY",
                        "SERIAL_NO",
                        "APIV3_KEY",
                        "PUBLIC_KEY",
                        "KEY_ID",
                    )
                )
            },
            base_url=env["WECHATPAY_API_BASE"],
        )
        assert client.order_query(out_trade_no="RC-none") is None


@pytest.mark.django_db(transaction=True)
def test_notifications_and_a_query_at_the_same_moment_credit_once(wechat_pay):
    """Four notifications of one payment and the beat job's query, in five threads
    released together: one ledger entry, one event, no error."""
    import threading

    from django.db import connection

    from billing.services.recharges import recharge_reconcile

    member = MemberFactory()
    recharge = recharge_create(member=member, amount=D("60.00")).recharge
    wechat_pay.pay(recharge.out_trade_no, notify=False)
    notifications = [wechat_pay.payment_notification(recharge.out_trade_no) for _ in range(4)]
    start, errors = threading.Barrier(5), []

    def run(call):
        try:
            start.wait(timeout=10)
            call()
        except Exception as exc:  # the test fails on any
            errors.append(exc)
        finally:
            connection.close()

    calls = [
        lambda h=h, b=b: pay_notification_handle(headers=h, body=b.encode())
        for h, b in notifications
    ] + [lambda: recharge_reconcile(recharge_id=recharge.pk)]
    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert _credits(recharge) == [D("60.00")]
    assert wallet_balance(member=member) == D("60.00")
    assert OutboxEvent.objects.filter(kind=PAYMENT_RECEIVED, key=recharge.out_trade_no).count() == 1
