"""The wallet's H5 pages: served under the CSP without inline script; in headless Chromium
at 390×844 a driver recharges through the fake WeChat Pay (its signed notification reaches
the live server), sees the balance and the ledger, asks for a balance refund and for an
invoice of the recharge."""

from __future__ import annotations

from pathlib import Path

import pytest

from billing.models import InvoiceRequest, RefundRequest
from billing.services.wallet import wallet_balance
from orgs.drivers import driver_token_issue
from tests.driverapi import test_h5
from tests.factories import MemberFactory
from tests.wechatpay import pay_keys_fixture, wechat_pay_fixture  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.parametrize("path", ["/h5/wallet/", "/h5/wallet/invoices/"])
def test_the_wallet_pages_are_served_under_the_csp_without_inline_script(client, settings, path):
    test_h5.test_every_page_is_served_under_the_csp_without_inline_script(client, settings, path)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
@pytest.mark.django_db(transaction=True)
def test_a_driver_recharges_and_asks_for_a_refund_and_an_invoice_from_the_pages(
    live_server, settings, monkeypatch, wechat_pay
):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.WECHATPAY_NOTIFY_BASE = live_server.url
    settings.WECHATPAY_FAKE_URL = wechat_pay.url  # development: the fake takes the payment
    member = MemberFactory(nickname="黄先生")
    token = driver_token_issue(member=member).key
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
            problems = []
            # (The stylesheet opened to reach the origin's storage has no icon: favicon 404.)
            page.on(
                "console",
                lambda m: (
                    m.type == "error"
                    and not m.location["url"].endswith("/favicon.ico")
                    and problems.append(m.text)
                ),
            )
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{live_server.url}/static/driverapi/h5/h5.css")
            page.evaluate("t => localStorage.setItem('cn.driver.token', t)", token)

            page.goto(f"{live_server.url}/h5/wallet/")
            expect(page.locator("#balance")).to_have_text("0.00")
            page.click("button[data-amount='50.00']")
            page.click("#recharge-form button[type=submit]")
            expect(page.locator("#notice")).to_have_text("充值成功：¥50.00 已到账")
            expect(page.locator("#balance")).to_have_text("50.00")
            expect(page.locator("#ledger li").first).to_contain_text("充值 +50.00")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390

            page.fill("#refund-form input[name=amount]", "10.00")
            page.fill("#refund-form input[name=reason]", "换车了")
            page.click("#refund-form button[type=submit]")
            expect(page.locator("#notice")).to_have_text("退款申请已提交，审核后原路退回")
            expect(page.locator("#refunds")).to_contain_text("¥10.00 · 待审批")

            page.click("text=发票")
            expect(page.locator("#choices li")).to_have_count(1)
            page.check("#choices input[type=checkbox]")
            page.fill("#invoice-form input[name=title]", "黄先生")
            page.fill("#invoice-form input[name=email]", "huang@example.com")
            page.click("#invoice-form button[type=submit]")
            expect(page.locator("#invoices")).to_contain_text("黄先生 · ¥50.00")
            expect(page.locator("#invoices")).to_contain_text("已申请")
            expect(page.locator("#choices li")).to_have_count(0)
            assert problems == []
        finally:
            browser.close()
    assert wallet_balance(member=member) == 50
    assert RefundRequest.objects.get().amount == 10
    assert InvoiceRequest.objects.get().amount == 50
