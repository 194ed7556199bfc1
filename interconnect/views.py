"""The endpoints partners call: ``POST /evcs/v1/<operation>`` with a T/CEC 102 envelope.

Each view translates: it accepts the request (`services.inbound.request_accept`: who,
signature, clock, token, replay), checks the Data's fields (else Ret 4004), calls a
service or selector, and answers with a signed, encrypted envelope in the partner's
spelling. The HTTP status is 200 whenever an envelope answers; the Ret says the outcome.
Every request is logged with its decoded data and answer (`Message`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .codec import CHINA, STANDARD, CodecError, Request, Ret, answer_seal
from .models import Interconnection, PartnerOrder
from .services.inbound import (
    RequestRefused,
    message_log,
    request_accept,
    request_seen,
    token_issue,
)
from .services.orders import (
    link_enabled,
    partner_order_open,
    partner_order_stop,
)
from .services.partners import inbound_secrets, spelling_of
from .wire import (
    business_policy,
    charge_status,
    connector_by_wire_id,
    station_stats,
    stations_info,
    stations_status,
)

logger = logging.getLogger(__name__)
SEQ_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")
MAX_PAGE_SIZE = 100


def _text(data: dict, name: str, *, pattern: re.Pattern | None = None, max_len: int = 64) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise CodecError(Ret.DATA, f"{name} must be text of 1 to {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise CodecError(Ret.DATA, f"{name} has characters it may not have")
    return value


def _int(data: dict, name: str, *, default: int, low: int, high: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CodecError(Ret.DATA, f"{name} must be a whole number from {low} to {high}")
    return value


def _day(data: dict, name: str) -> dt.date:
    value = _text(data, name, max_len=19)
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError as exc:
        raise CodecError(Ret.DATA, f"{name} must be a date yyyy-MM-dd") from exc


def _seen(link: Interconnection, request: Request) -> None:
    with transaction.atomic():
        request_seen(link=link, request=request)


# --- One function per operation: (interconnection, request) → answer data ------------


def query_token(link: Interconnection, request: Request) -> dict:
    secret = request.data.get("OperatorSecret")
    if request.data.get("OperatorID") != link.operator_id_wire or not isinstance(secret, str):
        raise CodecError(Ret.DATA, "OperatorID and OperatorSecret are required")
    with transaction.atomic():
        request_seen(link=link, request=request)
        issued = token_issue(link=link, operator_secret=secret)
    if issued is None:
        return {"OperatorID": link.operator_id_wire, "SuccStat": 1, "AccessToken": "",
                "TokenAvailableTime": 0, "FailReason": 2}  # fmt: skip
    token, expires_at = issued
    seconds = int((expires_at - dt.datetime.now(dt.UTC)).total_seconds())
    return {"OperatorID": link.operator_id_wire, "SuccStat": 0, "AccessToken": token,
            "TokenAvailableTime": seconds, "FailReason": 0}  # fmt: skip


def _time(data: dict, name: str) -> dt.datetime | None:
    """An optional "yyyy-MM-dd HH:mm:ss" (China time), None when absent or empty."""
    value = data.get(name)
    if value in (None, ""):
        return None
    try:
        if not isinstance(value, str) or len(value) != 19:
            raise ValueError(value)
        return dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
    except ValueError as exc:
        raise CodecError(Ret.DATA, f"{name} must be a time yyyy-MM-dd HH:mm:ss") from exc


def query_stations_info(link: Interconnection, request: Request) -> dict:
    """All published stations, or with ``LastQueryTime`` only those changed since (a
    station no longer published among them as closed, StationStatus 5)."""
    since = _time(request.data, "LastQueryTime")
    page = _int(request.data, "PageNo", default=1, low=1, high=10**6)
    size = _int(request.data, "PageSize", default=10, low=1, high=MAX_PAGE_SIZE)
    _seen(link, request)
    if not link_enabled(link):
        return {"PageNo": 1, "PageCount": 1, "ItemSize": 0, "StationInfos": []}
    return stations_info(link, page=page, page_size=size, since=since)


def query_station_status(link: Interconnection, request: Request) -> dict:
    ids = request.data.get("StationIDs")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise CodecError(Ret.DATA, "StationIDs must be a list of station ids")
    _seen(link, request)
    if not link_enabled(link):
        return {"Total": 0, "StationStatusInfos": []}
    return stations_status(link, ids)


def query_station_stats(link: Interconnection, request: Request) -> dict:
    station_id = _text(request.data, "StationID", max_len=32)
    start, end = _day(request.data, "StartTime"), _day(request.data, "EndTime")
    if end < start or (end - start).days > 31:
        raise CodecError(Ret.DATA, "EndTime must be from StartTime to 31 days after it")
    _seen(link, request)
    stats = station_stats(link, station_id, start, end) if link_enabled(link) else None
    if stats is None:
        raise CodecError(Ret.DATA, f"no station {station_id}")
    return stats


def query_equip_business_policy(link: Interconnection, request: Request) -> dict:
    seq = _text(request.data, "EquipBizSeq", pattern=SEQ_RE, max_len=32)
    wire_id = _text(request.data, "ConnectorID", max_len=26)
    _seen(link, request)
    connector = connector_by_wire_id(link, wire_id) if link_enabled(link) else None
    policies = business_policy(connector) if connector is not None else None
    answer = {"EquipBizSeq": seq, "ConnectorID": wire_id}
    if policies is None:
        return {**answer, "SuccStat": 1, "FailReason": 1 if connector is None else 2,
                "SumPeriod": 0, "PolicyInfos": []}  # fmt: skip
    return {**answer, "SuccStat": 0, "FailReason": 0, "SumPeriod": len(policies),
            "PolicyInfos": policies}  # fmt: skip


def query_equip_auth(link: Interconnection, request: Request) -> dict:
    seq = _text(request.data, "EquipAuthSeq", pattern=SEQ_RE, max_len=32)
    wire_id = _text(request.data, "ConnectorID", max_len=26)
    _seen(link, request)
    connector = connector_by_wire_id(link, wire_id) if link_enabled(link) else None
    answer = {"EquipAuthSeq": seq, "ConnectorID": wire_id}
    if connector is None or not connector.pile.is_online:
        return {**answer, "SuccStat": 1, "FailReason": 2}  # 设备检测失败
    if connector.status not in ("Preparing", "Available"):
        return {**answer, "SuccStat": 1, "FailReason": 2}
    if connector.status != "Preparing":
        return {**answer, "SuccStat": 1, "FailReason": 1}  # 此设备尚未插枪
    return {**answer, "SuccStat": 0, "FailReason": 0}


def query_start_charge(link: Interconnection, request: Request) -> dict:
    seq = _text(request.data, "StartChargeSeq", pattern=SEQ_RE, max_len=32)
    wire_id = _text(request.data, "ConnectorID", max_len=26)
    connector = connector_by_wire_id(link, wire_id)
    with transaction.atomic():
        request_seen(link=link, request=request)
        # The pile is asked after commit, by a task: the partner is answered at once and
        # told the pile's answer by notification_start_charge_result (T/CEC 102).
        opened = partner_order_open(link=link, start_charge_seq=seq, connector=connector)
    return {
        "StartChargeSeq": seq,
        "StartChargeSeqStat": _wire_state(opened.order),
        "ConnectorID": wire_id,
        "SuccStat": 0 if opened.succeeded else 1,
        "FailReason": opened.fail_reason,
    }


def _wire_state(order: PartnerOrder | None) -> int:
    from .models import ORDER_WIRE_STATE

    if order is None:
        return 4
    order.refresh_from_db(fields=["state"])
    return ORDER_WIRE_STATE[order.state]


def query_equip_charge_status(link: Interconnection, request: Request) -> dict:
    seq = _text(request.data, "StartChargeSeq", pattern=SEQ_RE, max_len=32)
    _seen(link, request)
    order = (
        PartnerOrder.objects.select_related("connector__pile", "session")
        .filter(interconnection=link, start_charge_seq=seq)
        .first()
    )
    if order is None:
        raise CodecError(Ret.DATA, f"no order {seq}")
    return charge_status(order)


def query_stop_charge(link: Interconnection, request: Request) -> dict:
    seq = _text(request.data, "StartChargeSeq", pattern=SEQ_RE, max_len=32)
    _seen(link, request)
    stopped = partner_order_stop(link=link, start_charge_seq=seq)
    return {
        "StartChargeSeq": seq,
        "StartChargeSeqStat": _wire_state(stopped.order),
        "SuccStat": 0 if stopped.succeeded else 1,
        "FailReason": stopped.fail_reason,
    }


OPERATIONS: dict[str, Callable[[Interconnection, Request], dict]] = {
    f.__name__: f
    for f in (
        query_token,
        query_stations_info,
        query_station_status,
        query_station_stats,
        query_equip_business_policy,
        query_equip_auth,
        query_start_charge,
        query_equip_charge_status,
        query_stop_charge,
    )
}


@csrf_exempt
@require_POST
def evcs(request, operation: str):
    handle = OPERATIONS.get(operation)
    if handle is None:
        raise Http404(operation)
    link, opened, data, ret, msg = None, None, None, Ret.OK, ""
    try:
        try:
            body = request.body
        except RequestDataTooBig as exc:
            raise CodecError(Ret.ENVELOPE, "body too large") from exc
        link, opened = request_accept(
            body=body,
            authorization=request.headers.get("Authorization", ""),
            operation=operation,
        )
        data = handle(link, opened)
    except RequestRefused as exc:
        link, ret, msg = exc.link, exc.ret, exc.message
    except CodecError as exc:
        ret, msg = exc.ret, str(exc)
    except Exception:
        logger.exception("partner request %s failed", operation)
        ret, msg = Ret.SERVER, "server error"
    message_log(
        link=link,
        direction="in",
        operation=operation,
        operator_id_wire=opened.operator_id if opened else "",
        seq=opened.seq if opened else "",
        ret=int(ret),
        request=opened.data if opened else None,
        answer=data,
        error="" if ret == Ret.OK else msg,
    )
    answer = answer_seal(
        ret=ret,
        msg=msg,
        data=data if ret == Ret.OK else None,
        secrets=inbound_secrets(link) if link is not None else None,
        spelling=spelling_of(link) if link is not None else STANDARD,
    )
    return JsonResponse(answer, json_dumps_params={"ensure_ascii": False})
