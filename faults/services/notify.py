"""The driver-notification outbox: enqueue in the transaction that ends the session, send
after commit, once per session (a unique constraint, not a check). The provider is called
outside any database transaction (`notification_send` leases the row instead of locking
it), so a slow WeChat never holds a lock."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from chargenet.money import kwh_shown

from ..models import Notification
from ..notifications import NotificationError, Sender, configured_sender

MAX_ATTEMPTS = 5


def _payload(session, *, energy_wh: Decimal | None, amount: Decimal | None) -> dict:
    ended = session.stopped_at or session.stop_received_at or timezone.now()
    payload = {
        "order_no": session.order_no,
        "station": session.station.name,
        "ended_at": timezone.localtime(ended, session.station.zone).strftime("%Y-%m-%d %H:%M"),
    }
    if energy_wh is not None:
        payload["energy_kwh"] = str(kwh_shown(energy_wh, quantum=Decimal("0.01")))
    if amount is not None:
        payload["amount"] = str(amount)
    return payload


def _queue_send() -> None:
    from ..tasks import notifications_send_pending_task

    transaction.on_commit(notifications_send_pending_task.delay)


@dataclass(frozen=True)
class SessionEnded:
    """One "session ended" message for `notifications_enqueue` (session with station)."""

    session: object
    being_checked: bool
    energy_wh: Decimal | None = None
    amount: Decimal | None = None


@dataclass(frozen=True)
class MemberMessage:
    """A message about the driver's money (a balance refund, an invoice) for
    `notifications_enqueue`: ``subject`` names what it is about, once."""

    member_id: int
    kind: str
    subject: str
    payload: dict


def notifications_enqueue(
    *, messages: Sequence[SessionEnded | MemberMessage]
) -> list[Notification]:
    """The one writer of driver notifications: queue the "session ended" message of each
    session ("charging finished" with energy and amount, or "being checked" for a fault
    bill) and each message about the driver's money in ONE statement, and have them sent
    after commit. A session or subject notified already is skipped (one message each: a
    unique constraint); sessions without a member get none. Returns the messages queued
    now."""
    rows = []
    now = timezone.now()
    for m in messages:
        if isinstance(m, MemberMessage):
            rows.append((None, m.subject[:64], m.member_id, m.kind, m.payload))
            continue
        if m.session.member_id is None:
            continue
        kind = (
            Notification.Kind.BEING_CHECKED
            if m.being_checked
            else Notification.Kind.CHARGE_FINISHED
        )
        amount = None if m.being_checked else m.amount
        payload = _payload(m.session, energy_wh=m.energy_wh, amount=amount)
        rows.append((m.session.pk, "", m.session.member_id, kind, payload))
    first = {}
    for row in rows:  # one message per session or subject: the first asked for
        first.setdefault(row[:2], row)
    rows = list(first.values())
    if not rows:
        return []
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, 0, '', '', '', %s)"] * len(rows))
    params = []
    for session_id, subject, member_id, kind, payload in rows:
        params += [session_id, subject, member_id, kind, json.dumps(payload, ensure_ascii=False)]
        params += [Notification.State.PENDING, now]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Notification._meta.db_table} (session_id, subject, member_id, kind,
                payload, state, attempts, last_error, sender, external_id, created_at)
            VALUES {values}
            ON CONFLICT DO NOTHING RETURNING id, session_id, subject
            """,
            params,
        )
        created = {(session_id, subject): pk for pk, session_id, subject in cursor.fetchall()}
    if created:
        _queue_send()
    return [
        Notification(
            pk=created[(session_id, subject)],
            session_id=session_id,
            subject=subject,
            member_id=member_id,
            kind=kind,
            payload=payload,
            state=Notification.State.PENDING,
            created_at=now,
        )
        for session_id, subject, member_id, kind, payload in rows
        if (session_id, subject) in created
    ]


# How long a worker holds a message it is sending: longer than a send can take (the
# client's timeout is 5 s per call, up to three calls), so only a dead worker's expires.
SEND_LEASE = dt.timedelta(seconds=60)


def notification_send(*, notification_id: int, sender: Sender | None = None) -> Notification | None:
    """Send one pending message: claim it (a short transaction that leases it to this
    worker), call the provider with no transaction open and no row locked, then record
    the outcome. Two workers never send it at once; a worker that dies mid-send leaves a
    lease that expires, and the retry sweep sends it again. A failure leaves it pending
    (up to MAX_ATTEMPTS)."""
    sender = sender or configured_sender()
    notification = _notification_claim(notification_id)
    if notification is None:
        return None
    try:
        external_id = sender.send(
            openid=notification.member.wechat_openid or "",
            kind=notification.kind,
            payload=notification.payload,
        )
    except NotificationError as exc:
        notification.last_error = str(exc)[:1000]
        if notification.attempts >= MAX_ATTEMPTS:
            notification.state = Notification.State.FAILED
    else:
        notification.state = Notification.State.SENT
        notification.sent_at = timezone.now()
        notification.external_id = external_id[:64]
        notification.sender = sender.name
        notification.last_error = ""
    notification.claimed_until = None
    notification.save(
        update_fields=["state", "sent_at", "external_id", "sender", "last_error", "claimed_until"]
    )
    return notification


@transaction.atomic
def _notification_claim(notification_id: int) -> Notification | None:
    now = timezone.now()
    notification = (
        Notification.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("member", "session__station")
        .filter(pk=notification_id, state=Notification.State.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .first()
    )
    if notification is None:
        return None  # sent, failed, or another worker is sending it
    if not notification.payload and notification.session is not None:
        notification.payload = _payload(notification.session, energy_wh=None, amount=None)
    notification.attempts += 1
    notification.claimed_until = now + SEND_LEASE
    notification.save(update_fields=["payload", "attempts", "claimed_until"])
    return notification


def notifications_pending_ids(*, limit: int = 500) -> list[int]:
    return list(
        Notification.objects.filter(state=Notification.State.PENDING)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
