"""Who sees what of the partner adapter: operator-wide staff see their operator's
interconnections, orders, pushes, messages and reconciliations (`chargenet.scope`);
sub-operator staff see none (partnerships are the operator's)."""

from __future__ import annotations

from django.db.models import QuerySet

from chargenet.scope import staff_scoped

from .models import Interconnection, Message, PartnerOrder, Push, Reconciliation


def interconnections_visible_to(staff) -> QuerySet[Interconnection]:
    return staff_scoped(Interconnection, staff)


def partner_orders_visible_to(staff) -> QuerySet[PartnerOrder]:
    return staff_scoped(PartnerOrder, staff)


def pushes_visible_to(staff) -> QuerySet[Push]:
    return staff_scoped(Push, staff)


def partner_messages_visible_to(staff) -> QuerySet[Message]:
    return staff_scoped(Message, staff)


def reconciliations_visible_to(staff) -> QuerySet[Reconciliation]:
    return staff_scoped(Reconciliation, staff)
