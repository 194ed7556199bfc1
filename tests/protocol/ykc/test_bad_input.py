"""Bad input through a real socket: journaled, never a crash, nothing stored; a bad CRC or
length is dropped and the connection stays open (the stream resynchronises on the next
0x68), and every answer echoes the serial of its request."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import pytest

from billing.models import ChargingSession
from protocol.models import Frame
from protocol.ykc import codec, simulator
from protocol.ykc.simulator import parse_url
from stations.models import StatusEvent

from ..conftest import wait_for
from .conftest import card, ykc_pile

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


def errors(code: str) -> list[str]:
    return list(
        Frame.objects.filter(pile_code=code)
        .exclude(error_code="")
        .order_by("id")
        .values_list("error_code", flat=True)
    )


def heartbeat(code: str, serial: int) -> bytes:
    return codec.encode(codec.Heartbeat(pile_code=code, gun=1, gun_state=0), serial=serial)


async def still_answers(pile: simulator.YkcPile) -> int:
    """The connection is open and the next frame is answered, echoing its serial."""
    answer = await pile.heartbeat(1)  # `request` checks the serial is echoed
    return answer.answer


@pytest.mark.parametrize(
    "bad, expected",
    [
        # the CRC's last byte flipped: a line glitch
        (lambda code: heartbeat(code, 7)[:-1] + bytes([heartbeat(code, 7)[-1] ^ 0xFF]),
         ["BadCRC"]),
        # a length byte below the header (serial + flag + type)
        (lambda code: b"\x68\x03\x01\x00", ["BadLength"]),
        # a body that does not fit its type (a heartbeat one byte short), CRC right
        (lambda code: codec.encode_raw(0x03, bytes.fromhex(code) + b"\x01", serial=8),
         ["BadLength"]),
        # a type the protocol does not have
        (lambda code: codec.encode_raw(0x7F, bytes.fromhex(code), serial=9), ["UnknownType"]),
        # BCD garbage in the pile code
        (lambda code: codec.encode_raw(0x03, bytes.fromhex("5503141278230A") + b"\x01\x00",
                                       serial=10), ["BadBCD"]),
        # encrypted (3DES): refused, said so in the journal
        (lambda code: codec.encode_raw(0x03, bytes.fromhex(code) + b"\x01\x00", serial=11,
                                       encryption=codec.ENCRYPTED_3DES), ["Encrypted"]),
        # a frame only the platform sends
        (lambda code: codec.encode(codec.RemoteStop(pile_code=code, gun=1), serial=12),
         ["Unexpected"]),
        # another pile's code on this connection
        (lambda code: heartbeat("11111111111111", 13), ["CodeMismatch"]),
    ],
    ids=["bad-crc", "short-length", "body-length", "unknown-type", "bcd-garbage", "encrypted",
         "platform-frame", "other-pile"],
)  # fmt: skip
def test_bad_frame_is_journaled_dropped_and_the_connection_stays_open(ykc, bad, expected):
    pile = ykc_pile()

    async def play():
        async with simulator.connected(*parse_url(ykc.url), pile.code) as yp:
            yp.writer.write(bad(pile.code))
            await yp.writer.drain()
            return await still_answers(yp)

    assert asyncio.run(play()) == 0
    if expected:
        assert wait_for(lambda: errors(pile.code)) == expected
        row = Frame.objects.get(pile_code=pile.code, error_code=expected[0])
        assert row.raw and row.direction == "in"
    assert not ChargingSession.objects.filter(pile=pile).exists()


def test_garbage_before_a_frame_is_skipped_to_the_next_start_byte(ykc):
    pile = ykc_pile()

    async def play():
        async with simulator.connected(*parse_url(ykc.url), pile.code) as yp:
            yp.writer.write(b"\x00\xffAT+CSQ\r\n")
            await yp.writer.drain()
            return await still_answers(yp)

    assert asyncio.run(play()) == 0
    assert wait_for(lambda: errors(pile.code)) == ["Garbage"]


def test_frames_before_login_are_journaled_not_answered(ykc):
    pile = ykc_pile()

    async def play():
        reader, writer = await asyncio.open_connection(*parse_url(ykc.url))
        writer.write(heartbeat(pile.code, 1))
        await writer.drain()
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(reader.read(100), 1.0)
        writer.close()

    assert asyncio.run(play()) is None
    assert wait_for(lambda: errors(pile.code)) == ["NotLoggedIn"]


def test_a_flood_is_journaled_and_the_connection_closed(own_ykc):
    gateway = own_ykc(GATEWAY_MAX_CALLS_PER_MINUTE="20")
    pile = ykc_pile()
    number = card(pile).number

    async def play():
        async with simulator.connected(*parse_url(gateway.url), pile.code) as yp:
            yp.writer.write(b"".join(heartbeat(pile.code, n) for n in range(40)))
            await yp.writer.drain()
            with pytest.raises((ConnectionError, TimeoutError, asyncio.IncompleteReadError)):
                for _ in range(50):
                    await yp.start_by_card(1, number)
                    await asyncio.sleep(0.05)

    asyncio.run(play())
    assert wait_for(lambda: "Flood" in errors(pile.code))
    assert not ChargingSession.objects.filter(pile=pile).exists()
    assert not StatusEvent.objects.filter(pile=pile).exists()


def test_three_missed_heartbeats_close_the_link(own_ykc):
    gateway = own_ykc(idle_timeout=1.0)
    pile = ykc_pile()

    async def play():
        async with simulator.connected(*parse_url(gateway.url), pile.code) as yp:
            await asyncio.wait_for(yp._task, 5)  # its receive loop ends: closed by the platform
            return yp.writer.is_closing() or yp.reader.at_eof()

    assert asyncio.run(play())
    row = wait_for(lambda: Frame.objects.filter(pile_code=pile.code, action="disconnected").first())
    assert row.raw == "close code silent for 1 s (heartbeats missed)"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_gateway_stops_cleanly_with_piles_connected_and_talking(own_ykc, signum):
    gateway = own_ykc()
    piles = [ykc_pile() for _ in range(5)]

    async def play():
        connected = [
            await simulator.connected(*parse_url(gateway.url), p.code).__aenter__() for p in piles
        ]
        # Frames in flight when the signal comes: the handlers are busy (in the database,
        # in Redis) as the node stops.
        for yp in connected:
            for n in range(20):
                yp.writer.write(heartbeat(yp.code, 100 + n))
                body = codec.BillingModelRequest(pile_code=yp.code)
                yp.writer.write(codec.encode(body, serial=200 + n))
        gateway.proc.send_signal(signum)
        for yp in connected:
            await yp.close()

    asyncio.run(play())
    assert gateway.proc.wait(30) == 0
    output = "".join(gateway.output)
    assert "Traceback" not in output and "CancelledError" not in output, output
    # Every connection unregistered and journaled its end before the node went away.
    for pile in piles:
        assert Frame.objects.filter(pile_code=pile.code, action="disconnected").count() == 1
