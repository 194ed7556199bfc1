"""Balance refunds: a driver asks, staff approve or reject (audited), WeChat pays back.

Approval splits the amount over the member's paid recharges of the last year, newest
first (WeChat refunds against an order, up to what is left of it), and takes each part
out of the wallet at once (`wallet_withdraw`, keyed by the refund number): the balance
can no longer be spent on charging while WeChat pays it back. Each part is then sent to
WeChat outside any transaction (`refund_send`, a lease like a notification's). WeChat's
refund notification or the beat job's query settles it (`refund_result_record`): SUCCESS
ends it; CLOSED puts the part back in the wallet (once: keyed by the refund number);
ABNORMAL (the driver's account refused it) waits for staff: the back office shows it and
lets them ask WeChat again (after fixing it at WeChat Pay), mark it handled outside WeChat,
or put it back in the wallet (`refund_abnormal_resolve`, audited).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chargenet.audit import audit_record
from chargenet.errors import Conflict, DomainError, NotFound
from chargenet.events import event_publish
from integrations.wechat.pay import (
    PayRefund,
    WeChatPayClient,
    WeChatPayError,
    configured_pay_client,
)

from ..events import REFUND_DECIDED, REFUND_FINISHED, REFUND_REQUESTED
from ..models import (
    Recharge,
    RechargeRefund,
    RechargeRefundState,
    RechargeState,
    RefundRequest,
    RefundState,
)
from .recharges import REFUND_NOTIFY_PATH, NotificationRefused, notify_url, to_fen
from .wallet import money_amount_exact, wallet_balance, wallet_refund, wallet_withdraw

logger = logging.getLogger(__name__)

# WeChat refunds an order up to a year after its payment.
REFUNDABLE_FOR = dt.timedelta(days=365)
SEND_LEASE = dt.timedelta(seconds=60)
FINAL = (RechargeRefundState.SUCCESS, RechargeRefundState.CLOSED, RechargeRefundState.HANDLED)
# The driver has the money (through WeChat, or from staff outside it).
PAID_OUT = (RechargeRefundState.SUCCESS, RechargeRefundState.HANDLED)


class RefundError(DomainError):
    code = "refund_invalid"


def _refundable_recharges(member):
    """The member's paid recharges WeChat can still refund from, newest first, with what
    is left of each (``left``): the amount less its refunds that were not closed."""
    taken = Coalesce(
        Sum("refunds__amount", filter=~Q(refunds__state=RechargeRefundState.CLOSED)),
        Decimal("0.00"),
    )
    return (
        Recharge.objects.filter(
            member=member,
            state=RechargeState.PAID,
            paid_at__gte=timezone.now() - REFUNDABLE_FOR,
        )
        .annotate(left=F("amount") - taken)
        .filter(left__gt=0)
        .order_by("-paid_at", "-pk")
    )


def refundable_amount(*, member) -> Decimal:
    """What a balance refund may ask for: the balance, at most what recent recharges can
    give back through WeChat."""
    left = sum((r.left for r in _refundable_recharges(member)), Decimal("0.00"))
    return min(left, wallet_balance(member=member))


@transaction.atomic
def refund_request_create(*, member, amount: Decimal, reason: str = "") -> RefundRequest:
    """A driver asks for ``amount`` of the balance back: queued for staff."""
    amount = money_amount_exact(amount, _("A balance refund"))
    if amount <= 0:
        raise RefundError(_("A balance refund is a positive amount."))
    most = refundable_amount(member=member)
    if amount > most:
        raise RefundError(
            _(
                "At most %(most)s yuan can be refunded (the balance, paid in through "
                "WeChat Pay within a year)."
            )
            % {"most": most},
            details={"refundable": str(most)},
        )
    try:
        with transaction.atomic():
            request = RefundRequest.objects.create(
                member=member, amount=amount, reason=(reason or "").strip()[:200]
            )
    except IntegrityError:
        raise Conflict(
            _("You have a balance refund in progress; please wait until it is done.")
        ) from None
    audit_record(
        actor=None,
        action="refund_request.create",
        obj=request,
        after={"amount": amount, "member": member.pk, "reason": request.reason},
        operator_id=member.operator_id,
    )
    event_publish(
        kind=REFUND_REQUESTED,
        key=request.pk,
        payload={"request_id": request.pk, "member_id": member.pk, "amount": str(amount)},
    )
    return request


def _locked_request(refund_request: RefundRequest) -> RefundRequest:
    request = (
        RefundRequest.objects.select_for_update().select_related("member").get(pk=refund_request.pk)
    )
    if request.state != RefundState.REQUESTED:
        raise Conflict(
            _("This request is %(state)s already.") % {"state": request.get_state_display()}
        )
    return request


@transaction.atomic
def refund_request_reject(*, refund_request: RefundRequest, reason: str, actor) -> RefundRequest:
    reason = (reason or "").strip()
    if not reason:
        raise RefundError(_("A rejection needs a reason the driver can read."))
    request = _locked_request(refund_request)
    request.state = RefundState.REJECTED
    request.rejection_reason = reason[:200]
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.save(update_fields=["state", "rejection_reason", "decided_by", "decided_at"])
    audit_record(
        actor=actor,
        action="refund_request.reject",
        obj=request,
        before={"state": RefundState.REQUESTED},
        after={"state": request.state},
        reason=reason,
        operator_id=request.member.operator_id,
    )
    _decided(request)
    return request


def _decided(request: RefundRequest) -> None:
    event_publish(
        kind=REFUND_DECIDED,
        key=f"{request.pk}:{request.state}",
        payload={
            "request_id": request.pk,
            "member_id": request.member_id,
            "state": request.state,
            "amount": str(request.amount),
        },
    )


@transaction.atomic
def refund_request_approve(*, refund_request: RefundRequest, actor) -> RefundRequest:
    """Approve: split the amount over recent paid recharges, take it out of the wallet,
    and have WeChat refund each part after commit."""
    request = _locked_request(refund_request)
    member = request.member
    recharges = list(
        Recharge.objects.select_for_update()
        .filter(pk__in=[r.pk for r in _refundable_recharges(member)])
        .order_by("pk")
    )
    left = {r.pk: r.left for r in _refundable_recharges(member)}
    remaining, parts = request.amount, []
    for recharge in sorted(recharges, key=lambda r: (r.paid_at, r.pk), reverse=True):
        if remaining <= 0:
            break
        part = min(remaining, left[recharge.pk])
        parts.append((recharge, part))
        remaining -= part
    if remaining > 0:
        raise RefundError(
            _(
                "Only %(most)s yuan of recent WeChat Pay recharges can be refunded; please "
                "reject the request."
            )
            % {"most": request.amount - remaining}
        )
    for recharge, part in parts:
        refund = RechargeRefund.objects.create(
            request=request,
            recharge=recharge,
            out_refund_no=f"RF{request.pk}{secrets.token_hex(6).upper()}",
            amount=part,
        )
        wallet_withdraw(member=member, amount=part, reference=refund.out_refund_no, actor=actor)
    request.state = RefundState.REFUNDING
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.save(update_fields=["state", "decided_by", "decided_at"])
    audit_record(
        actor=actor,
        action="refund_request.approve",
        obj=request,
        before={"state": RefundState.REQUESTED},
        after={"state": request.state, "refunds": [r.pk for r, _p in parts]},
        operator_id=member.operator_id,
    )
    _decided(request)
    transaction.on_commit(lambda: _queue_send(request.pk))
    return request


def _queue_send(request_id: int) -> None:
    from ..tasks import refunds_send_task

    try:
        refunds_send_task.delay(request_id)
    except Exception:  # the broker is down: the beat job sends them
        logger.warning("refund request %s not queued; the beat job sends it", request_id)


def _refund_claim(refund_id: int) -> RechargeRefund | None:
    now = timezone.now()
    claimed = (
        RechargeRefund.objects.filter(pk=refund_id, state=RechargeRefundState.PENDING)
        .filter(Q(sending_until__isnull=True) | Q(sending_until__lt=now))
        .update(sending_until=now + SEND_LEASE, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    return RechargeRefund.objects.select_related("recharge").get(pk=refund_id)


def refund_send(*, refund_id: int, client: WeChatPayClient | None = None) -> RechargeRefund | None:
    """Ask WeChat to refund one approved part (no transaction open, the row leased); the
    same refund number again is the same refund at WeChat, so a retry is safe."""
    refund = _refund_claim(refund_id)
    if refund is None:
        return None
    client = client or configured_pay_client()
    try:
        result = client.refund_create(
            out_refund_no=refund.out_refund_no,
            out_trade_no=refund.recharge.out_trade_no,
            refund_fen=to_fen(refund.amount),
            total_fen=to_fen(refund.recharge.amount),
            reason=str(_("Wallet balance refund")),
            notify_url=notify_url(REFUND_NOTIFY_PATH),
        )
    except WeChatPayError as exc:
        RechargeRefund.objects.filter(pk=refund.pk).update(
            failure=str(exc)[:200], sending_until=None
        )
        logger.warning("refund %s not accepted by WeChat: %s", refund.out_refund_no, exc)
        return refund
    RechargeRefund.objects.filter(pk=refund.pk).update(sending_until=None, failure="")
    return refund_result_record(refund=result)


@transaction.atomic
def refund_result_record(*, refund: PayRefund) -> RechargeRefund:
    """What WeChat says of a refund (answer, notification or query), in any order and
    any number of times: a finished refund stays as it finished."""
    line = (
        RechargeRefund.objects.select_for_update()
        .select_related("request__member")
        .filter(out_refund_no=refund.out_refund_no)
        .first()
    )
    if line is None:
        raise NotFound(_("No refund has number %(no)s.") % {"no": refund.out_refund_no})
    if line.state in FINAL or refund.status not in ("PROCESSING", "SUCCESS", "CLOSED", "ABNORMAL"):
        return line
    if refund.status == "PROCESSING":
        if line.state == RechargeRefundState.PENDING:
            line.state = RechargeRefundState.PROCESSING
            line.refund_id = refund.refund_id
            line.save(update_fields=["state", "refund_id"])
        return line
    line.refund_id = refund.refund_id or line.refund_id
    line.state = {
        "SUCCESS": RechargeRefundState.SUCCESS,
        "CLOSED": RechargeRefundState.CLOSED,
        "ABNORMAL": RechargeRefundState.ABNORMAL,
    }[refund.status]
    if line.state in FINAL:
        line.finished_at = refund.success_time or timezone.now()
    line.save(update_fields=["state", "refund_id", "finished_at"])
    if line.state == RechargeRefundState.CLOSED:
        wallet_refund(
            member=line.request.member,
            amount=line.amount,
            reference=line.out_refund_no,
            reason=str(_("WeChat Pay closed the balance refund")),
        )
    _request_finish(line.request)
    return line


def _request_finish(request: RefundRequest) -> None:
    states = list(request.refunds.values_list("state", flat=True))
    if request.state != RefundState.REFUNDING or any(s not in FINAL for s in states):
        return
    ok = all(s in PAID_OUT for s in states)
    request.state = RefundState.REFUNDED if ok else RefundState.FAILED
    request.finished_at = timezone.now()
    request.save(update_fields=["state", "finished_at"])
    refunded = request.refunds.filter(state__in=PAID_OUT).aggregate(
        s=Coalesce(Sum("amount"), Decimal("0.00"))
    )["s"]
    event_publish(
        kind=REFUND_FINISHED,
        key=request.pk,
        payload={
            "request_id": request.pk,
            "member_id": request.member_id,
            "state": request.state,
            "refunded": str(refunded),
        },
    )


def refund_notification_handle(
    *, headers: dict, body: bytes, client: WeChatPayClient | None = None
) -> RechargeRefund | None:
    """A refund notification: verified and decrypted by the client, then recorded.
    Raises `NotificationRefused` (nothing changed) when it does not verify."""
    try:
        client = client or configured_pay_client()
        notification = client.notification_parse(headers=headers, body=body)
    except WeChatPayError as exc:  # SignatureInvalid, or no merchant configured
        logger.warning("refund notification refused: %s", exc)
        raise NotificationRefused(_("The notification does not verify.")) from exc
    if notification.refund is None:
        return None
    return refund_result_record(refund=notification.refund)


def refund_reconcile(*, refund_id: int, client: WeChatPayClient | None = None) -> None:
    """Send a part WeChat has not accepted yet, or ask about one still processing."""
    client = client or configured_pay_client()
    refund = RechargeRefund.objects.filter(pk=refund_id).first()
    if refund is None:
        return
    if refund.state == RechargeRefundState.PENDING:
        refund_send(refund_id=refund_id, client=client)
        return
    try:
        result = client.refund_query(out_refund_no=refund.out_refund_no)
    except WeChatPayError as exc:
        logger.warning("refund %s not queried: %s", refund.out_refund_no, exc)
        return
    if result is not None:
        refund_result_record(refund=result)


def refunds_due_ids(*, limit: int = 200) -> list[int]:
    """Parts to send, and parts processing or abnormal for more than five minutes."""
    cutoff = timezone.now() - dt.timedelta(minutes=5)
    return list(
        RechargeRefund.objects.filter(
            Q(state=RechargeRefundState.PENDING)
            | Q(
                state__in=[RechargeRefundState.PROCESSING, RechargeRefundState.ABNORMAL],
                created_at__lt=cutoff,
            )
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def refunds_reconcile_pending(*, client: WeChatPayClient | None = None) -> int:
    ids = refunds_due_ids()
    if ids:
        client = client or configured_pay_client()
        for refund_id in ids:
            refund_reconcile(refund_id=refund_id, client=client)
    return len(ids)


def refunds_send(*, request_id: int, client: WeChatPayClient | None = None) -> int:
    """Send every part of an approved request still to send; returns how many were."""
    ids = list(
        RechargeRefund.objects.filter(
            request_id=request_id, state=RechargeRefundState.PENDING
        ).values_list("pk", flat=True)
    )
    if ids:
        client = client or configured_pay_client()
        for refund_id in ids:
            refund_send(refund_id=refund_id, client=client)
    return len(ids)


class AbnormalAction:
    RETRY = "retry"  # ask WeChat again now (staff fixed it at WeChat Pay's merchant platform)
    HANDLED = "handled"  # paid to the driver outside WeChat Pay
    TO_WALLET = "to_wallet"  # given back to the driver's wallet


def refund_abnormal_resolve(
    *, refund: RechargeRefund, action: str, note: str, actor, client: WeChatPayClient | None = None
) -> RechargeRefund:
    """Staff act on a refund WeChat reported ABNORMAL: ask WeChat again (it may have been
    settled at WeChat's merchant platform meanwhile), mark it handled outside WeChat, or put
    the amount back in the wallet. Audited with the note, before and after."""
    note = (note or "").strip()
    if action != AbnormalAction.RETRY and not note:
        raise RefundError(_("Say what was done, for the record."))
    if action == AbnormalAction.RETRY:
        before = RechargeRefund.objects.get(pk=refund.pk).state
        if before != RechargeRefundState.ABNORMAL:
            raise Conflict(_("This refund is no longer abnormal."))
        refund_reconcile(refund_id=refund.pk, client=client)  # a WeChat call: no transaction
        line = RechargeRefund.objects.select_related("request__member").get(pk=refund.pk)
        with transaction.atomic():
            _abnormal_audit(line, action, note, actor, before=before)
        return line
    with transaction.atomic():
        line = (
            RechargeRefund.objects.select_for_update()
            .select_related("request__member")
            .get(pk=refund.pk)
        )
        if line.state != RechargeRefundState.ABNORMAL:
            raise Conflict(_("This refund is no longer abnormal."))
        if action == AbnormalAction.HANDLED:
            line.state = RechargeRefundState.HANDLED
        elif action == AbnormalAction.TO_WALLET:
            line.state = RechargeRefundState.CLOSED
            wallet_refund(
                member=line.request.member,
                amount=line.amount,
                reference=line.out_refund_no,
                reason=str(_("An abnormal balance refund, returned to the wallet by staff")),
                actor=actor,
            )
        else:
            raise RefundError(_("Unknown action."))
        line.finished_at = timezone.now()
        line.save(update_fields=["state", "finished_at"])
        _abnormal_audit(line, action, note, actor, before=RechargeRefundState.ABNORMAL)
        _request_finish(line.request)
    return line


def _abnormal_audit(line: RechargeRefund, action: str, note: str, actor, *, before) -> None:
    audit_record(
        actor=actor,
        action=f"recharge_refund.{action}",
        obj=line,
        before={"state": before},
        after={"state": line.state},
        reason=note,
        operator_id=line.request.member.operator_id,
    )
