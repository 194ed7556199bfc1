"""Recharges through WeChat Pay (JSAPI): open an order, credit it once when paid, close
what is never paid.

The one path that credits is `recharge_paid_record`, fed by the payment notification
(`pay_notification_handle`) and by the beat job's order query (`recharge_reconcile`), in
any order and any number of times: the recharge row is locked, moved to paid once, and the
wallet credit is keyed by the order number under the ledger's unique constraint
(`wallet_recharge`), so a second credit is impossible, not merely unlikely.

WeChat is never called inside a database transaction: `recharge_create` opens the row,
calls WeChat, then records the prepay id; `recharge_reconcile` leases the row (a short
transaction), asks WeChat with no lock held, then records what it heard.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import status

from chargenet.errors import Conflict, DomainError, NotFound
from chargenet.events import event_publish
from chargenet.money import FEN, fen_to_yuan
from integrations.wechat.pay import (
    PayOrder,
    WeChatPayClient,
    WeChatPayError,
    configured_pay_client,
)

from ..events import RECHARGE_CLOSED
from ..models import LedgerEntry, Recharge, RechargeState
from .wallet import (
    WalletError,
    money_amount_exact,
    wallet_balance,
    wallet_balance_problem,
    wallet_recharge,
)

logger = logging.getLogger(__name__)

# Where WeChat sends notifications (the driver API serves these paths).
PAY_NOTIFY_PATH = "/api/v1/pay/wechat/notify"
REFUND_NOTIFY_PATH = "/api/v1/pay/wechat/refund-notify"

# WeChat's trade states meaning the money was taken (REFUND: paid, then refunded from).
PAID_STATES = frozenset({"SUCCESS", "REFUND"})
UNPAID_STATES = frozenset({"NOTPAY", "USERPAYING"})
# How long a worker holds a recharge it is asking WeChat about (longer than the calls).
CHECK_LEASE = dt.timedelta(seconds=60)


class RechargeError(DomainError):
    code = "recharge_invalid"


class PaymentUnavailable(DomainError):
    code = "payment_unavailable"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE


class NotificationRefused(DomainError):
    """A payment notification that does not verify: nothing was changed."""

    code = "signature_invalid"
    http_status = status.HTTP_401_UNAUTHORIZED


def notify_url(path: str) -> str:
    return settings.WECHATPAY_NOTIFY_BASE.rstrip("/") + path


def to_fen(amount: Decimal) -> int:
    """Whole-fen yuan as WeChat's integer fen."""
    return int((amount / FEN).to_integral_exact())


def _out_trade_no() -> str:
    # 24 characters of WeChat's alphabet: date and time (local) and 8 random hex digits.
    return "RC" + timezone.localtime().strftime("%Y%m%d%H%M%S") + secrets.token_hex(4).upper()


@dataclass(frozen=True)
class RechargeStarted:
    recharge: Recharge
    jsapi: dict[str, str]  # for WeixinJSBridge getBrandWCPayRequest


def recharge_create(
    *, member, amount: Decimal, client: WeChatPayClient | None = None
) -> RechargeStarted:
    """Open a WeChat Pay JSAPI order of ``amount`` yuan for ``member`` and return the
    parameters the page pays it with. Refused (nothing kept) when the amount is out of
    bounds or the member has no WeChat identity; a WeChat failure marks the order failed."""
    amount = money_amount_exact(amount, _("A recharge"))
    low, high = Decimal(settings.RECHARGE_MIN_YUAN), Decimal(settings.RECHARGE_MAX_YUAN)
    if not low <= amount <= high:
        raise RechargeError(
            _("A recharge is between %(low)s and %(high)s yuan.") % {"low": low, "high": high}
        )
    if not member.wechat_openid:
        raise RechargeError(_("Please open the wallet from the WeChat official account to pay."))
    problem = wallet_balance_problem(balance=wallet_balance(member=member), amount=amount)
    if problem is not None:
        raise WalletError(problem)
    try:
        client = client or configured_pay_client()
    except WeChatPayError as exc:
        raise PaymentUnavailable(_("WeChat Pay is not available for recharges.")) from exc
    recharge = _recharge_open(member=member, amount=amount)
    try:
        prepay_id = client.jsapi_order_create(
            out_trade_no=recharge.out_trade_no,
            description=str(_("Wallet recharge")),
            total_fen=to_fen(amount),
            openid=recharge.openid,
            time_expire=recharge.expires_at,
            notify_url=notify_url(PAY_NOTIFY_PATH),
        )
    except WeChatPayError as exc:
        logger.warning("recharge %s not opened at WeChat: %s", recharge.out_trade_no, exc)
        Recharge.objects.filter(pk=recharge.pk, state=RechargeState.PENDING).update(
            state=RechargeState.FAILED, failure=str(exc)[:200], closed_at=timezone.now()
        )
        raise PaymentUnavailable(
            _("WeChat Pay cannot be reached just now; please try again in a moment.")
        ) from exc
    Recharge.objects.filter(pk=recharge.pk).update(prepay_id=prepay_id)
    recharge.prepay_id = prepay_id
    return RechargeStarted(recharge=recharge, jsapi=client.jsapi_parameters(prepay_id=prepay_id))


@transaction.atomic
def _recharge_open(*, member, amount: Decimal) -> Recharge:
    now = timezone.now()
    return Recharge.objects.create(
        member=member,
        out_trade_no=_out_trade_no(),
        amount=amount,
        openid=member.wechat_openid,
        expires_at=now + dt.timedelta(minutes=settings.RECHARGE_EXPIRE_MINUTES),
    )


@transaction.atomic
def recharge_paid_record(*, order: PayOrder) -> LedgerEntry:
    """WeChat says ``order`` is paid: mark the recharge paid and credit the wallet, once
    whatever the number and order of notifications and queries (a repeat returns the first
    ledger entry). Also when the order was closed here meanwhile: the money was taken."""
    if order.trade_state not in PAID_STATES:
        raise RechargeError(_("Order %(no)s is not paid.") % {"no": order.out_trade_no})
    recharge = (
        Recharge.objects.select_for_update()
        .select_related("member")
        .filter(out_trade_no=order.out_trade_no)
        .first()
    )
    if recharge is None:
        raise NotFound(_("No recharge has order number %(no)s.") % {"no": order.out_trade_no})
    if order.total_fen != to_fen(recharge.amount) or (
        order.openid and order.openid != recharge.openid
    ):
        raise Conflict(
            _("WeChat reports order %(no)s with %(paid)s yuan; it was opened for %(amount)s.")
            % {
                "no": recharge.out_trade_no,
                "paid": fen_to_yuan(order.total_fen),
                "amount": recharge.amount,
            }
        )
    if recharge.state != RechargeState.PAID:
        if recharge.state != RechargeState.PENDING:
            logger.warning("recharge %s paid after it was %s", recharge.pk, recharge.state)
        recharge.state = RechargeState.PAID
        recharge.transaction_id = order.transaction_id
        recharge.paid_at = order.success_time or timezone.now()
        recharge.save(update_fields=["state", "transaction_id", "paid_at"])
    return wallet_recharge(
        member=recharge.member, amount=recharge.amount, reference=recharge.out_trade_no
    )


def pay_notification_handle(
    *, headers: dict, body: bytes, client: WeChatPayClient | None = None
) -> LedgerEntry | None:
    """A payment notification from WeChat: verified and decrypted by the client, then a
    paid order is recorded. Raises `NotificationRefused` (nothing changed) when it does
    not verify. Other events are taken and ignored."""
    try:
        client = client or configured_pay_client()
        notification = client.notification_parse(headers=headers, body=body)
    except WeChatPayError as exc:  # SignatureInvalid, or no merchant configured
        logger.warning("payment notification refused: %s", exc)
        raise NotificationRefused(_("The notification does not verify.")) from exc
    order = notification.order
    if order is None or order.trade_state not in PAID_STATES:
        return None
    return recharge_paid_record(order=order)


def _recharge_claim(recharge_id: int) -> Recharge | None:
    """Lease a pending recharge to this worker (one UPDATE): two workers never ask about
    it at once, and a dead worker's lease expires."""
    now = timezone.now()
    claimed = (
        Recharge.objects.filter(pk=recharge_id, state=RechargeState.PENDING)
        .filter(Q(checked_until__isnull=True) | Q(checked_until__lt=now))
        .update(checked_until=now + CHECK_LEASE)
    )
    return Recharge.objects.get(pk=recharge_id) if claimed else None


@transaction.atomic
def _recharge_close(*, recharge_id: int, state: str, failure: str = "") -> Recharge | None:
    recharge = Recharge.objects.select_for_update().filter(pk=recharge_id).first()
    if recharge is None or recharge.state != RechargeState.PENDING:
        return None  # paid (or closed) meanwhile
    recharge.state = state
    recharge.failure = failure[:200]
    recharge.closed_at = timezone.now()
    recharge.save(update_fields=["state", "failure", "closed_at"])
    event_publish(
        kind=RECHARGE_CLOSED,
        key=recharge.out_trade_no,
        payload={
            "recharge_id": recharge.pk,
            "member_id": recharge.member_id,
            "amount": str(recharge.amount),
            "state": state,
        },
    )
    return recharge


def recharge_reconcile(*, recharge_id: int, client: WeChatPayClient | None = None) -> str:
    """Ask WeChat about a pending recharge (the notification did not come): credit it if
    paid, close it at WeChat and here if expired or refused, else leave it pending.
    Returns what happened: "paid", "closed", "failed", "pending" or "skipped"."""
    recharge = _recharge_claim(recharge_id)
    if recharge is None:
        return "skipped"  # not pending, or another worker is asking
    client = client or configured_pay_client()
    outcome = "pending"
    try:
        order = client.order_query(out_trade_no=recharge.out_trade_no)
        if order is not None and order.trade_state in PAID_STATES:
            recharge_paid_record(order=order)
            outcome = "paid"
        elif order is not None and order.trade_state == "PAYERROR":
            _recharge_close(recharge_id=recharge.pk, state=RechargeState.FAILED, failure="PAYERROR")
            outcome = "failed"
        elif order is None or order.trade_state not in UNPAID_STATES:
            _recharge_close(recharge_id=recharge.pk, state=RechargeState.CLOSED)
            outcome = "closed"
        elif recharge.expires_at <= timezone.now():
            outcome = _recharge_expire(recharge, client)
    except WeChatPayError as exc:
        logger.warning("recharge %s not reconciled: %s", recharge.out_trade_no, exc)
    finally:
        Recharge.objects.filter(pk=recharge.pk).update(
            checked_until=None, checked_at=timezone.now()
        )
    return outcome


def _recharge_expire(recharge: Recharge, client: WeChatPayClient) -> str:
    """Close an expired order at WeChat, then here; paid at the last moment: credit it."""
    try:
        client.order_close(out_trade_no=recharge.out_trade_no)
    except WeChatPayError as exc:
        if exc.code != "ORDERPAID":
            raise
        order = client.order_query(out_trade_no=recharge.out_trade_no)
        if order is not None and order.trade_state in PAID_STATES:
            recharge_paid_record(order=order)
            return "paid"
        raise
    _recharge_close(recharge_id=recharge.pk, state=RechargeState.CLOSED, failure="expired")
    return "closed"


def recharges_due_ids(*, limit: int = 200) -> list[int]:
    """Pending recharges older than RECHARGE_QUERY_AFTER_MINUTES, oldest first."""
    cutoff = timezone.now() - dt.timedelta(minutes=settings.RECHARGE_QUERY_AFTER_MINUTES)
    return list(
        Recharge.objects.filter(state=RechargeState.PENDING, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )


def recharges_reconcile_pending(*, client: WeChatPayClient | None = None) -> dict[str, int]:
    """The beat job: reconcile every due recharge; returns how many ended each way."""
    ids = recharges_due_ids()
    counts: dict[str, int] = {}
    if not ids:
        return counts
    client = client or configured_pay_client()
    for recharge_id in ids:
        outcome = recharge_reconcile(recharge_id=recharge_id, client=client)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
