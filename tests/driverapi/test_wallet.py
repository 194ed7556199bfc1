"""The driver's wallet API: balance, ledger, recharges through the fake WeChat Pay and its
signed notifications, balance refunds, invoices; and no driver ever reaches another's."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from billing.models import (
    InvoiceRequest,
    LedgerEntry,
    Recharge,
    RechargeState,
    RefundRequest,
)
from billing.services.invoices import invoice_issue
from billing.services.wallet import wallet_balance
from tests.drivers import driver_client
from tests.factories import MemberFactory, StaffFactory
from tests.wechatpay import paid_recharge, pay_keys_fixture, wechat_pay_fixture  # noqa: F401

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n%%EOF\n"
T0 = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)


def test_balance_and_a_paginated_ledger_newest_first(django_assert_max_num_queries):
    member = MemberFactory()
    for i in range(3):
        paid_recharge(member, D(f"1{i}.00"))
    client = driver_client(member)
    assert client.get("/api/v1/wallet/").json() == {"balance": "33.00", "refundable": "33.00"}
    with django_assert_max_num_queries(6):
        page = client.get("/api/v1/wallet/ledger/?limit=2").json()
    assert page["count"] == 3
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in page["results"]] == [
        ("recharge", "12.00", "33.00"),
        ("recharge", "11.00", "21.00"),
    ]
    assert client.get("/api/v1/wallet/ledger/?kind=adjustment").json()["count"] == 0


def test_a_recharge_answers_the_jsapi_parameters_and_the_notification_credits_it(wechat_pay):
    member = MemberFactory()
    client = driver_client(member)
    answer = client.post("/api/v1/wallet/recharges/", {"amount": "25.00"}, format="json")
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    recharge = Recharge.objects.get()
    assert body["recharge"]["out_trade_no"] == recharge.out_trade_no
    assert body["recharge"]["state"] == "pending"
    assert body["jsapi"]["package"] == f"prepay_id={recharge.prepay_id}"
    wechat_pay.pay(recharge.out_trade_no, notify=False)
    headers, payload = wechat_pay.payment_notification(recharge.out_trade_no)
    wechat = APIClient()
    for _ in range(2):  # WeChat repeats itself: harmless
        answer = wechat.generic(
            "POST",
            "/api/v1/pay/wechat/notify",
            payload.encode(),
            content_type="application/json",
            headers=headers,
        )
        assert answer.status_code == 204
    got = client.get(f"/api/v1/wallet/recharges/{recharge.pk}/").json()
    assert (got["state"], got["amount"]) == ("paid", "25.00")
    assert client.get("/api/v1/wallet/").json()["balance"] == "25.00"
    assert LedgerEntry.objects.filter(reference=recharge.out_trade_no).count() == 1


def test_a_forged_notification_is_a_401_and_changes_nothing(wechat_pay):
    member = MemberFactory()
    driver_client(member).post("/api/v1/wallet/recharges/", {"amount": "25.00"}, format="json")
    recharge = Recharge.objects.get()
    wechat_pay.pay(recharge.out_trade_no, notify=False)
    headers, payload = wechat_pay.payment_notification(recharge.out_trade_no)
    forged = payload.replace('"resource_type"', '"resource_type" ', 1)
    answer = APIClient().generic(
        "POST",
        "/api/v1/pay/wechat/notify",
        forged.encode(),
        content_type="application/json",
        headers={**headers, "Accept-Language": "en"},
    )
    assert answer.status_code == 401
    assert answer.json()["code"] == "signature_invalid"
    recharge.refresh_from_db()
    assert (recharge.state, wallet_balance(member=member)) == (RechargeState.PENDING, D("0.00"))


def test_a_refund_request_and_an_invoice_from_the_api(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    member = MemberFactory()
    recharge = paid_recharge(member)
    client = driver_client(member)
    answer = client.post(
        "/api/v1/wallet/refunds/", {"amount": "20.00", "reason": "moving"}, format="json"
    )
    assert answer.status_code == 201
    assert (answer.json()["state"], answer.json()["amount"]) == ("requested", "20.00")
    assert client.get("/api/v1/wallet/refunds/").json()["count"] == 1
    answer = client.post(
        "/api/v1/invoices/",
        {"recharge_ids": [recharge.pk], "title": "Li Lei", "email": "li@example.com"},
        format="json",
    )
    assert answer.status_code == 201, answer.json()
    assert (answer.json()["amount"], answer.json()["recharge_ids"]) == ("50.00", [recharge.pk])
    invoice = InvoiceRequest.objects.get()
    assert client.post(f"/api/v1/invoices/{invoice.pk}/link/").status_code == 404  # not issued
    invoice_issue(
        invoice=invoice,
        pdf=SimpleUploadedFile("i.pdf", PDF),
        actor=StaffFactory(operator=member.operator),
    )
    link = client.post(f"/api/v1/invoices/{invoice.pk}/link/").json()
    assert link["expires_in"] == 600
    download = APIClient().get(link["url"])  # no login: the signed link is the permission
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF
    assert download["Content-Type"] == "application/pdf"
    settings.INVOICE_LINK_SECONDS = -1
    expired = APIClient(headers={"accept-language": "en"}).get(link["url"])
    assert (expired.status_code, expired.json()["code"]) == (410, "link_expired")


def test_domain_errors_speak_the_drivers_language(wechat_pay):
    member = MemberFactory()
    client = driver_client(member)
    answer = client.post("/api/v1/wallet/recharges/", {"amount": "0.10"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["message"] == "A recharge is between 1.00 and 5000.00 yuan."
    client.credentials(
        HTTP_AUTHORIZATION=client._credentials["HTTP_AUTHORIZATION"], HTTP_ACCEPT_LANGUAGE="zh-hans"
    )
    answer = client.post("/api/v1/wallet/recharges/", {"amount": "0.10"}, format="json")
    assert answer.json()["message"] == "充值金额须在 1.00 至 5000.00 元之间。"


# ---- no driver reaches another's money ----------------------------------------------------


def _others(settings, tmp_path):
    """Another driver with a recharge, a refund request and an issued invoice."""
    settings.MEDIA_ROOT = tmp_path
    other = MemberFactory()
    recharge = paid_recharge(other)
    refund = RefundRequest.objects.create(member=other, amount=D("1.00"))
    invoice = InvoiceRequest.objects.create(
        member=other, title="Other", email="o@example.com", amount=D("50.00")
    )
    invoice_issue(
        invoice=invoice,
        pdf=SimpleUploadedFile("o.pdf", PDF),
        actor=StaffFactory(operator=other.operator),
    )
    return other, recharge, refund, invoice


# The wallet endpoints this matrix covers, and the ones WeChat Pay or a signed link reach
# without a driver (their refusals are tested above): test_isolation's completeness check.
WALLET_ENDPOINT_NAMES = {
    *("wallet", "ledger", "recharges", "recharge", "refunds"),
    *("invoices", "invoice", "invoice-link"),
    *("invoice-download", "wechat-pay-notify", "wechat-refund-notify"),
}
OTHERS_ENDPOINTS = [
    ("get", "/api/v1/wallet/recharges/{recharge}/", None, 404),
    ("get", "/api/v1/invoices/{invoice}/", None, 404),
    ("post", "/api/v1/invoices/{invoice}/link/", None, 404),
    (
        "post",
        "/api/v1/invoices/",
        {"recharge_ids": ["{recharge}"], "title": "Me", "email": "me@example.com"},
        404,
    ),
    ("get", "/api/v1/wallet/ledger/", None, 200),
    ("get", "/api/v1/wallet/recharges/", None, 200),
    ("get", "/api/v1/wallet/refunds/", None, 200),
    ("get", "/api/v1/invoices/", None, 200),
    ("get", "/api/v1/wallet/", None, 200),
]


@pytest.mark.parametrize(("method", "path", "data", "status"), OTHERS_ENDPOINTS)
def test_a_driver_never_reads_or_acts_on_another_drivers_money(
    settings, tmp_path, method, path, data, status
):
    other, recharge, refund, invoice = _others(settings, tmp_path)
    me = MemberFactory(operator=other.operator)
    ids = {"recharge": recharge.pk, "invoice": invoice.pk, "refund": refund.pk}
    url = path.format(**ids)
    if data is not None:
        data = {
            k: [int(v.format(**ids)) for v in vs] if isinstance(vs, list) else vs
            for k, vs in data.items()
        }
    answer = getattr(driver_client(me), method)(url, data, format="json")
    assert answer.status_code == status
    body = answer.json()
    if status == 200 and "results" in body:
        assert body["count"] == 0  # none of theirs in my lists
    elif status == 200:
        assert body == {"balance": "0.00", "refundable": "0.00"}
    # Nothing of theirs changed, and nothing was made for me.
    assert not me.invoices.exists() and not me.refund_requests.exists()
    assert InvoiceRequest.objects.get().items.count() == 0
    assert wallet_balance(member=other) == D("50.00")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/wallet/"),
        ("get", "/api/v1/wallet/ledger/"),
        ("get", "/api/v1/wallet/recharges/"),
        ("post", "/api/v1/wallet/recharges/"),
        ("get", "/api/v1/wallet/recharges/1/"),
        ("get", "/api/v1/wallet/refunds/"),
        ("post", "/api/v1/wallet/refunds/"),
        ("get", "/api/v1/invoices/"),
        ("post", "/api/v1/invoices/"),
        ("get", "/api/v1/invoices/1/"),
        ("post", "/api/v1/invoices/1/link/"),
    ],
)
def test_without_a_login_every_money_endpoint_is_a_401(method, path):
    answer = getattr(APIClient(), method)(path, {}, format="json")
    assert answer.status_code == 401
    assert set(answer.json()) == {"code", "message", "details"}


def test_the_refund_notification_endpoint_settles_an_approved_refund(wechat_pay):
    from billing.services.refunds import (
        refund_request_approve,
        refund_request_create,
        refunds_send,
    )

    member = MemberFactory()
    client = driver_client(member)
    client.post("/api/v1/wallet/recharges/", {"amount": "40.00"}, format="json")
    recharge = Recharge.objects.get()
    wechat_pay.pay(recharge.out_trade_no, notify=False)
    headers, payload = wechat_pay.payment_notification(recharge.out_trade_no)
    wechat = APIClient(headers={"accept-language": "en"})
    post = {"content_type": "application/json"}
    assert (
        wechat.generic(
            "POST", "/api/v1/pay/wechat/notify", payload.encode(), headers=headers, **post
        )
    ).status_code == 204
    request = refund_request_create(member=member, amount=D("15.00"))
    refund_request_approve(refund_request=request, actor=StaffFactory(operator=member.operator))
    refunds_send(request_id=request.pk)
    [part] = request.refunds.all()
    wechat_pay.refund_finish(part.out_refund_no, notify=False)
    headers, payload = wechat_pay.refund_notification(part.out_refund_no)
    forged = wechat.generic(
        "POST",
        "/api/v1/pay/wechat/refund-notify",
        payload.replace("SUCCESS", "CLOSED").encode(),
        headers=headers,
        **post,
    )
    assert (forged.status_code, forged.json()["code"]) == (401, "signature_invalid")
    answer = wechat.generic(
        "POST", "/api/v1/pay/wechat/refund-notify", payload.encode(), headers=headers, **post
    )
    assert answer.status_code == 204
    refunds = client.get("/api/v1/wallet/refunds/").json()["results"]
    assert [(r["state"], r["amount"]) for r in refunds] == [("refunded", "15.00")]
    assert client.get("/api/v1/wallet/").json()["balance"] == "25.00"


def test_my_lists_cost_a_fixed_number_of_queries(django_assert_max_num_queries):
    member = MemberFactory()
    client = driver_client(member)
    for _ in range(5):
        paid_recharge(member)
        RefundRequest.objects.create(
            member=member, amount=D("1.00"), state="rejected", rejection_reason="test"
        )
    recharge_ids = list(Recharge.objects.values_list("pk", flat=True))
    for rid in recharge_ids:
        client.post(
            "/api/v1/invoices/",
            {"recharge_ids": [rid], "title": "Li", "email": "li@example.com"},
            format="json",
        )
    for url in ("/api/v1/wallet/recharges/", "/api/v1/wallet/refunds/", "/api/v1/invoices/"):
        with django_assert_max_num_queries(7):
            page = client.get(url).json()
        assert page["count"] == 5, url


def test_without_a_merchant_a_recharge_says_so_and_notifications_are_refused():
    member = MemberFactory()
    answer = driver_client(member).post(
        "/api/v1/wallet/recharges/", {"amount": "10.00"}, format="json"
    )
    assert (answer.status_code, answer.json()["code"]) == (503, "payment_unavailable")
    assert not Recharge.objects.exists()
    answer = APIClient().post("/api/v1/pay/wechat/notify", {"id": "EV-1"}, format="json")
    assert (answer.status_code, answer.json()["code"]) == (401, "signature_invalid")
