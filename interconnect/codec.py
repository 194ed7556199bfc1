"""The T/CEC 102 wire codec (中电联 电动汽车充换电服务信息交换): envelopes, encryption, signatures.

A request is ``{"OperatorID", "Data", "TimeStamp", "Seq", "Sig"}``, an answer
``{"Ret", "Msg", "Data", "Sig"}``. ``Data`` is the JSON payload, AES-128-CBC encrypted
(PKCS#7 padding) with the DataSecret as key and DataSecretIV as IV, both 16 ASCII
characters, then base64. ``Sig`` is HMAC-MD5 with the SigSecret over the other fields
concatenated in that order (``OperatorID + Data + TimeStamp + Seq``; ``Ret + Msg + Data``),
upper-case hex. The receiver checks the signature first and decrypts only then, so an
unsigned body is never parsed.

Every secret is per partner *and* per direction (`Secrets`): what the partner uses to call
us is not what we use to call it. Partners misspell the standard in known ways
(`Spelling`): the standard itself writes ``Sevice`` (SevicePrice, TotalSeviceMoney) and
some platforms "correct" it; some send camelCase keys. Reading tolerates them all; writing
uses the partner's own spelling.

Pure functions, no Django: the served endpoints, the push worker and the fake partner
platform share them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# The standard's clock: TimeStamp is local time in China, yyyyMMddHHmmss.
CHINA = ZoneInfo("Asia/Shanghai")
TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"
REQUEST_FIELDS = ("OperatorID", "Data", "TimeStamp", "Seq")
ANSWER_FIELDS = ("Ret", "Msg", "Data")
SEQ_RE = re.compile(r"^[0-9]{4}$")
TIMESTAMP_RE = re.compile(r"^[0-9]{14}$")


class Ret(enum.IntEnum):
    """The answer codes of the standard."""

    OK = 0
    SIGNATURE = 4001  # 签名错误
    TOKEN = 4002  # Token 错误
    ENVELOPE = 4003  # POST 参数不合法 (envelope, time, replay)
    DATA = 4004  # 请求的业务参数不合法
    SERVER = 500  # 系统错误


class CodecError(Exception):
    """A message that cannot be accepted; ``ret`` is the answer code it deserves."""

    def __init__(self, ret: Ret, message: str):
        super().__init__(message)
        self.ret = ret


@dataclass(frozen=True)
class Secrets:
    """One direction's credentials (16-character DataSecret, DataSecretIV and SigSecret)."""

    operator_id: str
    operator_secret: str
    data_secret: str
    data_secret_iv: str
    sig_secret: str

    def as_wire(self) -> dict:
        return {
            "OperatorID": self.operator_id,
            "OperatorSecret": self.operator_secret,
            "DataSecret": self.data_secret,
            "DataSecretIV": self.data_secret_iv,
            "SigSecret": self.sig_secret,
        }


# --- Spelling -------------------------------------------------------------------------


class KeyCase(enum.StrEnum):
    PASCAL = "pascal"  # the standard: StationID, ConnectorStatusInfos
    CAMEL = "camel"  # stationID, connectorStatusInfos


@dataclass(frozen=True)
class Spelling:
    """How a partner writes keys: the standard's ``Sevice`` or ``Service``, and the case
    of the first letter. Reading accepts any of these from every partner."""

    sevice: bool = True
    key_case: KeyCase = KeyCase.PASCAL


STANDARD = Spelling()


def _fold(key: str) -> str:
    return key.lower().replace("service", "sevice")


def spell_read(value, known: frozenset[str] | None = None):
    """``value`` with every key in the standard's spelling (``SevicePrice``, ``StationID``):
    keys are matched without regard to case or to Service/Sevice against the known names
    (`WIRE_KEYS`); unknown keys are kept as sent."""
    table = _FOLDED if known is None else {_fold(k): k for k in known}
    if isinstance(value, dict):
        return {table.get(_fold(k), k): spell_read(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [spell_read(v, known) for v in value]
    return value


def spell_write(value, spelling: Spelling):
    """``value`` (in the standard's spelling) in the partner's own."""
    if spelling == STANDARD:
        return value
    if isinstance(value, dict):
        return {_spell_key(k, spelling): spell_write(v, spelling) for k, v in value.items()}
    if isinstance(value, list):
        return [spell_write(v, spelling) for v in value]
    return value


def _spell_key(key: str, spelling: Spelling) -> str:
    if not spelling.sevice:
        key = key.replace("Sevice", "Service")
    if spelling.key_case == KeyCase.CAMEL and key:
        key = key[0].lower() + key[1:]
    return key


# --- Encryption and signatures ----------------------------------------------------------


def _key16(text: str, what: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) != 16:
        raise ValueError(f"{what} must be 16 bytes, not {len(raw)}")
    return raw


def data_encrypt(plain: str, *, secret: str, iv: str) -> str:
    """AES-128-CBC, PKCS#7, base64 (standard alphabet, padded)."""
    padder = padding.PKCS7(128).padder()
    block = padder.update(plain.encode("utf-8")) + padder.finalize()
    cipher = Cipher(algorithms.AES(_key16(secret, "DataSecret")), modes.CBC(_key16(iv, "IV")))
    encryptor = cipher.encryptor()
    return base64.b64encode(encryptor.update(block) + encryptor.finalize()).decode("ascii")


def data_decrypt(text: str, *, secret: str, iv: str) -> str:
    """The inverse of `data_encrypt`; anything that is not its output is `Ret.DATA`."""
    try:
        raw = base64.b64decode(text, validate=True)
        if not raw or len(raw) % 16:
            raise ValueError("not whole AES blocks")
        cipher = Cipher(algorithms.AES(_key16(secret, "DataSecret")), modes.CBC(_key16(iv, "IV")))
        decryptor = cipher.decryptor()
        block = decryptor.update(raw) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(block) + unpadder.finalize()).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise CodecError(Ret.DATA, f"Data cannot be decrypted: {exc}") from exc


def sign(secret: str, *parts: object) -> str:
    """HMAC-MD5 over ``parts`` concatenated, upper-case hex."""
    message = "".join(str(p) for p in parts).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.md5).hexdigest().upper()


def _signature_ok(secret: str, sig: object, *parts: object) -> bool:
    return isinstance(sig, str) and hmac.compare_digest(sig.upper(), sign(secret, *parts))


def _dump(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _load(text: str) -> dict:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CodecError(Ret.DATA, f"Data is not JSON: {type(exc).__name__}") from exc
    if not isinstance(data, dict):
        raise CodecError(Ret.DATA, "Data is not a JSON object")
    return data


# --- Envelopes -------------------------------------------------------------------------


def timestamp_format(at: dt.datetime) -> str:
    return at.astimezone(CHINA).strftime(TIMESTAMP_FORMAT)


def timestamp_parse(text: str) -> dt.datetime:
    if not isinstance(text, str) or not TIMESTAMP_RE.fullmatch(text):
        raise CodecError(Ret.ENVELOPE, "TimeStamp must be 14 digits (yyyyMMddHHmmss)")
    try:
        return dt.datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=CHINA)
    except ValueError as exc:
        raise CodecError(Ret.ENVELOPE, f"TimeStamp is not a time: {text}") from exc


def request_seal(
    data: dict, *, secrets: Secrets, at: dt.datetime, seq: int, spelling: Spelling = STANDARD
) -> dict:
    """A signed request envelope carrying ``data`` from ``secrets.operator_id``."""
    encrypted = data_encrypt(
        _dump(spell_write(data, spelling)), secret=secrets.data_secret, iv=secrets.data_secret_iv
    )
    stamp, seq_text = timestamp_format(at), f"{seq % 10000:04d}"
    return {
        "OperatorID": secrets.operator_id,
        "Data": encrypted,
        "TimeStamp": stamp,
        "Seq": seq_text,
        "Sig": sign(secrets.sig_secret, secrets.operator_id, encrypted, stamp, seq_text),
    }


@dataclass(frozen=True)
class Request:
    """An opened request: who sent it, when, its sequence and its data (standard keys)."""

    operator_id: str
    at: dt.datetime
    timestamp: str
    seq: str
    data: dict


def envelope_read(body: bytes | str | dict) -> dict:
    """The envelope as a dict with the standard's key names (any key case is accepted);
    `Ret.ENVELOPE` for anything that is not a JSON object."""
    if not isinstance(body, dict):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise CodecError(Ret.ENVELOPE, f"body is not JSON: {type(exc).__name__}") from exc
    if not isinstance(body, dict):
        raise CodecError(Ret.ENVELOPE, "body is not a JSON object")
    names = {k.lower(): k for k in (*REQUEST_FIELDS, *ANSWER_FIELDS, "Sig")}
    return {names.get(k.lower(), k): v for k, v in body.items()}


def request_open(envelope: dict, *, secrets: Secrets) -> Request:
    """Check a request envelope (`envelope_read` output) signed with ``secrets``: fields
    present (`Ret.ENVELOPE`), signature (`Ret.SIGNATURE`), then decrypt (`Ret.DATA`).
    Freshness and replay are the caller's (it knows the clock and what it has seen)."""
    missing = [f for f in (*REQUEST_FIELDS, "Sig") if not isinstance(envelope.get(f), str)]
    if missing:
        raise CodecError(Ret.ENVELOPE, f"missing or not text: {', '.join(missing)}")
    if not SEQ_RE.fullmatch(envelope["Seq"]):
        raise CodecError(Ret.ENVELOPE, "Seq must be 4 digits")
    parts = [envelope[f] for f in REQUEST_FIELDS]
    if not _signature_ok(secrets.sig_secret, envelope["Sig"], *parts):
        raise CodecError(Ret.SIGNATURE, "signature does not match")
    at = timestamp_parse(envelope["TimeStamp"])
    plain = data_decrypt(envelope["Data"], secret=secrets.data_secret, iv=secrets.data_secret_iv)
    return Request(
        operator_id=envelope["OperatorID"],
        at=at,
        timestamp=envelope["TimeStamp"],
        seq=envelope["Seq"],
        data=spell_read(_load(plain)),
    )


def answer_seal(
    *,
    ret: Ret | int,
    msg: str,
    data: dict | None,
    secrets: Secrets | None,
    spelling: Spelling = STANDARD,
) -> dict:
    """A signed answer. Without ``secrets`` (the caller is unknown) Data is empty and the
    answer unsigned: there is nothing to sign it with."""
    if secrets is None:
        return {"Ret": int(ret), "Msg": msg, "Data": "", "Sig": ""}
    encrypted = ""
    if data is not None:
        encrypted = data_encrypt(
            _dump(spell_write(data, spelling)),
            secret=secrets.data_secret,
            iv=secrets.data_secret_iv,
        )
    return {
        "Ret": int(ret),
        "Msg": msg,
        "Data": encrypted,
        "Sig": sign(secrets.sig_secret, int(ret), msg, encrypted),
    }


@dataclass(frozen=True)
class Answer:
    ret: int
    msg: str
    data: dict


def answer_open(envelope: dict, *, secrets: Secrets) -> Answer:
    """Check an answer signed with ``secrets`` and decrypt its Data (empty: ``{}``)."""
    ret, msg, encrypted = envelope.get("Ret"), envelope.get("Msg", ""), envelope.get("Data", "")
    if not isinstance(ret, int) or not isinstance(msg, str) or not isinstance(encrypted, str):
        raise CodecError(Ret.ENVELOPE, "answer fields Ret, Msg, Data malformed")
    if not _signature_ok(secrets.sig_secret, envelope.get("Sig"), ret, msg, encrypted):
        raise CodecError(Ret.SIGNATURE, "answer signature does not match")
    if not encrypted:
        return Answer(ret, msg, {})
    plain = data_decrypt(encrypted, secret=secrets.data_secret, iv=secrets.data_secret_iv)
    return Answer(ret, msg, spell_read(_load(plain)))


# Every key the standard's messages use (the ones we read and write), for `spell_read`.
WIRE_KEYS = frozenset(
    [
        "OperatorID",
        "OperatorSecret",
        "AccessToken",
        "TokenAvailableTime",
        "SuccStat",
        "FailReason",
        "LastQueryTime",
        "PageNo",
        "PageSize",
        "PageCount",
        "ItemSize",
        "StationInfos",
        "StationID",
        "EquipmentOwnerID",
        "StationName",
        "CountryCode",
        "AreaCode",
        "Address",
        "ServiceTel",
        "StationType",
        "StationStatus",
        "ParkNums",
        "StationLng",
        "StationLat",
        "Construction",
        "BusineHours",
        "ElectricityFee",
        "SeviceFee",
        "EquipmentInfos",
        "EquipmentID",
        "EquipmentType",
        "Power",
        "ConnectorInfos",
        "ConnectorID",
        "ConnectorName",
        "ConnectorType",
        "VoltageUpperLimits",
        "VoltageLowerLimits",
        "Current",
        "NationalStandard",
        "StationIDs",
        "Total",
        "StationStatusInfos",
        "ConnectorStatusInfos",
        "ConnectorStatusInfo",
        "Status",
        "StartTime",
        "EndTime",
        "StationStats",
        "StationElectricity",
        "EquipmentStatsInfos",
        "EquipmentElectricity",
        "ConnectorStatsInfos",
        "ConnectorElectricity",
        "EquipBizSeq",
        "SumPeriod",
        "PolicyInfos",
        "ElecPrice",
        "SevicePrice",
        "EquipAuthSeq",
        "StartChargeSeq",
        "QRCode",
        "StartChargeSeqStat",
        "ConnectorStatus",
        "CurrentA",
        "VoltageA",
        "Soc",
        "TotalPower",
        "ElecMoney",
        "SeviceMoney",
        "TotalMoney",
        "ChargeDetails",
        "DetailStartTime",
        "DetailEndTime",
        "DetailPower",
        "DetailElecMoney",
        "DetailSeviceMoney",
        "IdentCode",
        "TotalElecMoney",
        "TotalSeviceMoney",
        "StopReason",
        "ConfirmResult",
        "CheckOrderSeq",
        "OrderCount",
        "TotalOrderPower",
        "TotalOrderMoney",
        "ChargeOrders",
        "TotalDisputeOrder",
        "TotalDisputePower",
        "TotalDisputeMoney",
        "DisputeOrders",
        "DisputeReason",
    ]
)
_FOLDED = {_fold(k): k for k in WIRE_KEYS}
