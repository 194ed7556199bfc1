"""The wallet ledger: credits, debits and adjustments, and who may start charging.

Every movement is one `LedgerEntry` plus an F() update of the cached `Wallet.balance` in
the same transaction, under a row lock on the wallet. The database guarantees the rest:
a bill has at most one charge entry, a recharge order is credited once, a balance is
never negative. `wallet_verify` recomputes every balance from its entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chargenet.audit import audit_record
from chargenet.errors import Conflict, DomainError
from chargenet.events import event_publish
from chargenet.money import FEN, MoneyError

from ..events import BILL_PAID, PAYMENT_RECEIVED
from ..models import Bill, EntryKind, LedgerEntry, PaymentState, Wallet


class WalletError(DomainError):
    code = "wallet_invalid"


class InsufficientBalance(WalletError):
    code = "wallet_insufficient"


class ArrearsError(Conflict):
    """The member owes money from an earlier bill and may not start a new session."""

    code = "member_in_arrears"


def money_amount_exact(value: Decimal, what: str) -> Decimal:
    """``value`` as an exact amount of whole fen, or a `MoneyError` naming ``what``: the one
    check every wallet, recharge and refund amount passes."""
    if not isinstance(value, Decimal | int) or isinstance(value, bool):
        raise MoneyError(_("%(what)s must be exact (Decimal).") % {"what": what})
    value = Decimal(value)
    if value != value.quantize(FEN):
        raise MoneyError(
            _("%(what)s is whole fen (0.01 yuan); got %(value)s.") % {"what": what, "value": value}
        )
    return value


def _locked_wallet(member) -> Wallet:
    Wallet.objects.get_or_create(member=member)
    return Wallet.objects.select_for_update().get(member=member)


_BALANCE = Wallet._meta.get_field("balance")
# The most a wallet's balance column holds (in either direction).
WALLET_LARGEST = Decimal(10) ** (_BALANCE.max_digits - _BALANCE.decimal_places) - FEN


def wallet_balance_problem(*, balance: Decimal, amount: Decimal) -> str | None:
    """Why ``amount`` cannot move a wallet holding ``balance`` (the result would not fit
    its column), or None. The one rule behind the service and the back-office form."""
    after = balance + amount
    if abs(after) <= WALLET_LARGEST:
        return None
    return _(
        "The balance after this adjustment (%(after)s yuan) would be beyond what a wallet "
        "holds (±%(largest)s yuan)."
    ) % {"after": after, "largest": WALLET_LARGEST}


def _post(
    *,
    wallet: Wallet,
    kind: str,
    amount: Decimal,
    bill: Bill | None = None,
    reference: str = "",
    reason: str = "",
    actor=None,
) -> LedgerEntry:
    """Append an entry to a wallet the caller holds locked, and move the cached balance."""
    problem = wallet_balance_problem(balance=wallet.balance, amount=amount)
    if problem is not None:
        raise WalletError(problem)
    if wallet.balance + amount < 0:
        raise InsufficientBalance(
            _("The balance is %(balance)s yuan; %(amount)s yuan cannot be taken from it.")
            % {"balance": wallet.balance, "amount": -amount}
        )
    Wallet.objects.filter(pk=wallet.pk).update(balance=F("balance") + amount)
    wallet.balance += amount
    return LedgerEntry.objects.create(
        wallet=wallet,
        kind=kind,
        amount=amount,
        balance_after=wallet.balance,
        bill=bill,
        reference=reference,
        reason=reason,
        actor=actor if getattr(actor, "pk", None) else None,
    )


def wallet_balance(*, member) -> Decimal:
    wallet = Wallet.objects.filter(member=member).first()
    return wallet.balance if wallet else Decimal("0.00")


@transaction.atomic
def wallet_recharge(*, member, amount: Decimal, reference: str, actor=None) -> LedgerEntry:
    """Credit a paid recharge order, exactly once per ``reference`` (the payment order
    number): a repeat returns the first entry. Then pays owed bills the balance covers."""
    amount = money_amount_exact(amount, _("A recharge"))
    if amount <= 0:
        raise WalletError(_("A recharge is a positive amount."))
    if not reference:
        raise WalletError(_("A recharge needs the payment order number."))
    wallet = _locked_wallet(member)
    existing = LedgerEntry.objects.filter(kind=EntryKind.RECHARGE, reference=reference).first()
    if existing is not None:
        if existing.wallet_id != wallet.pk or existing.amount != amount:
            raise Conflict(
                _("Payment order %(ref)s was credited already with other details.")
                % {"ref": reference}
            )
        return existing
    entry = _post(
        wallet=wallet, kind=EntryKind.RECHARGE, amount=amount, reference=reference, actor=actor
    )
    event_publish(
        kind=PAYMENT_RECEIVED,
        key=reference,
        payload={
            "member_id": wallet.member_id,
            "entry_id": entry.pk,
            "reference": reference,
            "amount": str(amount),
            "balance_after": str(entry.balance_after),
        },
    )
    _pay_owed_bills(wallet)
    return entry


@transaction.atomic
def wallet_refund(
    *, member, amount: Decimal, reference: str, reason: str, actor=None
) -> LedgerEntry:
    amount = money_amount_exact(amount, _("A refund"))
    if amount <= 0:
        raise WalletError(_("A refund is a positive amount."))
    wallet = _locked_wallet(member)
    entry = _post(
        wallet=wallet,
        kind=EntryKind.REFUND,
        amount=amount,
        reference=reference,
        reason=reason,
        actor=actor,
    )
    audit_record(
        actor=actor,
        action="wallet_refund",
        obj=wallet,
        after={"amount": amount},
        reason=reason,
        operator_id=member.operator_id,
    )
    return entry


@transaction.atomic
def wallet_withdraw(*, member, amount: Decimal, reference: str, actor) -> LedgerEntry:
    """Take ``amount`` out of the wallet for a balance refund to WeChat Pay (``reference``:
    the WeChat refund number), once per reference (a database constraint); audited.
    Raises `InsufficientBalance` when the balance does not cover it."""
    amount = money_amount_exact(amount, _("A balance refund"))
    if amount <= 0:
        raise WalletError(_("A balance refund is a positive amount."))
    wallet = _locked_wallet(member)
    before = wallet.balance
    entry = _post(
        wallet=wallet,
        kind=EntryKind.WITHDRAWAL,
        amount=-amount,
        reference=reference,
        actor=actor,
    )
    audit_record(
        actor=actor,
        action="wallet_withdraw",
        obj=wallet,
        before={"balance": before},
        after={"balance": wallet.balance, "amount": -amount, "reference": reference},
        operator_id=member.operator_id,
    )
    return entry


@transaction.atomic
def wallet_adjust(*, member, amount: Decimal, reason: str, actor) -> LedgerEntry:
    """A manual adjustment by staff (positive or negative), with a reason, audited."""
    amount = money_amount_exact(amount, _("An adjustment"))
    reason = (reason or "").strip()
    if amount == 0:
        raise WalletError(_("An adjustment of 0.00 yuan changes nothing."))
    if not reason:
        raise WalletError(_("An adjustment needs a reason."))
    if not getattr(actor, "pk", None):
        raise WalletError(_("An adjustment is made by a staff member."))
    wallet = _locked_wallet(member)
    before = wallet.balance
    entry = _post(
        wallet=wallet, kind=EntryKind.ADJUSTMENT, amount=amount, reason=reason, actor=actor
    )
    audit_record(
        actor=actor,
        action="wallet_adjust",
        obj=wallet,
        before={"balance": before},
        after={"balance": wallet.balance, "amount": amount, "entry": entry.pk},
        reason=reason,
        operator_id=member.operator_id,
    )
    if amount > 0:
        _pay_owed_bills(wallet)
    return entry


def wallets_take(*, charges: Sequence[tuple[int, Decimal]]) -> list[tuple[int, Decimal] | None]:
    """Take charges ((member id, amount), in the order they are settled) from the members'
    wallets in two statements whatever their number: lock the wallets in key order, then
    move each balance by its net debit in one UPDATE … FROM (VALUES …). Returns, per
    charge, (wallet id, balance after) or None. The never-negative rule is applied charge
    by charge, as one take after another would: a charge the remaining balance does not
    cover is None (owed) and a later, smaller one may still be taken. The caller records
    the entries in the same transaction."""
    if not charges:
        return []
    balances = {
        member_id: [wallet_id, balance]
        for wallet_id, member_id, balance in Wallet.objects.select_for_update()
        .filter(member_id__in={member_id for member_id, _amount in charges})
        .order_by("pk")
        .values_list("pk", "member_id", "balance")
    }
    taken: list[tuple[int, Decimal] | None] = []
    debits: dict[int, Decimal] = {}
    for member_id, amount in charges:
        wallet = balances.get(member_id)
        if wallet is None or wallet[1] < amount:
            taken.append(None)
            continue
        wallet[1] -= amount
        debits[wallet[0]] = debits.get(wallet[0], Decimal(0)) + amount
        taken.append((wallet[0], wallet[1]))
    if debits:
        table = Wallet._meta.db_table
        values = ", ".join(["(%s::bigint, %s::numeric)"] * len(debits))
        with connection.cursor() as cursor:
            cursor.execute(
                f'UPDATE "{table}" AS w SET "balance" = w."balance" - v.amount, '
                f'"updated_at" = %s FROM (VALUES {values}) AS v(id, amount) '
                'WHERE w."id" = v.id',
                [timezone.now(), *(x for item in debits.items() for x in item)],
            )
    return taken


def wallet_charges_record(
    *, charges: Sequence[tuple[Bill, tuple[int, Decimal]]]
) -> list[LedgerEntry]:
    """The one writer of bills' charge entries: (bill, (wallet id, balance after)) as
    `wallets_take` took them, in one INSERT. The unique constraint on a bill's charge
    entry makes a second charge of the same bill impossible."""
    return LedgerEntry.objects.bulk_create(
        LedgerEntry(
            wallet_id=wallet_id,
            kind=EntryKind.CHARGE,
            amount=-bill.total,
            balance_after=balance_after,
            bill=bill,
        )
        for bill, (wallet_id, balance_after) in charges
    )


def wallet_debit_bill(*, bill: Bill) -> bool:
    """Charge an unpaid or owed ``bill`` to its member's wallet inside the caller's
    transaction. True when paid now (or already); False, and the bill marked owed, when
    the balance does not cover it."""
    if LedgerEntry.objects.filter(bill=bill, kind=EntryKind.CHARGE).exists():
        return True
    [taken] = wallets_take(charges=[(bill.member_id, bill.total)])
    if taken is None:
        bill.payment_state = PaymentState.OWED
        bill.save(update_fields=["payment_state"])
        return False
    wallet_charges_record(charges=[(bill, taken)])
    _bill_paid(bill)
    return True


def _pay_owed_bills(wallet: Wallet) -> None:
    """Pay the member's owed bills, oldest first, while the balance covers them (the
    wallet is locked by the caller; so are the bills, here)."""
    owed = Bill.objects.select_for_update().filter(
        member_id=wallet.member_id, payment_state=PaymentState.OWED
    )
    payable, balance = [], wallet.balance
    for bill in owed.order_by("settled_at", "pk"):
        if balance < bill.total:
            break
        balance -= bill.total
        payable.append(bill)
    taken = wallets_take(charges=[(wallet.member_id, bill.total) for bill in payable])
    wallet_charges_record(charges=list(zip(payable, taken, strict=True)))
    wallet.balance = balance
    for bill in payable:
        _bill_paid(bill)


def _bill_paid(bill: Bill) -> None:
    """A bill charged after its settlement (owed, then covered; or repaired): paid now."""
    bill.payment_state = PaymentState.PAID
    bill.paid_at = timezone.now()
    bill.save(update_fields=["payment_state", "paid_at"])
    event_publish(
        kind=BILL_PAID,
        key=bill.pk,
        payload={"bill_id": bill.pk, "member_id": bill.member_id, "total": str(bill.total)},
    )


def member_start_allowed(*, member) -> None:
    """Raise `ArrearsError` when ``member`` owes money: no new session until it is paid.
    The gateway's authorisation and the start API call this."""
    owed = (
        Bill.objects.filter(member=member, payment_state=PaymentState.OWED)
        .order_by("settled_at", "pk")
        .only("order_no", "total")
    )
    first = owed.first()
    if first is None:
        return
    total = owed.aggregate(s=Sum("total"))["s"]
    raise ArrearsError(
        _("You owe %(amount)s yuan from order %(order_no)s; please recharge.")
        % {"amount": total, "order_no": first.order_no},
        details={"owed": str(total), "order_no": first.order_no},
    )


@dataclass(frozen=True)
class WalletDrift:
    wallet_id: int
    cached: Decimal
    ledger: Decimal


def wallet_verify() -> list[WalletDrift]:
    """Every wallet whose cached balance differs from the sum of its entries (a read)."""
    sums = dict(
        LedgerEntry.objects.values("wallet_id")
        .annotate(s=Sum("amount"))
        .values_list("wallet_id", "s")
    )
    drifts = []
    for wallet_id, cached in Wallet.objects.values_list("pk", "balance").order_by("pk"):
        ledger = sums.get(wallet_id) or Decimal("0.00")
        if ledger != cached:
            drifts.append(WalletDrift(wallet_id, cached, ledger))
    return drifts
