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
import json
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from chargenet.audit import audit_record
from integrations.tcec.client import TcecClient, TcecError

from ..codec import CodecError, Ret, Secrets, answer_open, request_seal
from ..models import Interconnection, Message, PartnerOrder, Push, PushState, Reconciliation
from ..vault import seal, unseal
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
    return bool(
        pushes_enqueue([Queued(link=link, operation=operation, key=key, data=data, order=order)])
    )


@dataclass(frozen=True)
class Queued:
    """A push to queue (`pushes_enqueue`)."""

    link: Interconnection
    operation: str
    key: str
    data: dict
    order: PartnerOrder | None = None


def pushes_enqueue(queued: list[Queued]) -> int:
    """Queue pushes in the caller's transaction, in one INSERT (those whose operation and
    key are queued already are ignored); the worker is woken once after commit. Returns
    how many were queued now."""
    if not queued:
        return 0
    now = timezone.now()
    rows = Push.objects.bulk_create(
        [
            Push(
                interconnection=q.link,
                operator_id=q.link.operator_id,
                operation=q.operation,
                key=q.key[:80],
                order=q.order,
                data=q.data,
                next_at=now,
            )
            for q in queued
        ],
        ignore_conflicts=True,
    )
    count = sum(row.pk is not None for row in rows)
    if count:
        transaction.on_commit(_wake, robust=True)
    return count


def _wake() -> None:
    from ..tasks import pushes_deliver_due

    try:
        pushes_deliver_due.delay()
    except Exception:  # the broker is down: the beat delivers them
        logger.warning("push delivery not queued; the beat will deliver")


def pushes_claim(*, limit: int = 500, now: dt.datetime | None = None) -> list[Push]:
    """Take up to ``limit`` due pushes for this worker: their lease starts now (others
    skip them until it ends) and their attempt is counted. Commits before any sending."""
    now = now or timezone.now()
    with transaction.atomic():
        pushes = list(
            Push.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("interconnection")
            .filter(state=PushState.PENDING, next_at__lte=now)
            .order_by("next_at", "pk")[:limit]
        )
        Push.objects.filter(pk__in=[p.pk for p in pushes]).update(
            next_at=now + LEASE, attempts=F("attempts") + 1
        )
    for push in pushes:
        push.attempts += 1
    return pushes


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


@dataclass
class Attempt:
    """What one attempt at a push got: the partner's answer, or why there was none."""

    push: Push
    ret: int | None = None
    data: dict | None = None
    error: str = ""


class _Sender:
    """Sends claimed pushes, a partner's token fetched once per batch (the only database
    write here, outside any transaction); the sending itself touches no database, so it
    runs in threads."""

    def __init__(self, client: TcecClient):
        self.client = client
        self.links: dict[int, tuple[Secrets, str | Exception]] = {}
        # Partners that could not be reached in this batch (refused, timed out, HTTP
        # error): their other pushes wait for the next round instead of each waiting out
        # the timeout, which would outlast the claim's lease.
        self.unreachable: dict[int, str] = {}

    def prepare(self, links: list[Interconnection], *, fresh: bool = False) -> None:
        for link in links:
            secrets_out = push_secrets(link)
            try:
                token = _token(link, secrets_out, self.client, fresh=fresh)
            except (TcecError, CodecError) as exc:
                token = exc
            self.links[link.pk] = (secrets_out, token)

    def send(self, push: Push) -> Attempt:
        secrets_out, token = self.links[push.interconnection_id]
        if isinstance(token, Exception):
            return Attempt(push, error=str(token))
        if push.interconnection_id in self.unreachable:
            return Attempt(push, error=f"waiting: {self.unreachable[push.interconnection_id]}")
        try:
            answer = _post(
                push.interconnection, secrets_out, self.client, push.operation, push.data, token
            )
        except TcecError as exc:
            self.unreachable.setdefault(push.interconnection_id, str(exc))
            return Attempt(push, error=str(exc))
        except CodecError as exc:
            return Attempt(push, error=str(exc))
        error = "" if answer.ret == Ret.OK else f"Ret {answer.ret}: {answer.msg}"
        return Attempt(push, answer.ret, answer.data, error)


def _sequence(push: Push) -> tuple:
    """Pushes that must arrive in the order they were queued: those of one order (start,
    stop, order information) and the states of one connector."""
    if push.order_id:
        return (push.interconnection_id, "order", push.order_id)
    info = push.data.get("ConnectorStatusInfo") if isinstance(push.data, dict) else None
    if isinstance(info, dict):
        return (push.interconnection_id, "connector", str(info.get("ConnectorID")))
    return (push.interconnection_id, "push", push.pk)


def pushes_send(
    pushes: list[Push],
    *,
    client: TcecClient,
    workers: int = 32,
    pool: ThreadPoolExecutor | None = None,
) -> list[Attempt]:
    """One attempt at each claimed push, ``workers`` sequences at a time: a sequence
    (`_sequence`) is sent in order and stops at its first failure (the rest wait, so an
    older state never arrives after a newer one). A partner that answers 4002 (its token
    expired before we thought) is asked for a new one and those pushes sent once more."""
    sender = _Sender(client)
    links = {p.interconnection_id: p.interconnection for p in pushes}
    sender.prepare(list(links.values()))
    sequences: dict[tuple, list[Push]] = {}
    for push in pushes:
        sequences.setdefault(_sequence(push), []).append(push)

    def send_in_order(sequence: list[Push]) -> list[Attempt]:
        attempts = []
        for n, push in enumerate(sequence):
            attempts.append(sender.send(push))
            if attempts[-1].error:
                waiting = "waiting: an earlier push of the same order or connector failed"
                attempts += [Attempt(p, error=waiting) for p in sequence[n + 1 :]]
                break
        return attempts

    if pool is None:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(sequences)))) as own:
            done = list(own.map(send_in_order, sequences.values()))
    else:
        done = list(pool.map(send_in_order, sequences.values()))
    expired = [(i, s) for i, s in enumerate(done) if any(a.ret == Ret.TOKEN for a in s)]
    if expired:  # here, not in the threads: a new token is written to the database
        stale = {s[0].push.interconnection_id: s[0].push.interconnection for _i, s in expired}
        sender.prepare(list(stale.values()), fresh=True)
        for i, attempts in expired:
            done[i] = send_in_order([a.push for a in attempts])
    by_push = {a.push.pk: a for sequence in done for a in sequence}
    return [by_push[p.pk] for p in pushes]


@transaction.atomic
def pushes_record(*, attempts: list[Attempt]) -> dict[str, int]:
    """Record a batch of attempts in one transaction with a fixed number of statements:
    each attempt in the message log; acknowledged pushes delivered (never sent again);
    the others due again after their backoff, or given up a day after they were queued.
    Returns how many ended in each state."""
    now = timezone.now()
    still = set(
        Push.objects.select_for_update()
        .filter(pk__in=[a.push.pk for a in attempts], state=PushState.PENDING)
        .values_list("pk", flat=True)
    )
    Message.objects.bulk_create(
        [
            Message(
                interconnection_id=a.push.interconnection_id,
                operator_id=a.push.operator_id,
                at=now,
                direction=Message.Direction.OUT,
                operation=a.push.operation,
                operator_id_wire=a.push.interconnection.push_operator_id,
                start_charge_seq=str(a.push.data.get("StartChargeSeq", ""))[:32],
                ret=a.ret,
                request=a.push.data,
                answer=a.data,
                error=a.error[:300],
                push_id=a.push.pk,
            )
            for a in attempts
        ]
    )
    delivered, failed, counts = [], [], {}
    for a in attempts:
        push = a.push
        if push.pk not in still:
            counts[PushState.DELIVERED] = counts.get(PushState.DELIVERED, 0) + 1
            continue  # a twin attempt recorded it first
        if not a.error:
            push.state, push.delivered_at, push.answer, push.last_error = (
                PushState.DELIVERED, now, a.data, ""
            )  # fmt: skip
            delivered.append(push)
        else:
            push.last_error = a.error[:300]
            if now - push.created_at >= GIVE_UP_AFTER:
                push.state = PushState.GIVEN_UP
            else:
                push.next_at = min(
                    now + retry_delay(push.attempts), push.created_at + GIVE_UP_AFTER
                )
            failed.append(push)
        counts[push.state] = counts.get(push.state, 0) + 1
    _pushes_update(delivered=delivered, failed=failed, now=now)
    for push in delivered:
        _acknowledged(push, push.answer or {}, now)
    return counts


def _pushes_update(*, delivered: list[Push], failed: list[Push], now: dt.datetime) -> None:
    """Two UPDATEs whatever the batch size, each row's values passed as arrays (Django's
    bulk_update builds a CASE per field and row, which cost more CPU than the sending)."""
    table = Push._meta.db_table
    with connection.cursor() as cursor:
        if delivered:
            cursor.execute(
                f"UPDATE {table} AS p SET state = %s, delivered_at = %s, last_error = '', "
                "answer = v.answer::jsonb "
                "FROM unnest(%s::bigint[], %s::text[]) AS v(id, answer) WHERE p.id = v.id",
                [
                    PushState.DELIVERED,
                    now,
                    [p.pk for p in delivered],
                    [None if p.answer is None else json.dumps(p.answer) for p in delivered],
                ],
            )
        if failed:
            cursor.execute(
                f"UPDATE {table} AS p SET state = v.state, next_at = v.next_at, "
                "last_error = v.last_error "
                "FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::text[]) "
                "AS v(id, state, next_at, last_error) WHERE p.id = v.id",
                [
                    [p.pk for p in failed],
                    [str(p.state) for p in failed],
                    [p.next_at for p in failed],
                    [p.last_error for p in failed],
                ],
            )


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


def pushes_deliver_due(
    *, limit: int = 500, client: TcecClient | None = None, workers: int = 32
) -> dict[str, int]:
    """Claim, send and record due pushes in batches of ``limit`` until none is due;
    returns how many ended in each state. One pool of ``workers`` threads serves every
    batch, so their kept-alive connections to the partners (`TcecClient`) do too."""
    counts: dict[str, int] = {}
    client = client or TcecClient()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="push") as pool:
        while pushes := pushes_claim(limit=limit):
            attempts = pushes_send(pushes, client=client, workers=workers, pool=pool)
            for state, n in pushes_record(attempts=attempts).items():
                counts[state] = counts.get(state, 0) + n
            if len(pushes) < limit:
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
