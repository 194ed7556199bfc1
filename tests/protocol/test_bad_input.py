"""Bad frames get the CALLERROR OCPP-J 1.6 prescribes (or a close for abuse), are
journaled, and neither crash the gateway nor disturb another pile."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from billing.models import ChargingSession, OrphanStop
from protocol.models import Frame
from protocol.services import CommandRejected, send_command
from protocol.simulator import basic_auth_header, connected
from stations.models import StatusEvent

from . import world
from .conftest import wait_for

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


def pile_socket(url: str, code: str, password: str, **kwargs):
    """A raw WebSocket opened as a pile opens it (OCPP 1.6 subprotocol, HTTP Basic)."""
    return ws_connect(
        f"{url}/{code}",
        subprotocols=["ocpp1.6"],
        additional_headers=basic_auth_header(code, password),
        **kwargs,
    )


async def exchange(gateway, pile, text: str) -> list:
    async with pile_socket(gateway.url, pile.code, pile.password, max_size=None) as ws:
        await ws.send(text)
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
        # …and the same connection still works afterwards.
        await ws.send(json.dumps([2, "after", "Heartbeat", {}]))
        after = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert after[:2] == [3, "after"]
        return answer


def frame(unique_id: str, action: str, payload: dict) -> str:
    return json.dumps([2, unique_id, action, payload])


def start(**fields) -> str:
    base = {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": "2026-11-27T01:00:00Z"}
    return frame("s1", "StartTransaction", {**base, **fields})


def stop(**fields) -> str:
    base = {"transactionId": 1, "meterStop": 0, "timestamp": "2026-11-27T02:00:00Z"}
    return frame("s2", "StopTransaction", {**base, **fields})


def meter(*, connectorId=1, transactionId=None, value="1000", measurand=None) -> str:
    sampled = {"value": value, **({"measurand": measurand} if measurand else {})}
    entry = {"timestamp": "2026-11-27T01:30:00Z", "sampledValue": [sampled]}
    payload = {"connectorId": connectorId, "meterValue": [entry]}
    if transactionId is not None:
        payload["transactionId"] = transactionId
    return frame("s3", "MeterValues", payload)


def status(connector: int) -> str:
    payload = {"connectorId": connector, "errorCode": "NoError", "status": "Available"}
    return frame("s4", "StatusNotification", payload)


def vin(data: dict) -> str:
    payload = {"vendorId": "X", "messageId": "VIN", "data": json.dumps(data)}
    return frame("s5", "DataTransfer", payload)


@pytest.mark.parametrize(
    "text, expected_id, expected_code",
    [
        ('[2, "m1", "Heartbeat", {', "m1", "FormationViolation"),
        ("not json at all", "-1", "FormationViolation"),
        ('{"a": 1}', "-1", "FormationViolation"),
        ("[7, \"m2\"]", "m2", "FormationViolation"),
        ('[2, "m3", "Heartbeat"]', "m3", "ProtocolError"),
        ('[2, "m4", "MakeCoffee", {}]', "m4", "NotImplemented"),
        ('[2, "m5", "Reset", {"type": "Hard"}]', "m5", "NotSupported"),
        ('[2, "m6", "Authorize", {}]', "m6", "ProtocolError"),
        ('[2, "m7", "StatusNotification", {"connectorId": "one", "errorCode": "NoError", '
         '"status": "Available"}]', "m7", "TypeConstraintViolation"),
        ('[2, "m8", "Heartbeat", {"extra": 1}]', "m8", "FormationViolation"),
        ('[2, "m9", "StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0, '
         '"timestamp": "yesterday"}]', "m9", "PropertyConstraintViolation"),
        ('[2, "m11", "StartTransaction", {"connectorId": 0, "idTag": "A", "meterStart": 0, '
         '"timestamp": "2026-11-27T01:00:00Z"}]', "m11", "PropertyConstraintViolation"),
        ('[2, "m10", "Authorize", {"idTag": "' + "X" * 9000 + '"}]', "m10", "FormationViolation"),
        ("[" * 4000 + "]" * 4000, "-1", "FormationViolation"),  # too deep to parse
        (frame("o1", "MeterValues", {"connectorId": 1, "meterValue": []}), "o1",
         "OccurenceConstraintViolation"),
        (frame("o2", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                            "status": "Exploded"}), "o2",
         "PropertyConstraintViolation"),
        # Valid OCPP, but past what the columns hold: refused, not left unanswered.
        (start(meterStart=10**20), "s1", "PropertyConstraintViolation"),
        (start(meterStart=-1), "s1", "PropertyConstraintViolation"),
        (start(connectorId=999999), "s1", "PropertyConstraintViolation"),
        (start(connectorId=-1), "s1", "PropertyConstraintViolation"),
        (start(connectorId=2), "s1", "PropertyConstraintViolation"),  # the pile has one
        (stop(transactionId=2**70), "s2", "PropertyConstraintViolation"),
        (stop(meterStop=10**20), "s2", "PropertyConstraintViolation"),
        (meter(value="1e12"), "s3", "PropertyConstraintViolation"),
        (meter(value="1000", measurand="SoC"), "s3", "PropertyConstraintViolation"),
        # int() of this would hold the event loop (and every pile of the node) for minutes.
        (meter(value="1e999999", measurand="SoC"), "s3", "PropertyConstraintViolation"),
        (meter(transactionId=2**70), "s3", "PropertyConstraintViolation"),
        (meter(connectorId=100), "s3", "PropertyConstraintViolation"),
        (status(999999), "s4", "PropertyConstraintViolation"),
        (status(-1), "s4", "PropertyConstraintViolation"),
        (vin({"connectorId": "x"}), "s5", "TypeConstraintViolation"),
        (vin({"connectorId": [1]}), "s5", "TypeConstraintViolation"),
        (vin({"connectorId": 1, "transactionId": 1e30}), "s5", "TypeConstraintViolation"),
        (vin({"connectorId": 999999}), "s5", "PropertyConstraintViolation"),
        (vin({"connectorId": 1, "transactionId": 2**70}), "s5", "PropertyConstraintViolation"),
        # Text PostgreSQL cannot hold, in any field: refused, never a failing write.
        (start(idTag="AB\u0000CD"), "s1", "PropertyConstraintViolation"),
        (stop(idTag="A\u0000"), "s2", "PropertyConstraintViolation"),
        (frame("t1", "Authorize", {"idTag": "A\u0000"}), "t1", "PropertyConstraintViolation"),
        (frame("t2", "BootNotification", {"chargePointVendor": "V\u0000",
                                          "chargePointModel": "M"}), "t2",
         "PropertyConstraintViolation"),
        (frame("t3", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                            "status": "Available", "info": "\ud800"}), "t3",
         "PropertyConstraintViolation"),
    ],
)  # fmt: skip
def test_bad_frame_gets_the_prescribed_call_error(gateway, text, expected_id, expected_code):
    pile = world.pile()
    answer = asyncio.run(exchange(gateway, pile, text))
    assert answer[0] == 4
    assert (answer[1], answer[2]) == (expected_id, expected_code)
    logged = wait_for(
        lambda: (
            Frame.objects.filter(pile_code=pile.code, direction="out", error_code=expected_code)
            .values_list("unique_id", flat=True)
            .first()
        )
    )
    assert logged == expected_id
    inbound = (
        Frame.objects.filter(pile_code=pile.code, direction="in")
        .exclude(action__in=["connected", "disconnected"])
        .exclude(unique_id="after")
    )
    assert inbound.count() == 1
    # …and nothing wrong was stored.
    assert list(pile.connectors.values_list("number", flat=True)) == [1]
    assert not ChargingSession.objects.filter(pile=pile).exists()
    assert not OrphanStop.objects.filter(pile=pile).exists()
    assert not StatusEvent.objects.filter(pile=pile).exists()


def test_a_flood_is_disconnected_and_other_piles_are_not_affected(gateway):
    flooder, neighbour = world.pile(), world.pile()

    async def flood():
        async with connected(gateway.url, neighbour.code, neighbour.password) as calm:
            async with pile_socket(gateway.url, flooder.code, flooder.password) as ws:
                with pytest.raises(ConnectionClosed):
                    for i in range(1000):  # the test gateway allows 300 calls a minute
                        await ws.send(json.dumps([2, f"f{i}", "Heartbeat", {}]))
                        await asyncio.sleep(0)
                    while True:
                        await asyncio.wait_for(ws.recv(), 5)
                code = ws.close_code
            return code, await calm.heartbeat()

    close_code, calm_answer = asyncio.run(flood())
    assert close_code == 1008
    assert calm_answer.current_time.endswith("Z")
    assert wait_for(
        lambda: Frame.objects.filter(pile_code=flooder.code, error_code="Flood").exists()
    )


def test_a_frame_the_database_cannot_store_does_not_block_the_journal(gateway):
    pile = world.pile()
    member = world.member(pile.station.operator)

    async def send():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            # Refused with a CALLERROR (no text may hold a NUL): the library answers None.
            odd = await sim.call(
                call.DataTransfer(vendor_id="X", message_id="Note", data="nul\u0000here")
            )
            start = await sim.start_tx(1, member.token)  # the journal still writes
            return odd, start.id_tag_info["status"]

    assert asyncio.run(send()) == (None, "Accepted")
    stored = wait_for(
        Frame.objects.filter(pile_code=pile.code, action="DataTransfer", direction="in").first
    )
    assert (stored.payload["data"], stored.error_code) == (
        "nul\\u0000here",
        "PropertyConstraintViolation",
    )


def test_nul_in_ids_actions_and_error_codes_never_stops_the_journal(gateway):
    bad, other = world.pile(), world.pile()
    member = world.member(other.station.operator)

    async def play():
        async with pile_socket(gateway.url, bad.code, bad.password) as ws:
            await ws.send(json.dumps([2, "n\u00001", "Heartbeat", {}]))
            beat = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.send(json.dumps([2, "n2", "Heart\u0000beat", {}]))
            unknown = json.loads(await asyncio.wait_for(ws.recv(), 5))
            command = asyncio.create_task(
                asyncio.to_thread(
                    send_command, pile=bad, action="Reset", payload={"type": "Soft"}, timeout=5
                )
            )
            reset = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.send(json.dumps([4, reset[1], "Generic\u0000Error", "d\u0000", {}]))
            with pytest.raises(CommandRejected) as rejected:
                await command
        async with connected(gateway.url, other.code, other.password) as sim:
            sim._response_timeout = 5
            start = await sim.start_tx(1, member.token)  # the journal still writes
        details = rejected.value.details
        return beat[:2], unknown[:3], reset[1], details, start.id_tag_info["status"]

    beat, unknown, reset_id, details, status = asyncio.run(play())
    assert (beat, unknown, status) == ([3, "n\u00001"], [4, "n2", "NotImplemented"], "Accepted")
    # What the pile answered reaches the caller (and its audit row) storable.
    assert details == {
        "outcome": "error",
        "error_code": "Generic\\u0000Error",
        "description": "d\\u0000",
    }
    frames = (
        Frame.objects.filter(pile_code=bad.code)
        .exclude(action__in=["connected", "disconnected"])
        .order_by("pk")
        .values_list("direction", "message_type", "action", "unique_id", "error_code")
    )
    wait_for(lambda: len(frames.all()) >= 6)  # written by the journal, in the background
    assert list(frames) == [
        ("in", 2, "Heartbeat", "n\\u00001", ""),
        ("out", 3, "Heartbeat", "n\\u00001", ""),
        ("in", 2, "Heart\\u0000beat", "n2", "NotImplemented"),
        ("out", 4, "Heart\\u0000beat", "n2", "NotImplemented"),
        ("out", 2, "Reset", reset_id, ""),
        ("in", 4, "Reset", reset_id, "Generic\\u0000Error"),
    ]
    assert Frame.objects.filter(pile_code=other.code, action="StartTransaction").count() == 2


def flood_with(gateway, pile, text: str, times: int) -> int:
    """Send ``text`` ``times`` times without reading; the close code the pile got."""

    async def flood():
        async with pile_socket(gateway.url, pile.code, pile.password) as ws:
            with pytest.raises(ConnectionClosed):
                for _ in range(times):
                    await ws.send(text)
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            return ws.close_code

    return asyncio.run(flood())


@pytest.mark.parametrize(
    "text, message_type, error_code, journaled_chars",
    [
        ("not json", 0, "JSON", 8),  # malformed frames count too
        (json.dumps([3, "nobody-asked", {"blob": "x" * 7900}]), 3, "Unsolicited", 512),
        (json.dumps([4, "nobody-asked", "GenericError", "y" * 7900, {}]), 4, "Unsolicited", 512),
    ],
)
def test_every_frame_counts_toward_the_flood_limit_and_unsolicited_answers_are_cut(
    gateway, text, message_type, error_code, journaled_chars
):
    pile = world.pile()
    assert flood_with(gateway, pile, text, 400) == 1008  # the test gateway allows 300 a minute
    frames = Frame.objects.filter(pile_code=pile.code, direction="in").exclude(
        action__in=["connected", "disconnected"]
    )
    rows = wait_for(lambda: frames.count() == 301 and frames)
    counts = Counter((f.message_type, f.error_code, len(f.raw), f.payload is None) for f in rows)
    assert counts == {
        (message_type, error_code, journaled_chars, True): 300,
        (0, "Flood", min(len(text), 512), True): 1,
    }


def test_reconnecting_does_not_reset_the_flood_limit(gateway):
    """A pile closed for flooding that reconnects and floods again is closed at once: the
    journal holds one window's worth of its frames, not one per connection."""
    pile = world.pile()
    blob = json.dumps([3, "nobody-asked", {"blob": "x" * 7900}])

    async def under_the_limit():
        async with pile_socket(gateway.url, pile.code, pile.password) as ws:
            for _ in range(200):
                await ws.send(blob)
            await ws.send(json.dumps([2, "still-ok", "Heartbeat", {}]))
            return json.loads(await asyncio.wait_for(ws.recv(), 5))[:2]

    assert asyncio.run(under_the_limit()) == [3, "still-ok"]
    closes = [flood_with(gateway, pile, blob, 200) for _ in range(3)]
    assert closes == [1008, 1008, 1008]
    frames = Frame.objects.filter(pile_code=pile.code, direction="in").exclude(
        action__in=["connected", "disconnected"]
    )
    rows = wait_for(lambda: frames.count() >= 303 and frames)
    assert Counter(f.error_code for f in rows) == {"Unsolicited": 299, "": 1, "Flood": 3}


def test_refused_handshakes_are_journaled_at_most_n_per_code_and_address(own_gateway):
    gw = own_gateway(GATEWAY_REFUSED_JOURNAL_PER_MINUTE="3")
    known = world.pile()
    made_up = [f"4420{n:016d}" for n in range(5)]

    async def refused(code: str, address: str) -> int:
        with pytest.raises(InvalidStatus) as refusal:
            async with pile_socket(gw.url, code, "wrong", local_addr=(address, 0)):
                pass
        return refusal.value.response.status_code

    async def attempts():
        one_address = [await refused(code, "127.0.0.1") for code in made_up]
        one_code = [await refused(known.code, f"127.0.0.{n}") for n in range(2, 7)]
        return one_address + one_code

    assert asyncio.run(attempts()) == [401] * 10
    journaled = wait_for(
        lambda: (
            rows
            if len(rows := list(Frame.objects.filter(action="refused", node=gw.node))) >= 6
            else None
        )
    )
    assert sorted(f.pile_code for f in journaled) == sorted(made_up[:3] + [known.code] * 3)


def test_call_errors_speak_to_the_pile_in_english_whatever_the_platform_language(gateway):
    """The gateway runs in the back office's zh-hans; what it tells a pile is protocol
    text, in English."""
    answer = asyncio.run(exchange(gateway, world.pile(), start(connectorId=2)))
    assert answer[2:] == [
        "PropertyConstraintViolation",
        answer[3],
        {"cause": "connectorId 2 is not a connector of this pile"},
    ]


def test_texts_spelled_with_or_without_escapes_are_accepted(gateway):
    """Only a \\u escape can spell a NUL or a lone surrogate, so frames without one skip
    the walk of their texts: an accented idTag, escaped or written out, is answered."""
    pile = world.pile()
    payload = {"idTag": "café-ß"}
    escaped = json.dumps([2, "e1", "Authorize", payload])
    written = json.dumps([2, "e2", "Authorize", payload], ensure_ascii=False)
    assert "\\u" in escaped and "\\u" not in written
    for text, unique_id in ((escaped, "e1"), (written, "e2")):
        answer = asyncio.run(exchange(gateway, pile, text))
        assert answer[:2] == [3, unique_id]
        assert answer[2]["idTagInfo"]["status"] == "Invalid"  # no such member: a real answer
