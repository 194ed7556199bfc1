"""End to end over real sockets: the driver logs in through (the fake) WeChat, starts on a
simulated pile through the HTTP API (live server → remote intent → a real gateway process
→ the pile's WebSocket), reads the live charge, stops, gets the bill, and is told."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import urllib.error
import urllib.request
import uuid
from decimal import Decimal

import pytest

from billing.models import Bill, PaymentState
from billing.services.wallet import wallet_recharge
from faults.models import Notification
from integrations.wechat.fake import FakeWeChat
from stations.models import Connector, Pile
from tests.billing.factories import tariffed_station
from tests.protocol import world
from tests.protocol.clients import serving
from tests.protocol.conftest import wait_for

pytestmark = [
    pytest.mark.gateway,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("gateway_quiet_after"),
]


def http(base: str, method: str, path: str, *, token: str = "", body=None, headers=None):
    request = urllib.request.Request(
        f"{base}/api/v1/{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Content-Type": "application/json",
            "Accept-Language": "en",
            **({"Authorization": f"Bearer {token}"} if token else {}),
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def wechat():
    """The fake WeChat API for the whole module: the gateway process sends through it."""
    with FakeWeChat(secret="s3cret") as fake:
        yield fake


@pytest.fixture(scope="module")
def notifying_gateway(django_db_setup, django_db_blocker, wechat):
    """A gateway process that settles at once (Celery eager in it, as a worker would) and
    tells the driver by WeChat template message through the fake."""
    from tests.protocol.conftest import GatewayProcess

    gw = GatewayProcess(
        node=f"gw-n-{uuid.uuid4().hex[:6]}",
        env={
            "CELERY_TASK_ALWAYS_EAGER": "1",
            "FAULTS_NOTIFICATION_SENDER": "wechat",
            "WECHAT_API_BASE": wechat.url,
            "WECHAT_APP_ID": f"wx-e2e-{uuid.uuid4().hex[:6]}",  # its own cached token
            "WECHAT_APP_SECRET": "s3cret",
            "WECHAT_TEMPLATE_CHARGE_FINISHED": "TPL-FIN",
            "WECHAT_TEMPLATE_BEING_CHECKED": "TPL-CHK",
        },
    ).start()
    yield gw
    gw.stop()


def test_login_start_live_stop_bill_notification(live_server, notifying_gateway, wechat, settings):
    station = tariffed_station()
    pile = world.pile(station, is_published=True, max_power_kw=Decimal("99999.00"))
    connector = Connector.objects.get(pile=pile)
    openid = f"o-{uuid.uuid4().hex[:10]}"
    member = world.member(station.operator, wechat_openid=openid, phone="13800138111")
    wallet_recharge(member=member, amount=Decimal("100.00"), reference=f"e2e-{member.pk}")
    base = live_server.url

    settings.WECHAT_API_BASE = wechat.url
    settings.WECHAT_APP_SECRET = "s3cret"
    settings.DRIVER_OPERATOR_CODE = station.operator.code
    status, login = http(base, "POST", "auth/wechat/", body={"code": wechat.oauth_code_for(openid)})
    assert (status, login["me"]["id"]) == (200, member.pk)
    token = login["token"]

    async def charge():
        async with serving(notifying_gateway.url, pile.code, pile.password) as sim:
            await sim.boot()
            await sim.status(1, "Preparing")
            await asyncio.to_thread(
                wait_for,
                lambda: (
                    Pile.objects.filter(pk=pile.pk, is_online=True).exists()
                    and Connector.objects.filter(pk=connector.pk, status="Preparing").exists()
                ),
            )
            status, started = await asyncio.to_thread(
                http, base, "POST", f"connectors/{connector.pk}/start/", token=token,
                headers={"Idempotency-Key": "e2e-1"},
            )  # fmt: skip
            assert (status, started["state"]) == (202, "starting"), started
            number, id_tag = await asyncio.wait_for(sim.remote_starts.get(), 10)
            assert (number, id_tag) == (1, member.token)
            # The pile's answer reaches the start the phone follows.
            accepted = await asyncio.to_thread(
                wait_for,
                lambda: (
                    http(base, "GET", f"starts/{started['id']}/", token=token)[1]["state"]
                    == "accepted"
                ),
                every=0.2,
            )
            assert accepted
            # The car was plugged and the pile started a few minutes ago (by its clock): 6 kWh
            # in milliseconds would be more than any pile delivers (fault code 13).
            await sim.start_tx(number, id_tag, at=sim.now() - dt.timedelta(minutes=5))
            await sim.status(1, "Charging")
            await sim.meter(1, add_wh=5000, soc=61)
            # The pile reported the start: the start names its session, the live one.
            state = await asyncio.to_thread(
                wait_for,
                lambda: (
                    (body := http(base, "GET", f"starts/{started['id']}/", token=token)[1])["state"]
                    == "charging"
                    and body
                ),
                every=0.2,
            )
            status, current = await asyncio.to_thread(
                http, base, "GET", "sessions/current/", token=token
            )
            assert status == 200, current
            assert (state["session_id"], state["code"]) == (current["id"], "")
            live = current["live"]
            assert (live["energy_kwh"], live["power_kw"], live["soc"]) == ("5.000", "7.00", 61)
            status, _stopping = await asyncio.to_thread(
                http, base, "POST", f"sessions/{current['id']}/stop/", token=token
            )
            assert status == 202
            await asyncio.wait_for(sim.remote_stops.get(), 10)
            await sim.meter(1, add_wh=1000, soc=63)
            await sim.stop_tx(1, reason="Remote")
            await sim.status(1, "Finishing")
            return current["id"]

    session_id = asyncio.run(charge())
    bill = wait_for(lambda: Bill.objects.filter(session_id=session_id).first(), timeout=15)
    status, mine = http(base, "GET", f"bills/{bill.pk}/", token=token)
    assert status == 200
    assert (mine["energy_kwh"], mine["state"]) == ("6.000", "paid"), (
        bill.fault_codes,
        bill.fault_detail,
    )
    assert Decimal(mine["total"]) == bill.total > 0
    assert bill.payment_state == PaymentState.PAID
    status, session = http(base, "GET", f"sessions/{session_id}/", token=token)
    assert (session["state"], session["bill_id"]) == ("settled", bill.pk)
    notification = wait_for(
        lambda: Notification.objects.filter(session_id=session_id, state="sent").first()
    )
    assert (notification.kind, notification.member_id) == ("charge_finished", member.pk)
    assert notification.payload["amount"] == str(bill.total)
    # The driver's phone got it: a WeChat template message to their openid.
    [message] = [m for m in wechat.sent() if m["touser"] == openid]
    assert message["template_id"] == "TPL-FIN"
    assert str(bill.total) in message["data"]["keyword4"]["value"]  # "<amount> 元"
    assert notification.external_id  # WeChat's message id
