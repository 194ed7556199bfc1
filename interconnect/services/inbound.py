"""Accepting a partner's request: who it is (OperatorID), the signature, the clock, the
token, the replay guard — in that order, each failure its own Ret — and the message log.

A request that fails any check changes nothing but the log. A replayed (TimeStamp, Seq)
is refused even when everything else is right: the pair is recorded in the same
transaction as the request's own effects, so a request that failed is not "seen".
"""

from __future__ import annotations

import datetime as dt
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..codec import CodecError, Request, Ret, envelope_read, request_open
from ..models import AccessToken, Interconnection, Message, SeenRequest
from ..vault import digest
from .partners import inbound_secrets

# Values never written to the message log.
REDACTED = frozenset({"OperatorSecret", "AccessToken"})


def request_accept(
    *, body: bytes, authorization: str, operation: str
) -> tuple[Interconnection | None, Request]:
    """Open the request of ``operation``: raises `CodecError` with the Ret it deserves. The
    interconnection is returned as soon as it is known (for the answer's signature), so
    the caller catches `RequestRefused` to get it with the error."""
    link = None
    try:
        envelope = envelope_read(body)
        operator_id = envelope.get("OperatorID")
        link = (
            Interconnection.objects.select_related("partner")
            .filter(operator_id_wire=operator_id)
            .first()
            if isinstance(operator_id, str)
            else None
        )
        if link is None:
            raise CodecError(Ret.ENVELOPE, "unknown OperatorID")
        request = request_open(envelope, secrets=inbound_secrets(link))
        skew = abs((timezone.now() - request.at).total_seconds())
        if skew > settings.INTERCONNECT_CLOCK_SKEW_SECONDS:
            raise CodecError(Ret.ENVELOPE, f"TimeStamp {request.timestamp} is {int(skew)} s off")
        if operation != "query_token":
            token_check(link=link, authorization=authorization)
        if SeenRequest.objects.filter(
            interconnection=link, timestamp=request.timestamp, seq=request.seq
        ).exists():
            raise CodecError(Ret.ENVELOPE, f"replayed request {request.timestamp}/{request.seq}")
        return link, request
    except CodecError as exc:
        raise RequestRefused(link, exc.ret, str(exc)) from exc


class RequestRefused(Exception):
    def __init__(self, link: Interconnection | None, ret: Ret, message: str):
        super().__init__(message)
        self.link, self.ret, self.message = link, ret, message


def request_seen(*, link: Interconnection, request: Request) -> None:
    """Record the request's (TimeStamp, Seq) in the caller's transaction; a concurrent
    twin that got there first makes this a replay (`Ret.ENVELOPE`)."""
    try:
        with transaction.atomic():
            SeenRequest.objects.create(
                interconnection=link,
                timestamp=request.timestamp,
                seq=request.seq,
                at=timezone.now(),
            )
    except IntegrityError:
        raise CodecError(
            Ret.ENVELOPE, f"replayed request {request.timestamp}/{request.seq}"
        ) from None


def token_check(*, link: Interconnection, authorization: str) -> None:
    """`Ret.TOKEN` unless ``authorization`` is "Bearer <a token of link's, not expired>"."""
    scheme, _space, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise CodecError(Ret.TOKEN, "no token")
    row = AccessToken.objects.filter(token_hash=digest(token.strip())).first()
    if row is None or row.interconnection_id != link.pk:
        raise CodecError(Ret.TOKEN, "unknown token")
    if row.expires_at <= timezone.now():
        raise CodecError(Ret.TOKEN, "token expired")


def token_issue(*, link: Interconnection, operator_secret: str) -> tuple[str, dt.datetime] | None:
    """query_token: a new token for ``link`` if ``operator_secret`` is its OperatorSecret
    (None otherwise); stored hashed. Expired tokens of the partner are deleted."""
    if not secrets.compare_digest(digest(operator_secret), link.inbound_operator_secret_hash):
        return None
    now = timezone.now()
    token = secrets.token_urlsafe(24)
    expires_at = now + dt.timedelta(seconds=settings.INTERCONNECT_TOKEN_SECONDS)
    AccessToken.objects.filter(interconnection=link, expires_at__lte=now).delete()
    AccessToken.objects.create(
        interconnection=link, token_hash=digest(token), expires_at=expires_at
    )
    return token, expires_at


def _redact(data):
    if isinstance(data, dict):
        return {k: "***" if k in REDACTED else _redact(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_redact(v) for v in data]
    return data


def message_log(
    *,
    link: Interconnection | None,
    direction: str,
    operation: str,
    operator_id_wire: str = "",
    seq: str = "",
    ret: int | None,
    request: dict | None,
    answer: dict | None,
    error: str = "",
    push_id: int | None = None,
) -> Message:
    """One row of the message log, secrets redacted; StartChargeSeq taken from the data."""
    order = (request or {}).get("StartChargeSeq") or (answer or {}).get("StartChargeSeq") or ""
    return Message.objects.create(
        interconnection=link,
        operator_id=link.operator_id if link else None,
        at=timezone.now(),
        direction=direction,
        operation=operation[:48],
        operator_id_wire=(operator_id_wire or (link.operator_id_wire if link else ""))[:32],
        seq=seq[:4],
        start_charge_seq=str(order)[:32],
        ret=ret,
        request=_redact(request),
        answer=_redact(answer),
        error=error[:300],
        push_id=push_id,
    )


PRUNE_CHUNK = 10_000  # rows a statement: a long delete would hold back vacuum and replicas


def messages_prune(*, now: dt.datetime | None = None) -> int:
    """Delete the message log older than ``INTERCONNECT_MESSAGE_RETENTION_DAYS``, in
    chunks; with it the replay guard's requests whose TimeStamp is too old to be accepted
    again anyway, and expired tokens. Returns how many log rows were deleted."""
    now = now or timezone.now()
    before = now - dt.timedelta(days=settings.INTERCONNECT_MESSAGE_RETENTION_DAYS)
    deleted = 0
    while ids := list(
        Message.objects.filter(at__lt=before).order_by().values_list("pk", flat=True)[:PRUNE_CHUNK]
    ):
        deleted += Message.objects.filter(pk__in=ids).delete()[0]
    # A request is refused when its TimeStamp is off by more than the skew: past twice
    # that, its (TimeStamp, Seq) cannot come back.
    stale = now - dt.timedelta(seconds=2 * settings.INTERCONNECT_CLOCK_SKEW_SECONDS)
    SeenRequest.objects.filter(at__lt=stale).delete()
    AccessToken.objects.filter(expires_at__lt=now).delete()
    return deleted
