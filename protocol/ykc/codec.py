"""The 云快充 (YKC) 1.5/1.6 wire format: frames, field encodings and a stream decoder.

A frame (spec §3.1)::

    0x68 | length | serial (2, LE) | encryption flag | type | body … | CRC-16 (2, low first)

``length`` counts serial + flag + type + body (so body = length − 4); the CRC is
CRC-16/MODBUS (reflected 0xA001, init 0xFFFF) over serial … body. Spec field types: BCD
(pile code 7 bytes = 14 digits, transaction serial 16 bytes = 32 digits, gun 1 byte),
BIN (unsigned, low byte first, decimals scaled: money ×10⁻⁴ yuan, prices ×10⁻⁵ yuan/kWh,
energy ×10⁻⁴ kWh, volts and amps ×10⁻¹), ASCII (NUL padded) and CP56Time2a (7 bytes,
the pile's wall clock).

Layouts follow the field tables of 《充电桩与云快充服务平台交互协议》V1.6, checked against
the lengths its samples carry; where a sample's bytes disagree with its table (printed
CRCs, a service price written high byte first) the table wins. Every frame type is a
dataclass whose fields carry their encoding (`field` metadata), so one declaration gives
the layout, the decoder, the encoder and the round-trip tests.

This module knows bytes only: no Django, no database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

START = 0x68
HEADER = 4  # serial (2) + encryption flag + type: what ``length`` counts besides the body
MAX_LENGTH = 255  # one length byte
NOT_ENCRYPTED = 0x00
ENCRYPTED_3DES = 0x01


class FrameError(Exception):
    """A frame that cannot be taken: ``code`` names the problem for the journal."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# --- CRC-16/MODBUS --------------------------------------------------------------------


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _bit in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of ``data`` (sent low byte first)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


# --- field encodings ------------------------------------------------------------------


class Codec:
    size: int

    def encode(self, value) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes):
        raise NotImplementedError


@dataclass(frozen=True)
class Bcd(Codec):
    """Packed BCD, most significant digit first: a string of 2 × size digits."""

    size: int

    def encode(self, value: str) -> bytes:
        if len(value) != 2 * self.size or not value.isdigit() or not value.isascii():
            raise ValueError(f"{value!r} is not {2 * self.size} digits")
        return bytes.fromhex(value)

    def decode(self, data: bytes) -> str:
        text = data.hex()
        if not text.isdigit():
            raise FrameError("BadBCD", f"BCD field holds a non-digit: {data.hex().upper()}")
        return text


@dataclass(frozen=True)
class Gun(Codec):
    """A gun number: one BCD byte, 0–99."""

    size: int = 1

    def encode(self, value: int) -> bytes:
        if not 0 <= value <= 99:
            raise ValueError(f"gun {value} is not 0-99")
        return bytes.fromhex(f"{value:02d}")

    def decode(self, data: bytes) -> int:
        return int(Bcd(1).decode(data))


@dataclass(frozen=True)
class UInt(Codec):
    """Unsigned little-endian integer."""

    size: int

    def encode(self, value: int) -> bytes:
        return value.to_bytes(self.size, "little")

    def decode(self, data: bytes) -> int:
        return int.from_bytes(data, "little")


@dataclass(frozen=True)
class Offset(Codec):
    """One byte with an offset: temperatures are sent as °C + 50."""

    size: int = 1
    offset: int = -50

    def encode(self, value: int) -> bytes:
        return (value - self.offset).to_bytes(1, "little")

    def decode(self, data: bytes) -> int:
        return data[0] + self.offset


@dataclass(frozen=True)
class Scaled(Codec):
    """An unsigned little-endian integer of ``places`` decimals, as an exact Decimal."""

    size: int
    places: int

    def encode(self, value: Decimal) -> bytes:
        units = value.scaleb(self.places)
        if units != units.to_integral_value():
            raise ValueError(f"{value} has more than {self.places} decimals")
        return int(units).to_bytes(self.size, "little")

    def decode(self, data: bytes) -> Decimal:
        return Decimal(int.from_bytes(data, "little")).scaleb(-self.places)


@dataclass(frozen=True)
class Ascii(Codec):
    """ASCII text padded with NULs to ``size`` bytes."""

    size: int

    def encode(self, value: str) -> bytes:
        data = value.encode("ascii")
        if len(data) > self.size or b"\x00" in data:
            raise ValueError(f"{value!r} does not fit {self.size} ASCII bytes")
        return data.ljust(self.size, b"\x00")

    def decode(self, data: bytes) -> str:
        # Piles pad with NULs or with ASCII "0"s; what is not ASCII is kept visible.
        return data.rstrip(b"\x00").decode("ascii", "backslashreplace")


@dataclass(frozen=True)
class Raw(Codec):
    """Bytes the platform does not interpret (card numbers, MD5 digests, cable codes),
    as upper-case hex."""

    size: int

    def encode(self, value: str) -> bytes:
        data = bytes.fromhex(value)
        if len(data) != self.size:
            raise ValueError(f"{value!r} is not {self.size} bytes")
        return data

    def decode(self, data: bytes) -> str:
        return data.hex().upper()


@dataclass(frozen=True)
class Cp56(Codec):
    """CP56Time2a (IEC 60870-5-104): ms (2, LE), minute, hour, day (+ weekday in the top 3
    bits), month, year − 2000. A naive wall-clock time: the caller knows the zone."""

    size: int = 7

    def encode(self, value: dt.datetime) -> bytes:
        if not 2000 <= value.year <= 2127:
            raise ValueError(f"{value} is outside CP56Time2a's years")
        millis = value.second * 1000 + value.microsecond // 1000
        weekday = value.isoweekday() << 5
        return millis.to_bytes(2, "little") + bytes(
            [value.minute, value.hour, value.day | weekday, value.month, value.year - 2000]
        )

    def decode(self, data: bytes) -> dt.datetime:
        millis = int.from_bytes(data[:2], "little")
        try:
            return dt.datetime(  # noqa: DTZ001 - the pile's wall clock; its zone is the station's
                2000 + (data[6] & 0x7F),
                data[5] & 0x0F,
                data[4] & 0x1F,
                data[3] & 0x1F,
                data[2] & 0x3F,
                millis // 1000,
                (millis % 1000) * 1000,
            )
        except ValueError as exc:
            raise FrameError("BadTime", f"not a CP56Time2a time: {data.hex().upper()}") from exc


@dataclass(frozen=True)
class Slots(Codec):
    """The 48 half-hour rate numbers of a billing model (0 sharp, 1 peak, 2 flat, 3 valley)."""

    size: int = 48

    def encode(self, value: tuple[int, ...]) -> bytes:
        if len(value) != self.size or any(not 0 <= slot <= 3 for slot in value):
            raise ValueError("48 slots, each 0-3")
        return bytes(value)

    def decode(self, data: bytes) -> tuple[int, ...]:
        if any(slot > 3 for slot in data):
            raise FrameError("BadRate", f"a half-hour rate number is not 0-3: {data.hex()}")
        return tuple(data)


def _f(codec: Codec, default: Any = dataclasses.MISSING):
    if default is dataclasses.MISSING:
        return field(metadata={"codec": codec})
    return field(default=default, metadata={"codec": codec})


def _code():
    return _f(Bcd(7))


def _gun():
    return _f(Gun())


def _serial():
    return _f(Bcd(16))


def _yuan4():
    return _f(Scaled(4, 4))


def _price5():
    return _f(Scaled(4, 5))


def _kwh4(size: int = 4):
    return _f(Scaled(size, 4))


def _u8(default: Any = dataclasses.MISSING):
    return _f(UInt(1), default)


# --- frames ---------------------------------------------------------------------------


class Body:
    """A frame body; subclasses are dataclasses with a ``TYPE`` and encoded fields."""

    TYPE: ClassVar[int]
    NAME: ClassVar[str]

    @classmethod
    def layout(cls) -> list[tuple[str, Codec]]:
        # Computed once per class: every frame in and out walks it (10,000 piles
        # heartbeating are a thousand frames a second).
        layout = cls.__dict__.get("_layout")
        if layout is None:
            layout = [(f.name, f.metadata["codec"]) for f in dataclasses.fields(cls)]
            cls._layout = layout
        return layout

    @classmethod
    def size(cls) -> int:
        size = cls.__dict__.get("_size")
        if size is None:
            size = cls._size = sum(codec.size for _name, codec in cls.layout())
        return size

    def encode(self) -> bytes:
        return b"".join(codec.encode(getattr(self, name)) for name, codec in self.layout())

    @classmethod
    def decode(cls, body: bytes):
        expected = cls.size()
        if len(body) != expected:
            raise FrameError(
                "BadLength",
                f"{cls.NAME} (0x{cls.TYPE:02X}) body has {len(body)} bytes, not {expected}",
            )
        values, at = {}, 0
        for name, codec in cls.layout():
            values[name] = codec.decode(body[at : at + codec.size])
            at += codec.size
        return cls(**values)

    def fields(self) -> dict:
        """The decoded fields as JSON (for the journal)."""
        return {name: _json(getattr(self, name)) for name, _codec in self.layout()}


def _json(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return "".join(map(str, value))
    return value


TYPES: dict[int, type[Body]] = {}
_body_dataclass = dataclass(frozen=True, kw_only=True)


def frame(type_code: int, name: str):
    def register(cls):
        cls = _body_dataclass(cls)
        cls.TYPE, cls.NAME = type_code, name
        TYPES[type_code] = cls
        return cls

    return register


@frame(0x01, "Login")
class Login(Body):
    pile_code: str = _code()
    pile_type: int = _u8()  # 0 DC, 1 AC
    gun_count: int = _u8()
    protocol_version: int = _u8()  # version × 10: 0x0F is 1.5, 0x10 is 1.6
    program_version: str = _f(Ascii(8))
    network: int = _u8()  # 0 SIM, 1 LAN, 2 WAN, 3 other
    sim: str = _f(Bcd(10))
    carrier: int = _u8()  # 0 China Mobile, 2 Telecom, 3 Unicom, 4 other


@frame(0x02, "LoginAnswer")
class LoginAnswer(Body):
    pile_code: str = _code()
    result: int = _u8()  # 0 accepted, 1 refused


@frame(0x03, "Heartbeat")
class Heartbeat(Body):
    pile_code: str = _code()
    gun: int = _gun()
    gun_state: int = _u8()  # 0 normal, 1 faulted


@frame(0x04, "HeartbeatAnswer")
class HeartbeatAnswer(Body):
    pile_code: str = _code()
    gun: int = _gun()
    answer: int = _u8()


@frame(0x05, "BillingModelCheck")
class BillingModelCheck(Body):
    pile_code: str = _code()
    model: str = _f(Bcd(2))  # 0000 on the first connection


@frame(0x06, "BillingModelCheckAnswer")
class BillingModelCheckAnswer(Body):
    pile_code: str = _code()
    model: str = _f(Bcd(2))
    result: int = _u8()  # 0 same as the platform's, 1 different: ask for it (0x09)


@frame(0x09, "BillingModelRequest")
class BillingModelRequest(Body):
    pile_code: str = _code()


@_body_dataclass
class _BillingModel(Body):
    """0x0A and 0x58: four rates (electricity + service, yuan/kWh ×10⁻⁵) and the rate
    number of each of the 48 half hours from 00:00."""

    pile_code: str = _code()
    model: str = _f(Bcd(2))
    sharp_electricity: Decimal = _price5()
    sharp_service: Decimal = _price5()
    peak_electricity: Decimal = _price5()
    peak_service: Decimal = _price5()
    flat_electricity: Decimal = _price5()
    flat_service: Decimal = _price5()
    valley_electricity: Decimal = _price5()
    valley_service: Decimal = _price5()
    loss_ratio: int = _u8()  # 计损比例: the platform does not use it
    slots: tuple[int, ...] = _f(Slots())

    def prices(self) -> list[tuple[Decimal, Decimal]]:
        """(electricity, service) of periods 0 sharp … 3 valley."""
        names = ("sharp", "peak", "flat", "valley")
        return [(getattr(self, f"{n}_electricity"), getattr(self, f"{n}_service")) for n in names]


@frame(0x0A, "BillingModelAnswer")
class BillingModelAnswer(_BillingModel):
    pass


@frame(0x13, "RealTimeData")
class RealTimeData(Body):
    serial: str = _serial()
    pile_code: str = _code()
    gun: int = _gun()
    status: int = _u8()  # 0 offline, 1 faulted, 2 idle, 3 charging
    gun_home: int = _u8()  # 0 no, 1 yes, 2 unknown
    plugged: int = _u8()  # 0 no, 1 yes
    voltage: Decimal = _f(Scaled(2, 1))  # V
    current: Decimal = _f(Scaled(2, 1))  # A
    cable_temperature: int = _f(Offset())  # °C
    cable_code: str = _f(Raw(8))
    soc: int = _u8()  # %
    battery_max_temperature: int = _f(Offset())
    charging_minutes: int = _f(UInt(2))
    remaining_minutes: int = _f(UInt(2))
    energy: Decimal = _kwh4()  # kWh charged so far
    loss_energy: Decimal = _kwh4()
    amount: Decimal = _yuan4()  # yuan so far (electricity + service)
    hardware_faults: int = _f(UInt(2))  # bit field, bit 0 = emergency stop …


@frame(0x19, "ChargeEnd")
class ChargeEnd(Body):
    serial: str = _serial()
    pile_code: str = _code()
    gun: int = _gun()
    soc: int = _u8()
    cell_min_voltage: Decimal = _f(Scaled(2, 2))
    cell_max_voltage: Decimal = _f(Scaled(2, 2))
    battery_min_temperature: int = _f(Offset())
    battery_max_temperature: int = _f(Offset())
    charging_minutes: int = _f(UInt(2))
    output_energy: Decimal = _f(Scaled(2, 1))  # kWh
    charger_number: int = _f(UInt(4))


@frame(0x31, "StartRequest")
class StartRequest(Body):
    pile_code: str = _code()
    gun: int = _gun()
    start_kind: int = _u8()  # 1 card, 2 account (not supported by YKC), 3 VIN
    password_needed: int = _u8()
    card: str = _f(Raw(8))  # physical card number, zero padded in front
    password_md5: str = _f(Raw(16))
    vin_reversed: str = _f(Ascii(17))  # the VIN, last character first


@frame(0x32, "StartAnswer")
class StartAnswer(Body):
    serial: str = _serial()
    pile_code: str = _code()
    gun: int = _gun()
    logical_card: str = _f(Bcd(8))
    balance: Decimal = _f(Scaled(4, 2))
    accepted: int = _u8()  # 0 refused, 1 accepted
    reason: int = _u8()  # 0x01 unknown account … 0x0B cards not taken (spec §8.2)


@frame(0x33, "RemoteStartAnswer")
class RemoteStartAnswer(Body):
    serial: str = _serial()
    pile_code: str = _code()
    gun: int = _gun()
    result: int = _u8()  # 0 failed, 1 started
    reason: int = _u8()  # 0 none, 1 code mismatch, 2 gun busy, 3 fault, 4 offline, 5 unplugged


@frame(0x34, "RemoteStart")
class RemoteStart(Body):
    serial: str = _serial()
    pile_code: str = _code()
    gun: int = _gun()
    logical_card: str = _f(Bcd(8))
    physical_card: str = _f(Raw(8))
    balance: Decimal = _f(Scaled(4, 2))


@frame(0x35, "RemoteStopAnswer")
class RemoteStopAnswer(Body):
    pile_code: str = _code()
    gun: int = _gun()
    result: int = _u8()  # 0 failed, 1 stopped
    reason: int = _u8()  # 0 none, 1 code mismatch, 2 not charging, 3 other


@frame(0x36, "RemoteStop")
class RemoteStop(Body):
    pile_code: str = _code()
    gun: int = _gun()


PERIOD_NAMES = ("sharp", "peak", "flat", "valley")


@frame(0x3B, "TransactionRecord")
class TransactionRecord(Body):
    serial: str = _serial()
    pile_code: str = _code()
    gun: int = _gun()
    started: dt.datetime = _f(Cp56())
    ended: dt.datetime = _f(Cp56())
    sharp_price: Decimal = _price5()  # electricity + service
    sharp_energy: Decimal = _kwh4()
    sharp_loss_energy: Decimal = _kwh4()
    sharp_amount: Decimal = _yuan4()
    peak_price: Decimal = _price5()
    peak_energy: Decimal = _kwh4()
    peak_loss_energy: Decimal = _kwh4()
    peak_amount: Decimal = _yuan4()
    flat_price: Decimal = _price5()
    flat_energy: Decimal = _kwh4()
    flat_loss_energy: Decimal = _kwh4()
    flat_amount: Decimal = _yuan4()
    valley_price: Decimal = _price5()
    valley_energy: Decimal = _kwh4()
    valley_loss_energy: Decimal = _kwh4()
    valley_amount: Decimal = _yuan4()
    meter_start: Decimal = _kwh4(5)
    meter_stop: Decimal = _kwh4(5)
    total_energy: Decimal = _kwh4()
    total_loss_energy: Decimal = _kwh4()
    total_amount: Decimal = _yuan4()
    vin: str = _f(Ascii(17))
    trade_kind: int = _u8()  # 1 app, 2 card, 4 offline card, 5 VIN
    traded_at: dt.datetime = _f(Cp56())
    stop_reason: int = _u8()  # spec appendix 13.1 (0x40 app stop, 0x41 SoC 100 %, …)
    physical_card: str = _f(Raw(8))


@frame(0x40, "TransactionRecordAnswer")
class TransactionRecordAnswer(Body):
    serial: str = _serial()
    result: int = _u8()  # 0 received, 1 not a valid record


@frame(0x55, "ClockSyncAnswer")
class ClockSyncAnswer(Body):
    pile_code: str = _code()
    time: dt.datetime = _f(Cp56())


@frame(0x56, "ClockSync")
class ClockSync(Body):
    pile_code: str = _code()
    time: dt.datetime = _f(Cp56())


@frame(0x57, "SetBillingModelAnswer")
class SetBillingModelAnswer(Body):
    pile_code: str = _code()
    result: int = _u8()  # 0 failed, 1 set


@frame(0x58, "SetBillingModel")
class SetBillingModel(_BillingModel):
    pass


@frame(0x91, "RebootAnswer")
class RebootAnswer(Body):
    pile_code: str = _code()
    result: int = _u8()  # 0 failed, 1 accepted


@frame(0x92, "Reboot")
class Reboot(Body):
    pile_code: str = _code()
    control: int = _u8()  # 1 now, 2 when idle


# Each platform command and the answer the pile sends back to it.
ANSWERS: dict[int, int] = {
    RemoteStart.TYPE: RemoteStartAnswer.TYPE,
    RemoteStop.TYPE: RemoteStopAnswer.TYPE,
    ClockSync.TYPE: ClockSyncAnswer.TYPE,
    SetBillingModel.TYPE: SetBillingModelAnswer.TYPE,
    Reboot.TYPE: RebootAnswer.TYPE,
}


# --- envelope and stream --------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """One frame off the wire whose start, length and CRC are right."""

    serial: int
    encryption: int
    type: int
    body: bytes
    raw: bytes

    def decode(self) -> Body:
        """The typed body; `FrameError` for an unknown type or a body that does not fit."""
        cls = TYPES.get(self.type)
        if cls is None:
            raise FrameError("UnknownType", f"unknown frame type 0x{self.type:02X}")
        return cls.decode(self.body)


@dataclass(frozen=True)
class Dropped:
    """Bytes the decoder threw away, and why (``BadCRC``, ``BadLength``, ``Garbage``)."""

    code: str
    raw: bytes


def encode(body: Body, *, serial: int, encryption: int = NOT_ENCRYPTED) -> bytes:
    return encode_raw(body.TYPE, body.encode(), serial=serial, encryption=encryption)


def encode_raw(type_code: int, body: bytes, *, serial: int, encryption: int = 0) -> bytes:
    inner = serial.to_bytes(2, "little") + bytes([encryption, type_code]) + body
    if len(inner) > MAX_LENGTH:
        raise ValueError(f"frame of {len(inner)} bytes does not fit a length byte")
    return bytes([START, len(inner)]) + inner + crc16(inner).to_bytes(2, "little")


class StreamDecoder:
    """Cut a TCP byte stream into frames.

    A frame whose CRC does not match is dropped (a line glitch). When the next frame starts
    right behind it, it is dropped whole; otherwise the stream picks up again at the next
    0x68 after its start byte: a corrupt length cannot swallow the good
    frames behind it (the bytes skipped on the way belong to the frame dropped, which is
    reported whole, so they are not reported again). Other bytes before a start byte are
    dropped as garbage. A length too short to hold a header is dropped like a bad CRC.
    Nothing here closes a connection."""

    def __init__(self, *, max_garbage: int = 256):
        self._buffer = bytearray()
        self.max_garbage = max_garbage
        self._resyncing = False

    def feed(self, data: bytes) -> list[Envelope | Dropped]:
        self._buffer += data
        out: list[Envelope | Dropped] = []
        buf = self._buffer
        while buf:
            start = buf.find(START)
            if start != 0:
                cut = len(buf) if start < 0 else start
                if not self._resyncing:
                    out.append(Dropped("Garbage", bytes(buf[: min(cut, self.max_garbage)])))
                del buf[:cut]
                self._resyncing = self._resyncing and start < 0
                continue
            if len(buf) < 2:
                break
            length = buf[1]
            if length < HEADER:
                out.append(Dropped("BadLength", bytes(buf[:2])))
                del buf[:1]
                self._resyncing = True
                continue
            total = 2 + length + 2
            if len(buf) < total:
                break
            inner = bytes(buf[2 : 2 + length])
            if crc16(inner) != int.from_bytes(buf[2 + length : total], "little"):
                out.append(Dropped("BadCRC", bytes(buf[:total])))
                # Its length is believed only when the next frame starts right behind it
                # (or nothing came after it yet): else a 0x68 inside a glitched frame
                # would be taken for a start and its "length" would swallow the frames
                # that follow until enough bytes came.
                whole = len(buf) == total or buf[total] == START
                del buf[: total if whole else 1]
                self._resyncing = not whole
                continue
            self._resyncing = False
            out.append(
                Envelope(
                    serial=int.from_bytes(inner[:2], "little"),
                    encryption=inner[2],
                    type=inner[3],
                    body=inner[4:],
                    raw=bytes(buf[:total]),
                )
            )
            del buf[:total]
        return out

    @property
    def pending(self) -> int:
        """Bytes waiting for the rest of their frame."""
        return len(self._buffer)
