"""The push queue: every notification to a partner is a `Push` row written in the
transaction of what it tells (one per operation and key), delivered by the worker with no
transaction open while it talks to the partner.

Delivery claims a due push (``FOR UPDATE SKIP LOCKED``, a lease moves ``next_at`` on) and
commits; then signs, encrypts and posts it (fetching our token at the partner when
needed); then records the outcome: acknowledged (Ret 0) — delivered, never sent again —
or the next attempt: three a minute apart, then backing off (5, 15 minutes, 1, 3, 6
hours) until a day has passed since it was queued, when it is given up (and a partner
order left without an acknowledged order information becomes a fault bill, `orders_check`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import secrets
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from chargenet.audit import audit_record
from integrations.tcec.client import TcecClient, TcecError

from ..codec import CodecError, Ret, Secrets, answer_open, request_seal
from ..models import Interconnection, PartnerOrder, Push, PushState, Reconciliation
from ..vault import seal, unseal
from .inbound import message_log
from .partners import push_secrets, spelling_of

logger = logging.getLogger(__name__)

RETRY_DELAYS = (60, 60, 60, 300, 900, 3600, 10800, 21600)  # seconds after attempt n
GIVE_UP_AFTER = dt.timedelta(days=1)
LEASE = dt.timedelta(minutes=2)  # an attempt that crashed is retried after this
_SEQ = itertools.count(secrets.randbelow(10000))


def retry_delay(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failed attempt."""
    return dt.timedelta(seconds=RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1])


def push_enqueue(
    *,
    link: Interconnection,
    operation: str,
    key: str,
    data: dict,
    order: PartnerOrder | None = None,
) -> bool:
    """Queue one push in the caller's transaction (the same operation and key again is
    ignored); the worker is woken after commit. True if queued now."""
    rows = Push.objects.bulk_create(
        [
            Push(
                interconnection=link,
                operator_id=link.operator_id,
                operation=operation,
                key=key[:80],
                order=order,
                data=data,
                next_at=timezone.now(),
            )
        ],
        ignore_conflicts=True,
    )
    queued = rows[0].pk is not None
    if queued:
        transaction.on_commit(_wake, robust=True)
    return queued


def _wake() -> None:
    from ..tasks import pushes_deliver_due

    try:
        pushes_deliver_due.delay()
    except Exception:  # the broker is down: the beat delivers them
        logger.warning("push delivery not queued; the beat will deliver")


def pushes_claim(*, limit: int = 100, now: dt.datetime | None = None) -> list[int]:
    """Take up to ``limit`` due pushes for this worker: their lease starts now (others
    skip them until it ends) and their attempt is counted. Commits before any sending."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            Push.objects.select_for_update(skip_locked=True)
            .filter(state=PushState.PENDING, next_at__lte=now)
            .order_by("next_at")
            .values_list("pk", flat=True)[:limit]
        )
        Push.objects.filter(pk__in=ids).update(next_at=now + LEASE, attempts=F("attempts") + 1)
    return ids


def _token(link: Interconnection, secrets_out: Secrets, client: TcecClient, *, fresh=False):
    """Our token at the partner: the one kept (sealed) until it expires, else a new one
    from its query_token. Network: never inside a transaction."""
    now = timezone.now()
    if not fresh and link.push_token_sealed and (link.push_token_expires_at or now) > now:
        return unseal(link.push_token_sealed)["token"]
    answer = _post(
        link,
        secrets_out,
        client,
        "query_token",
        {"OperatorID": secrets_out.operator_id, "OperatorSecret": secrets_out.operator_secret},
        token="",
    )
    if answer.ret != Ret.OK or answer.data.get("SuccStat") != 0:
        raise TcecError(f"query_token refused: Ret {answer.ret} {answer.msg}")
    token = str(answer.data.get("AccessToken", ""))
    seconds = int(answer.data.get("TokenAvailableTime") or 0)
    expires = now + dt.timedelta(seconds=max(seconds - 60, 0))
    Interconnection.objects.filter(pk=link.pk).update(
        push_token_sealed=seal({"token": token}), push_token_expires_at=expires
    )
    link.push_token_sealed, link.push_token_expires_at = seal({"token": token}), expires
    return token


def _post(link, secrets_out: Secrets, client: TcecClient, operation: str, data: dict, token):
    envelope = request_seal(
        data,
        secrets=secrets_out,
        at=timezone.now(),
        seq=next(_SEQ),
        spelling=spelling_of(link),
    )
    raw = client.post(f"{link.base_url.rstrip('/')}/{operation}", envelope, token=token)
    return answer_open(raw, secrets=secrets_out)


def push_deliver(*, push_id: int, client: TcecClient | None = None) -> str:
    """One attempt at a claimed push (`pushes_claim`); returns its state after it."""
    push = Push.objects.select_related("interconnection").get(pk=push_id)
    if push.state != PushState.PENDING:
        return push.state
    link = push.interconnection
    client = client or TcecClient()
    secrets_out = push_secrets(link)
    answer, error = None, ""
    try:
        token = _token(link, secrets_out, client)
        answer = _post(link, secrets_out, client, push.operation, push.data, token)
        if answer.ret == Ret.TOKEN:  # expired at the partner before we thought: once more
            token = _token(link, secrets_out, client, fresh=True)
            answer = _post(link, secrets_out, client, push.operation, push.data, token)
        if answer.ret != Ret.OK:
            error = f"Ret {answer.ret}: {answer.msg}"
    except (TcecError, CodecError) as exc:
        error = str(exc)
    return _push_record(push=push, answer_data=answer.data if answer else None,
                        ret=answer.ret if answer else None, error=error)  # fmt: skip


@transaction.atomic
def _push_record(*, push: Push, answer_data: dict | None, ret: int | None, error: str) -> str:
    push = Push.objects.select_for_update().get(pk=push.pk)
    now = timezone.now()
    message_log(
        link=push.interconnection,
        direction="out",
        operation=push.operation,
        operator_id_wire=push.interconnection.push_operator_id,
        ret=ret,
        request=push.data,
        answer=answer_data,
        error=error,
        push_id=push.pk,
    )
    if push.state != PushState.PENDING:
        return push.state  # a twin attempt recorded it first
    if not error:
        push.state, push.delivered_at, push.answer, push.last_error = (
            PushState.DELIVERED,
            now,
            answer_data,
            "",
        )
        push.save(update_fields=["state", "delivered_at", "answer", "last_error"])
        _acknowledged(push, answer_data or {}, now)
        return push.state
    push.last_error = error[:300]
    if now - push.created_at >= GIVE_UP_AFTER:
        push.state = PushState.GIVEN_UP
    else:
        push.next_at = min(now + retry_delay(push.attempts), push.created_at + GIVE_UP_AFTER)
    push.save(update_fields=["state", "next_at", "last_error"])
    return push.state


def _acknowledged(push: Push, data: dict, now: dt.datetime) -> None:
    """What the partner's acknowledgement tells: its confirmation of an order, its
    disputes of a day's reconciliation."""
    if push.operation == "notification_charge_order_info" and push.order_id:
        confirm = data.get("ConfirmResult")
        PartnerOrder.objects.filter(pk=push.order_id).update(
            confirm_result=confirm if isinstance(confirm, int) else None, confirmed_at=now
        )
    elif push.operation == "check_charge_orders":
        disputes = data.get("DisputeOrders") or []
        Reconciliation.objects.filter(push=push).update(
            disputes=disputes if isinstance(disputes, list) else [], checked_at=now
        )


def pushes_deliver_due(*, limit: int = 100, client: TcecClient | None = None) -> dict[str, int]:
    """Claim and attempt due pushes until none is due (at most ``limit`` per claim);
    returns how many ended in each state."""
    counts: dict[str, int] = {}
    client = client or TcecClient()
    while ids := pushes_claim(limit=limit):
        for push_id in ids:
            state = push_deliver(push_id=push_id, client=client)
            counts[state] = counts.get(state, 0) + 1
        if len(ids) < limit:
            break
    return counts


def reconciliation_enqueue(*, link: Interconnection, day: dt.date) -> Reconciliation | None:
    """check_charge_orders for ``day`` (local): every order of the partner billed that day
    with its energy and amount; the partner answers with the orders it disputes."""
    from ..wire import day_orders

    orders = day_orders(link, day)
    check_seq = f"{link.push_operator_id}{day:%Y%m%d}"
    data = {
        "CheckOrderSeq": check_seq,
        "StartTime": f"{day:%Y-%m-%d} 00:00:00",
        "EndTime": f"{day:%Y-%m-%d} 23:59:59",
        "OrderCount": len(orders),
        "TotalOrderPower": round(sum(o["TotalPower"] for o in orders), 3),
        "TotalOrderMoney": round(sum(o["TotalMoney"] for o in orders), 2),
        "ChargeOrders": orders,
    }
    with transaction.atomic():
        if Reconciliation.objects.filter(interconnection=link, day=day).exists():
            return None
        push_enqueue(link=link, operation="check_charge_orders", key=f"{day:%Y%m%d}", data=data)
        push = Push.objects.get(
            interconnection=link, operation="check_charge_orders", key=f"{day:%Y%m%d}"
        )
        return Reconciliation.objects.create(
            interconnection=link,
            operator_id=link.operator_id,
            day=day,
            check_order_seq=check_seq,
            order_count=len(orders),
            total_power=Decimal(str(data["TotalOrderPower"])),
            total_money=Decimal(str(data["TotalOrderMoney"])),
            push=push,
        )


@transaction.atomic
def pushes_retry(*, push_ids: list[int], actor) -> int:
    """Staff: attempt these pushes again at the next delivery (one given up gets one more
    attempt; one delivered is left alone). Audited. Returns how many were due again."""
    pushes = list(
        Push.objects.select_for_update().filter(pk__in=push_ids).exclude(state=PushState.DELIVERED)
    )
    now = timezone.now()
    for push in pushes:
        before = {"state": push.state, "next_at": push.next_at}
        push.state, push.next_at = PushState.PENDING, now
        push.save(update_fields=["state", "next_at"])
        audit_record(actor=actor, action="partner_push_retry", obj=push, before=before,
                     after={"state": push.state, "next_at": now})  # fmt: skip
    if pushes:
        transaction.on_commit(_wake, robust=True)
    return len(pushes)
