"""The YKC codec: golden frames from the spec's samples and field tables, and round trips
of every frame type (hypothesis), field by field and through the stream decoder."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.ykc import codec
from protocol.ykc.codec import (
    Ascii,
    Bcd,
    BillingModelAnswer,
    Cp56,
    Dropped,
    Envelope,
    FrameError,
    Gun,
    Login,
    LoginAnswer,
    Offset,
    Raw,
    Scaled,
    Slots,
    StreamDecoder,
    TransactionRecord,
    UInt,
)


def wall(*args) -> dt.datetime:
    """A pile's wall-clock time (CP56Time2a carries no zone)."""
    return dt.datetime(*args)  # noqa: DTZ001


def hexbytes(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# --- golden frames: the spec's samples ------------------------------------------------


def test_crc16_is_modbus_low_byte_first_as_in_the_spec_login_answer_sample():
    # §6.2 sample: 68 0C 0000 00 02 55031412782305 00 | DA 4C
    frame = hexbytes("68 0C 0000 00 02 55 03 14 12 78 23 05 00 DA 4C")
    [envelope] = StreamDecoder().feed(frame)
    assert envelope == Envelope(0, 0, 0x02, frame[6:-2], frame)
    assert envelope.decode() == LoginAnswer(pile_code="55031412782305", result=0)
    assert codec.encode(LoginAnswer(pile_code="55031412782305", result=0), serial=0) == frame


def test_billing_model_check_answer_sample_serial_is_little_endian():
    # §6.6 sample: serial CE 04 (= 0x04CE), model 0000, result 00 | 8E 2F
    frame = hexbytes("68 0E CE 04 00 06 55 03 14 12 78 23 05 00 00 00 8E 2F")
    [envelope] = StreamDecoder().feed(frame)
    assert envelope.serial == 0x04CE
    body = envelope.decode()
    assert body == codec.BillingModelCheckAnswer(pile_code="55031412782305", model="0000", result=0)
    assert codec.encode(body, serial=0x04CE) == frame


def test_login_body_of_the_spec_sample():
    # §6.1 sample body (its printed CRC 675A does not match its bytes; the answers' do).
    body = hexbytes("55031412782305 00 02 0F 56342E312E353000 01 01010101010101010101 04")
    assert Login.decode(body) == Login(
        pile_code="55031412782305",
        pile_type=0,
        gun_count=2,
        protocol_version=15,
        program_version="V4.1.50",
        network=1,
        sim="01010101010101010101",
        carrier=4,
    )
    assert Login.size() + codec.HEADER == 0x22


def test_billing_model_answer_prices_of_the_spec_sample():
    # §6.8 sample: electricity 2/3/4/5 yuan (40 0D 03 00 = 200000 ×10⁻⁵, low byte first).
    body = hexbytes(
        "55031412782305 0100 400D0300 10270000 E0930400 10270000 801A0600 10270000"
        "20A10700 10270000 00" + "00" * 16 + "01" * 16 + "03" * 16
    )
    model = BillingModelAnswer.decode(body)
    assert model.prices() == [
        (Decimal("2.00000"), Decimal("0.10000")),
        (Decimal("3.00000"), Decimal("0.10000")),
        (Decimal("4.00000"), Decimal("0.10000")),
        (Decimal("5.00000"), Decimal("0.10000")),
    ]
    assert model.slots == (0,) * 16 + (1,) * 16 + (3,) * 16
    assert BillingModelAnswer.size() + codec.HEADER == 0x5E


def test_cp56time2a_of_the_spec_sample():
    # §8.7 / §9.3: 98B70E11100314 is 2020-03-16 17:14:47
    assert Cp56().decode(hexbytes("98B70E11100314")) == wall(2020, 3, 16, 17, 14, 47)
    # Encoding also sets the weekday bits (Monday = 1 in the day byte's top bits).
    assert Cp56().encode(wall(2020, 3, 16, 17, 14, 47)) == hexbytes("98B70E11300314")


@pytest.mark.parametrize(
    "cls, length",
    [
        (codec.Login, 0x22), (codec.LoginAnswer, 0x0C), (codec.Heartbeat, 0x0D),
        (codec.HeartbeatAnswer, 0x0D), (codec.BillingModelCheck, 0x0D),
        (codec.BillingModelCheckAnswer, 0x0E), (codec.BillingModelRequest, 0x0B),
        (codec.BillingModelAnswer, 0x5E), (codec.RealTimeData, 0x40),
        (codec.ChargeEnd, 0x2B), (codec.StartRequest, 0x37), (codec.StartAnswer, 0x2A),
        (codec.RemoteStartAnswer, 0x1E), (codec.RemoteStart, 0x30),
        (codec.RemoteStopAnswer, 0x0E), (codec.RemoteStop, 0x0C),
        (codec.TransactionRecord, 0xA2), (codec.TransactionRecordAnswer, 0x15),
        (codec.ClockSyncAnswer, 0x12), (codec.ClockSync, 0x12),
        (codec.SetBillingModelAnswer, 0x0C), (codec.SetBillingModel, 0x5E),
        (codec.RebootAnswer, 0x0C), (codec.Reboot, 0x0C),
    ],
)  # fmt: skip
def test_every_frame_has_the_length_of_its_spec_field_table(cls, length):
    # The lengths the spec's samples carry.
    assert cls.size() + codec.HEADER == length


def test_transaction_record_fields_in_table_order():
    record = _record()
    body = record.encode()
    assert body[:16] == hexbytes("55031412782305012018061910262392")
    assert body[16:23] == hexbytes("55031412782305")
    assert body[23] == 0x01
    assert body[24:31] == hexbytes("98B70E11300314")  # started
    assert body[38:42] == hexbytes("D0FB0100")  # sharp price 1.30000
    # meter start/stop are 5 bytes each (V1.5 change), then total energy
    assert body[102:107] == (1_000_000).to_bytes(5, "little")
    assert body[107:112] == (1_045_000).to_bytes(5, "little")
    assert body[112:116] == (45_000).to_bytes(4, "little")
    assert TransactionRecord.decode(body) == record


def _record(**changes) -> TransactionRecord:
    zero = Decimal(0)
    values = dict(
        serial="55031412782305012018061910262392",
        pile_code="55031412782305",
        gun=1,
        started=wall(2020, 3, 16, 17, 14, 47),
        ended=wall(2020, 3, 16, 18, 14, 47),
        meter_start=Decimal("100.0000"),
        meter_stop=Decimal("104.5000"),
        total_energy=Decimal("4.5000"),
        total_loss_energy=Decimal("4.5000"),
        total_amount=Decimal("5.8500"),
        vin="",
        trade_kind=1,
        traded_at=wall(2020, 3, 16, 18, 14, 50),
        stop_reason=0x40,
        physical_card="0000000000000000",
    )
    for name in codec.PERIOD_NAMES:
        values |= {f"{name}_price": Decimal("1.3"), f"{name}_energy": zero}
        values |= {f"{name}_loss_energy": zero, f"{name}_amount": zero}
    values |= {"flat_energy": Decimal("4.5"), "flat_amount": Decimal("5.85")}
    return TransactionRecord(**(values | changes))


# --- field errors ---------------------------------------------------------------------


def test_bcd_garbage_is_a_frame_error():
    with pytest.raises(FrameError) as error:
        Bcd(7).decode(hexbytes("5503141278230A"))
    assert error.value.code == "BadBCD"


def test_body_of_the_wrong_length_is_a_frame_error():
    with pytest.raises(FrameError) as error:
        codec.Heartbeat.decode(bytes(8))
    assert (error.value.code, str(error.value)) == (
        "BadLength",
        "Heartbeat (0x03) body has 8 bytes, not 9",
    )


def test_unknown_type_is_a_frame_error():
    [envelope] = StreamDecoder().feed(codec.encode_raw(0x7F, b"\x01", serial=3))
    with pytest.raises(FrameError) as error:
        envelope.decode()
    assert error.value.code == "UnknownType"


def test_rate_number_out_of_range_is_a_frame_error():
    with pytest.raises(FrameError) as error:
        Slots().decode(bytes(47) + b"\x04")
    assert error.value.code == "BadRate"


# --- stream decoder -------------------------------------------------------------------

HEARTBEAT = codec.Heartbeat(pile_code="32010200000001", gun=1, gun_state=0)


def test_bad_crc_is_dropped_and_the_stream_resynchronises_on_the_next_start_byte():
    good1 = codec.encode(HEARTBEAT, serial=1)
    bad = bytearray(codec.encode(HEARTBEAT, serial=2))
    bad[-1] ^= 0xFF
    good2 = codec.encode(HEARTBEAT, serial=3)
    out = StreamDecoder().feed(good1 + bytes(bad) + good2)
    assert [e.code if isinstance(e, Dropped) else e.serial for e in out] == [
        1,
        "BadCRC",  # its bytes up to the next start byte are skipped with it
        3,
    ]
    assert out[1].raw == bytes(bad)


def test_a_corrupt_length_does_not_swallow_the_frames_behind_it():
    bad = bytearray(codec.encode(HEARTBEAT, serial=2))
    bad[1] = 0x30  # claims 48 bytes: the next frame's bytes would be eaten with it
    good = [codec.encode(HEARTBEAT, serial=n) for n in (3, 4, 5)]
    out = StreamDecoder().feed(bytes(bad) + b"".join(good))
    assert [e.serial for e in out if isinstance(e, Envelope)] == [3, 4, 5]
    assert out[0] == Dropped("BadCRC", out[0].raw)


@pytest.mark.parametrize("together", [True, False], ids=["one-read", "two-reads"])
def test_a_glitched_frame_holding_0x68_does_not_hold_up_the_frame_behind_it(together):
    """A CRC byte that the glitch turned into 0x68 is no frame start: the frame behind
    the dropped one is decoded at once (it was held until 104 more bytes came)."""
    bad = bytearray(codec.encode(HEARTBEAT, serial=2))
    bad[-1] = 0x68 if bad[-1] != 0x68 else 0x69
    good = codec.encode(HEARTBEAT, serial=3)
    decoder = StreamDecoder()
    if together:
        out = decoder.feed(bytes(bad) + good)
    else:
        out = decoder.feed(bytes(bad)) + decoder.feed(good)
    assert [e.code if isinstance(e, Dropped) else e.serial for e in out] == ["BadCRC", 3]
    assert decoder.pending == 0


def test_length_below_the_header_is_dropped():
    out = StreamDecoder().feed(b"\x68\x02" + codec.encode(HEARTBEAT, serial=9))
    assert [getattr(e, "code", None) or e.serial for e in out] == ["BadLength", 9]


def test_garbage_between_good_frames_is_reported_once():
    frame = codec.encode(HEARTBEAT, serial=1)
    out = StreamDecoder().feed(frame + b"AT+CSQ\r\n" + frame)
    assert [e.code if isinstance(e, Dropped) else e.serial for e in out] == [1, "Garbage", 1]
    assert out[1].raw == b"AT+CSQ\r\n"


def test_a_partial_frame_waits_for_its_rest():
    frame = codec.encode(HEARTBEAT, serial=7)
    decoder = StreamDecoder()
    assert decoder.feed(frame[:5]) == []
    assert decoder.pending == 5
    [envelope] = decoder.feed(frame[5:])
    assert envelope.decode() == HEARTBEAT and decoder.pending == 0


# --- round trips (hypothesis) ---------------------------------------------------------


def strategy(c: codec.Codec):
    if isinstance(c, Bcd):
        return st.text("0123456789", min_size=2 * c.size, max_size=2 * c.size)
    if isinstance(c, Gun):
        return st.integers(0, 99)
    if isinstance(c, Offset):
        return st.integers(c.offset, 255 + c.offset)
    if isinstance(c, UInt):
        return st.integers(0, 2 ** (8 * c.size) - 1)
    if isinstance(c, Scaled):
        return st.integers(0, 2 ** (8 * c.size) - 1).map(lambda n: Decimal(n).scaleb(-c.places))
    if isinstance(c, Ascii):
        return st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=c.size)
    if isinstance(c, Raw):
        return st.binary(min_size=c.size, max_size=c.size).map(lambda b: b.hex().upper())
    if isinstance(c, Cp56):
        return st.datetimes(wall(2000, 1, 1), wall(2127, 12, 31, 23, 59, 59)).map(
            lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)
        )
    if isinstance(c, Slots):
        return st.lists(st.integers(0, 3), min_size=48, max_size=48).map(tuple)
    raise AssertionError(c)


def bodies(cls):
    return st.builds(cls, **{name: strategy(c) for name, c in cls.layout()})


@pytest.mark.parametrize("cls", list(codec.TYPES.values()), ids=lambda c: c.NAME)
@settings(max_examples=25, deadline=None)
@given(data=st.data(), serial=st.integers(0, 0xFFFF))
def test_every_frame_type_round_trips(cls, data, serial):
    body = data.draw(bodies(cls))
    frame = codec.encode(body, serial=serial)
    [envelope] = StreamDecoder().feed(frame)
    assert (envelope.serial, envelope.type, envelope.encryption) == (serial, cls.TYPE, 0)
    assert envelope.decode() == body
    assert len(frame) == 2 + cls.size() + codec.HEADER + 2


@settings(max_examples=40, deadline=None)
@given(
    frames=st.lists(st.sampled_from(list(codec.TYPES.values())).flatmap(bodies), max_size=6),
    cuts=st.lists(st.integers(1, 40), max_size=30),
)
def test_a_stream_cut_anywhere_gives_the_same_frames(frames, cuts):
    stream = b"".join(codec.encode(body, serial=n) for n, body in enumerate(frames))
    decoder, out, at = StreamDecoder(), [], 0
    for cut in cuts:
        out += decoder.feed(stream[at : at + cut])
        at += cut
    out += decoder.feed(stream[at:])
    assert [e.decode() for e in out] == frames
