"""May this member start a charge on this connector now? The core's answer for a driver's
remote start (phone, app), checked before the start is sent to the pile, with the reason
a driver can act on when the answer is no.

In order: the member (active, phone bound, no session running, no arrears — the wallet's
`member_start_allowed` —, balance at least the operator's ``start_min_balance``), then
the place (pile online, station open, connector free and, with
``DRIVER_START_REQUIRES_PLUG``, plugged in).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.db.models import Exists, OuterRef, Subquery
from django.utils.translation import gettext_lazy as _
from rest_framework import status

from billing.models import Bill, ChargingSession, PaymentState, Wallet
from billing.models.sessions import ACTIVE_STATES
from billing.services.wallet import member_start_allowed
from chargenet.errors import Conflict, DomainError
from orgs.models import Member, MemberStatus
from stations.models import Connector
from stations.public import DriverState, connector_driver_state, station_open_at


class StartRefused(Conflict):
    """The start is refused; ``code`` says why (stable, for the driver's page)."""

    code = "start_refused"


class BalanceTooLow(DomainError):
    code = "balance_too_low"
    http_status = status.HTTP_402_PAYMENT_REQUIRED


_CONNECTOR_REFUSALS = {
    DriverState.OFFLINE: ("pile_offline", _("The pile is offline; please use another one.")),
    DriverState.BUSY: ("connector_occupied", _("This connector is in use.")),
    DriverState.RESERVED: ("connector_occupied", _("This connector is reserved.")),
    DriverState.OUT_OF_SERVICE: (
        "connector_out_of_service",
        _("This connector is out of service; please use another one."),
    ),
}


def member_start_check(*, member: Member, connector: Connector, at: dt.datetime) -> None:
    """Raise why ``member`` may not start on ``connector`` at ``at``; return if they may.
    ``connector`` comes with its pile and station (opening windows prefetched)."""
    if member.status != MemberStatus.ACTIVE or member.hidden_at is not None:
        raise StartRefused(
            _("This account is blocked; please call customer service."), code="member_blocked"
        )
    if not member.phone:
        raise StartRefused(
            _("Please bind your mobile number before charging."), code="phone_required"
        )
    # One query for the member's side (a start is the busiest request drivers make).
    facts = (
        Member.objects.filter(pk=member.pk)
        .annotate(
            busy=Exists(
                ChargingSession.objects.filter(member=OuterRef("pk"), state__in=ACTIVE_STATES)
            ),
            owes=Exists(
                Bill.objects.filter(member=OuterRef("pk"), payment_state=PaymentState.OWED)
            ),
            balance=Subquery(Wallet.objects.filter(member=OuterRef("pk")).values("balance")[:1]),
        )
        .values("busy", "owes", "balance")
        .get()
    )
    if facts["busy"]:
        raise StartRefused(_("You already have a charge running."), code="member_busy")
    if facts["owes"]:
        member_start_allowed(member=member)  # ArrearsError (member_in_arrears), with the sum
    balance = facts["balance"] or Decimal("0.00")
    minimum = member.operator.start_min_balance
    if balance < minimum:
        raise BalanceTooLow(
            _("Your balance is %(balance)s yuan; at least %(minimum)s yuan is needed to start.")
            % {"balance": balance, "minimum": minimum},
            details={"balance": str(balance), "minimum": str(minimum)},
        )
    pile = connector.pile
    state = connector_driver_state(status=connector.status, pile_online=pile.is_online)
    if state in _CONNECTOR_REFUSALS:
        code, message = _CONNECTOR_REFUSALS[state]
        raise StartRefused(message, code=code)
    if not station_open_at(station=pile.station, at=at):
        raise StartRefused(_("The station is closed now."), code="station_closed")
    if state == DriverState.FREE and settings.DRIVER_START_REQUIRES_PLUG:
        raise StartRefused(
            _("Please plug the connector into your car first."), code="connector_not_plugged"
        )
