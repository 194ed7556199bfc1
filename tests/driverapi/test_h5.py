"""The drivers' H5 pages: served by the project with the Content-Security-Policy on, and,
in headless Chromium at 390×844, a driver logs in through (the fake) WeChat, finds the
station near them, enters a connector, starts, watches the live charge, stops, and reads
the bill. The pile is played in-process through the core's own commands."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from billing.services.sessions import Credential, CredentialKind, Sample, session_meter_record
from billing.services.sessions.start import session_start
from billing.services.sessions.stop import session_stop
from billing.services.settlement import bill_settle
from billing.services.wallet import wallet_recharge
from integrations.wechat.fake import FakeWeChat
from orgs.drivers import driver_token_issue
from protocol import intents
from protocol.adapters import Outcome, PileAnswer
from stations.models import ConnectorState, Pile
from tests.billing.factories import tariffed_station
from tests.drivers import PileStandIn
from tests.factories import ConnectorFactory, MemberFactory, PileFactory

CHROMIUM = Path("/usr/bin/chromium")
PAGES = [
    *("/h5/", "/h5/login/", "/h5/stations/1/", "/h5/scan/", "/h5/connectors/1/"),
    *("/h5/charge/", "/h5/sessions/1/bill/", "/h5/bills/", "/h5/bills/1/", "/h5/me/"),
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_served_under_the_csp_without_inline_script(client, settings, path):
    settings.CSP_ENABLED = True
    page = client.get(path)
    assert page.status_code == 200
    assert "script-src 'self'" in page["Content-Security-Policy"]
    html = page.content.decode()
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/driverapi/h5/h5.js" defer>']
    assert "http://" not in html and "https://" not in html  # no CDN
    assert 'lang="zh-Hans"' in html


class ObedientPile(PileStandIn):
    """A pile that does what it is told, reporting to the core as the gateway would."""

    def __init__(self, pile: Pile):
        super().__init__()
        self.pile = pile

    def connector_start_send(self, *, connector, credential_value, credential_kind, timeout):
        answer = super().connector_start_send(
            connector=connector,
            credential_value=credential_value,
            credential_kind=credential_kind,
            timeout=timeout,
        )
        t0 = timezone.now() - dt.timedelta(minutes=20)
        started = session_start(
            pile=self.pile,
            connector_number=connector.number,
            credential=Credential(CredentialKind.PRESENTED, credential_value),
            meter_start_wh=100_000,
            started_at=t0,
        )
        self.ref = started.protocol_ref
        session_meter_record(
            pile=self.pile,
            connector_number=connector.number,
            protocol_ref=self.ref,
            samples=[
                Sample(at=t0 + dt.timedelta(minutes=10), energy_wh=Decimal(110_000),
                       power_w=Decimal(60_000), soc=55),
            ],
        )  # fmt: skip
        return answer

    def session_stop_remote(self, *, session, timeout):
        super().session_stop_remote(session=session, timeout=timeout)
        session_stop(
            pile=self.pile,
            protocol_ref=self.ref,
            meter_stop_wh=120_000,
            stopped_at=timezone.now(),
            reason="Remote",
        )
        bill_settle(session_id=session.pk)
        return PileAnswer(Outcome.ACCEPTED)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
@pytest.mark.django_db(transaction=True)
def test_a_driver_charges_from_the_pages(live_server, settings, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls below are
    # ordinary blocking ones between its calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.CSP_ENABLED = True
    station = tariffed_station(name="东区兴中广场站")
    pile = PileFactory(station=station, is_published=True, is_online=True)
    connector = ConnectorFactory(pile=pile, status=ConnectorState.PREPARING)
    member = MemberFactory(operator=station.operator, wechat_openid="oH5Driver", nickname="黄先生")
    wallet_recharge(member=member, amount=Decimal("100.00"), reference="h5-topup")
    obedient = ObedientPile(pile)
    monkeypatch.setitem(intents.ADAPTERS, Pile.Protocol.OCPP16J, obedient)

    with FakeWeChat(secret="s3cret", oauth_user=("oH5Driver", "")) as wechat:
        settings.WECHAT_API_BASE = wechat.url
        settings.WECHAT_APP_ID = "wxdemo"
        settings.WECHAT_APP_SECRET = "s3cret"
        settings.WECHAT_OAUTH_AUTHORIZE_URL = f"{wechat.url}/connect/oauth2/authorize"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM))
            try:
                context = browser.new_context(
                    viewport={"width": 390, "height": 844},
                    locale="zh-CN",
                    geolocation={"latitude": 22.5176, "longitude": 113.3926},
                    permissions=["geolocation"],
                )
                page = context.new_page()
                problems = []
                # A 404 is an answer the pages expect (no charge running yet, or any more).
                page.on(
                    "console",
                    lambda m: (
                        m.type == "error"
                        and "status of 404" not in m.text
                        and problems.append(m.text)
                    ),
                )
                page.on("pageerror", lambda e: problems.append(str(e)))

                # Stations near me (after the WeChat login round trip).
                page.goto(f"{live_server.url}/h5/")
                expect(page.locator("#stations a").first).to_contain_text("东区兴中广场站")
                expect(page.locator("#stations a").first).to_contain_text("快充 空闲 1/1")
                assert page.url == f"{live_server.url}/h5/"

                # The station: connector, prices, then the connector page.
                page.locator("#stations a").first.click()
                expect(page.locator("#connectors")).to_contain_text(pile.code)
                expect(page.locator("#prices")).to_contain_text("00:00–08:00")
                assert page.evaluate("document.documentElement.scrollWidth") <= 390

                # Scan: typed pile code and connector number.
                page.goto(f"{live_server.url}/h5/scan/")
                page.fill("input[name=pile]", pile.code)
                page.fill("input[name=number]", "1")
                page.click("#scan-form button[type=submit]")
                expect(page.locator("#connector")).to_contain_text("已插枪")

                # Start → live charge.
                page.click("#start")
                expect(page.locator("#energy")).to_have_text("10.000 度")
                expect(page.locator("#soc")).to_have_text("55%")
                expect(page.locator("#power")).to_have_text("60.00 kW")
                assert obedient.starts == [(connector.pk, member.token, "member_token")]

                # Stop → bill.
                page.click("#stop")
                expect(page.locator("#total")).to_have_text(re.compile(r"¥\d+\.\d\d"))
                expect(page.locator("#bill")).to_contain_text("20.000 度")
                assert obedient.stops and page.url.endswith("/bill/")
                assert problems == []
            finally:
                browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
@pytest.mark.django_db(transaction=True)
def test_a_start_the_pile_refuses_is_shown_plainly(live_server, settings, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    station = tariffed_station(name="东区兴中广场站")
    pile = PileFactory(station=station, is_published=True, is_online=True)
    connector = ConnectorFactory(pile=pile, status=ConnectorState.PREPARING)
    member = MemberFactory(operator=station.operator)
    wallet_recharge(member=member, amount=Decimal("100.00"), reference="h5-refused")
    refusing = PileStandIn()
    refusing.outcome = Outcome.REJECTED
    monkeypatch.setitem(intents.ADAPTERS, Pile.Protocol.OCPP16J, refusing)
    token = driver_token_issue(member=member).key
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844})
            # Logged in already (the WeChat round trip is the other test's).
            context.add_init_script(f"localStorage.setItem('cn.driver.token', {token!r})")
            page = context.new_page()
            page.goto(f"{live_server.url}/h5/connectors/{connector.pk}/")
            page.click("#start")
            failed = page.locator("#start-failed")
            expect(failed).to_contain_text("启动失败")
            expect(failed).to_contain_text("充电桩拒绝了请求，请检查插枪后重试。")
            assert refusing.starts == [(connector.pk, member.token, "member_token")]
            page.get_by_text("重新启动").click()
            expect(page.locator("#start")).to_be_enabled()
        finally:
            browser.close()
