"""End to end over real sockets: the driver's phone (HTTP to a live server) opens a
recharge, the fake WeChat Pay (its own HTTP server) takes the payment and POSTs its signed,
AES-256-GCM encrypted notification to the live server, the ledger is credited once and
the balance shows it."""

from decimal import Decimal as D

import pytest
import requests

from billing.events import PAYMENT_RECEIVED
from billing.models import EntryKind, LedgerEntry
from billing.services.recharges import PAY_NOTIFY_PATH
from chargenet.models import OutboxEvent
from orgs.drivers import driver_token_issue
from tests.factories import MemberFactory
from tests.wechatpay import pay_keys_fixture, wechat_pay_fixture  # noqa: F401


@pytest.mark.django_db(transaction=True)
def test_a_recharge_paid_at_wechat_is_credited_once_and_shown(live_server, wechat_pay, settings):
    settings.WECHATPAY_NOTIFY_BASE = live_server.url
    member = MemberFactory()
    phone = requests.Session()
    phone.headers.update(
        {
            "Authorization": f"Bearer {driver_token_issue(member=member).key}",
            "Accept-Language": "en",
        }
    )
    answer = phone.post(f"{live_server.url}/api/v1/wallet/recharges/", json={"amount": "88.00"})
    assert answer.status_code == 201, answer.text
    started = answer.json()
    out_trade_no = started["recharge"]["out_trade_no"]
    assert started["jsapi"]["package"] == f"prepay_id={wechat_pay.orders[out_trade_no].prepay_id}"

    wechat_pay.pay(out_trade_no)  # the driver pays; WeChat notifies our server
    assert wechat_pay.notify(out_trade_no) == 204  # and, as it does, notifies again
    assert wechat_pay.notified == [(live_server.url + PAY_NOTIFY_PATH, 204)] * 2

    recharge = phone.get(
        f"{live_server.url}/api/v1/wallet/recharges/{started['recharge']['id']}/"
    ).json()
    assert (recharge["state"], recharge["amount"]) == ("paid", "88.00")
    assert phone.get(f"{live_server.url}/api/v1/wallet/").json()["balance"] == "88.00"
    ledger = phone.get(f"{live_server.url}/api/v1/wallet/ledger/").json()
    assert [(e["kind"], e["amount"]) for e in ledger["results"]] == [("recharge", "88.00")]
    assert list(
        LedgerEntry.objects.filter(kind=EntryKind.RECHARGE).values_list("amount", flat=True)
    ) == [D("88.00")]
    assert OutboxEvent.objects.filter(kind=PAYMENT_RECEIVED, key=out_trade_no).count() == 1
