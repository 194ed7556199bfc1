from decimal import Decimal as D

import pytest
from django.core.management import CommandError, call_command

from billing.models import LedgerEntry, Wallet
from billing.services.wallet import (
    InsufficientBalance,
    WalletError,
    member_start_allowed,
    wallet_adjust,
    wallet_balance,
    wallet_recharge,
    wallet_refund,
)
from chargenet.errors import Conflict
from chargenet.models import AuditLog
from chargenet.money import MoneyError
from tests.billing.factories import MemberFactory, StaffFactory

pytestmark = pytest.mark.django_db


def test_a_recharge_is_credited_exactly_once_per_payment_order():
    member = MemberFactory()
    first = wallet_recharge(member=member, amount=D("50.00"), reference="WX1")
    again = wallet_recharge(member=member, amount=D("50.00"), reference="WX1")
    assert first.pk == again.pk
    assert wallet_balance(member=member) == D("50.00")
    with pytest.raises(Conflict, match="credited already"):
        wallet_recharge(member=member, amount=D("60.00"), reference="WX1")


def test_adjustments_need_a_reason_and_staff_and_are_audited():
    member = MemberFactory()
    staff = StaffFactory(operator=member.operator)
    wallet_recharge(member=member, amount=D("10.00"), reference="WX2")
    with pytest.raises(WalletError, match="needs a reason"):
        wallet_adjust(member=member, amount=D("5.00"), reason=" ", actor=staff)
    entry = wallet_adjust(member=member, amount=D("-4.50"), reason="goodwill fix", actor=staff)
    assert (entry.balance_after, entry.actor, entry.reason) == (D("5.50"), staff, "goodwill fix")
    audit = AuditLog.objects.get(action="wallet_adjust")
    assert (audit.before, audit.after["balance"], audit.reason) == (
        {"balance": "10.00"},
        "5.50",
        "goodwill fix",
    )


@pytest.mark.parametrize(
    ("amount", "error", "message"),
    [
        (D("-20.00"), InsufficientBalance, "balance is 10.00 yuan"),
        (D("1.005"), MoneyError, "whole fen"),
        (D("0"), WalletError, "changes nothing"),
        (1.5, MoneyError, "exact"),
    ],
)
def test_bad_adjustments_change_nothing(amount, error, message):
    member = MemberFactory()
    staff = StaffFactory(operator=member.operator)
    wallet_recharge(member=member, amount=D("10.00"), reference=f"WX-{member.pk}")
    with pytest.raises(error, match=message):
        wallet_adjust(member=member, amount=amount, reason="typo", actor=staff)
    assert wallet_balance(member=member) == D("10.00")
    assert LedgerEntry.objects.count() == 1
    assert not AuditLog.objects.filter(action="wallet_adjust").exists()


def test_refund_and_verification_command():
    member = MemberFactory()
    wallet_recharge(member=member, amount=D("10.00"), reference="WX3")
    wallet_refund(member=member, amount=D("2.00"), reference="RF1", reason="double payment")
    assert wallet_balance(member=member) == D("12.00")
    call_command("wallet_verify")
    Wallet.objects.filter(member=member).update(balance=D("13.00"))  # simulate drift
    with pytest.raises(CommandError, match="1 wallet"):
        call_command("wallet_verify")


def test_a_member_without_debts_may_start():
    assert member_start_allowed(member=MemberFactory()) is None


def test_the_ledger_refuses_updates_and_deletes():
    from django.db import ProgrammingError, transaction

    member = MemberFactory()
    entry = wallet_recharge(member=member, amount=D("10.00"), reference="WX-ro")
    for change in (
        lambda: LedgerEntry.objects.filter(pk=entry.pk).update(amount=D("99.00")),
        lambda: LedgerEntry.objects.filter(pk=entry.pk).delete(),
    ):
        with pytest.raises(ProgrammingError, match="append-only"), transaction.atomic():
            change()
    entry.refresh_from_db()
    assert entry.amount == D("10.00")


@pytest.mark.parametrize("service", ["adjust", "recharge"])
def test_a_balance_beyond_its_column_is_refused_by_the_service_and_changes_nothing(service):
    member = MemberFactory()
    wallet_recharge(member=member, amount=D("5.00"), reference="WX-base")
    entries = LedgerEntry.objects.count()
    with pytest.raises(
        WalletError,
        match=r"\(10000000000\.00 yuan\) would be beyond what a wallet holds "
        r"\(±9999999999\.99 yuan\)",
    ):
        if service == "adjust":
            wallet_adjust(
                member=member, amount=D("9999999995.00"), reason="typo", actor=StaffFactory()
            )
        else:
            wallet_recharge(member=member, amount=D("9999999995.00"), reference="WX-huge")
    # The amount fits its column, the balance after would not: nothing was written.
    assert (wallet_balance(member=member), LedgerEntry.objects.count()) == (D("5.00"), entries)
