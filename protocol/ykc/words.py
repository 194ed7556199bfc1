"""YKC words ↔ the core's: gun states, credentials, authorisation answers, transaction
serials, stop reasons, pile times and the billing model (the station's tariff in force)."""

from __future__ import annotations

import datetime as dt
import secrets
import zoneinfo
from decimal import Decimal

from billing.pricing import TariffSpec
from billing.services.sessions import AuthDecision, Credential, CredentialKind, Sample
from stations.models import ConnectorState

from . import codec

# 0x13 status: 0 offline, 1 faulted, 2 idle, 3 charging (idle and plugged in: preparing).
STATUS_OFFLINE, STATUS_FAULTED, STATUS_IDLE, STATUS_CHARGING = 0, 1, 2, 3

START_BY_CARD, START_BY_VIN = 1, 3

# 0x32 failure reasons (spec §8.2).
REFUSAL_REASONS: dict[AuthDecision, int] = {
    AuthDecision.INVALID: 0x01,  # account does not exist
    AuthDecision.BLOCKED: 0x02,  # account frozen
    AuthDecision.EXPIRED: 0x02,
    AuthDecision.CONCURRENT: 0x04,  # the card has an unsettled charge
    AuthDecision.RESERVED: 0x06,  # this account may not charge at this pile (reserved)
}
VIN_UNKNOWN = 0x09

# Stop reasons (spec appendix 13.1) the core knows by the words OCPP uses for them; the
# others are kept as the pile's code, e.g. "YKC-0x6B".
STOP_REASONS = {
    0x40: "Remote",
    0x41: "EVDisconnected",
    0x42: "Local",
    0x43: "Local",
    0x44: "Local",
    0x45: "Local",
    0x6E: "DeAuthorized",
    0x83: "PowerLoss",
}


def connector_state(status: int, plugged: int) -> ConnectorState:
    if status == STATUS_CHARGING:
        return ConnectorState.CHARGING
    if status == STATUS_FAULTED:
        return ConnectorState.FAULTED
    if status == STATUS_OFFLINE:
        return ConnectorState.UNAVAILABLE
    if status == STATUS_IDLE:
        return ConnectorState.PREPARING if plugged == 1 else ConnectorState.AVAILABLE
    return ConnectorState.UNKNOWN


def hardware_error(bits: int) -> str:
    """The core keeps a pile's error as a code: the 0x13 fault bits, none when clear."""
    return f"YKC-HW-{bits:04X}" if bits else ""


def credential(request: codec.StartRequest) -> Credential | None:
    """What a pile-initiated start (0x31) presents: the physical card number (its bytes as
    hex, without the zero padding in front) or the VIN (sent last character first)."""
    if request.start_kind == START_BY_CARD:
        card = bytes.fromhex(request.card).lstrip(b"\x00").hex().upper()
        return Credential(CredentialKind.CARD, card) if card else None
    if request.start_kind == START_BY_VIN:
        vin = request.vin_reversed[::-1]
        return Credential(CredentialKind.VIN, vin) if vin else None
    return None


def card_bytes(value: str) -> str:
    """A card number as the 8 BIN bytes of a frame: hex digits, zero padded in front; a
    card number that is not hex (a platform card "C123") travels as zeros."""
    try:
        data = bytes.fromhex(value if len(value) % 2 == 0 else f"0{value}")
    except ValueError:
        data = b""
    return data.rjust(8, b"\x00")[-8:].hex().upper() if len(data) <= 8 else "00" * 8


def refusal_reason(decision: AuthDecision, credential: Credential | None) -> int:
    if credential is not None and credential.kind == CredentialKind.VIN:
        return VIN_UNKNOWN
    return REFUSAL_REASONS.get(decision, 0x01)


def new_serial(*, pile_code: str, gun: int, at: dt.datetime) -> str:
    """A transaction serial as the spec builds it: pile code (14) + gun (2) + local
    yyMMddHHmmss (12) + a sequence number (4), 32 digits. The sequence is random: two
    starts on one gun in one second are what would have to meet."""
    return f"{pile_code}{gun:02d}{at:%y%m%d%H%M%S}{secrets.randbelow(10_000):04d}"


def is_serial(value: str) -> bool:
    """A serial that names a transaction (idle guns report all zeros)."""
    return bool(value.strip("0"))


def pile_time(value: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """A pile's CP56Time2a wall-clock time, read in its station's zone."""
    return value.replace(tzinfo=zone)


def wire_time(at: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """An aware time as the station's wall clock, for a CP56Time2a field."""
    return at.astimezone(zone).replace(tzinfo=None)


def kwh_to_wh(kwh: Decimal) -> Decimal:
    return kwh * 1000


def sample(frame: codec.RealTimeData, *, at: dt.datetime) -> Sample:
    """A 0x13 real-time frame as a meter sample: energy charged so far (the session starts
    its register at 0), voltage, current, their power, SoC."""
    return Sample(
        at=at,
        energy_wh=kwh_to_wh(frame.energy),
        power_w=frame.voltage * frame.current,
        current_a=frame.current,
        voltage_v=frame.voltage,
        soc=frame.soc,
        context="Sample.Periodic",
    )


def model_number(spec: TariffSpec) -> str:
    """The 4-digit billing model number of a tariff version (never 0000: a pile that
    never had a model sends 0000)."""
    return f"{spec.version_id % 9999 + 1:04d}"


def billing_model(spec: TariffSpec, *, pile_code: str, cls: type[codec._BillingModel]):
    """The tariff version as a billing model frame: its four periods' prices and its 48
    half-hour slots map one to one (period 0 sharp … 3 valley = rate 0x00 … 0x03)."""
    prices = {}
    for name, period in zip(codec.PERIOD_NAMES, spec.prices, strict=True):
        prices[f"{name}_electricity"] = period.electricity
        prices[f"{name}_service"] = period.service
    return cls(
        pile_code=pile_code,
        model=model_number(spec),
        loss_ratio=0,
        slots=tuple(spec.schedule),
        **prices,
    )


def record_reported(record: codec.TransactionRecord, zone: zoneinfo.ZoneInfo) -> dict:
    """What the pile's own transaction record says, for the fault desk beside the
    platform's figures (`faults.facts`): energy per period in Wh (period 0 sharp …
    3 valley), its amounts and unit prices, meter readings, its charging time."""
    periods, amounts, prices = {}, {}, {}
    for period, name in enumerate(codec.PERIOD_NAMES):
        periods[str(period)] = str(kwh_to_wh(getattr(record, f"{name}_energy")))
        amounts[str(period)] = str(getattr(record, f"{name}_amount"))
        prices[str(period)] = str(getattr(record, f"{name}_price"))
    started, ended = pile_time(record.started, zone), pile_time(record.ended, zone)
    return {
        "periods": periods,
        "amounts": amounts,
        "prices": prices,
        "total_wh": str(kwh_to_wh(record.total_energy)),
        "total_amount": str(record.total_amount),
        "meter_start_wh": str(kwh_to_wh(record.meter_start)),
        "meter_stop_wh": str(kwh_to_wh(record.meter_stop)),
        "started_at": started.isoformat(),
        "stopped_at": ended.isoformat(),
        "charging_seconds": int((ended - started).total_seconds()),
        "stop_reason": f"0x{record.stop_reason:02X}",
    }


def stop_reason(code: int) -> str:
    return STOP_REASONS.get(code, f"YKC-0x{code:02X}")
