"""Reads of the organisation registry, and its visibility rules for staff.

Each rule is one function; admin changelists, detail pages, FK dropdowns, list filters
and exports call these (never `Model.objects.all()`). A sub-operator sees the departments
bound to it and the members, vehicles and cards that belong to them, plus every
department, member, vehicle and card with a charge it sees (at its stations or attributed
to it). Stations follow `stations.selectors.stations_visible_to`.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from chargenet.models import AuditLog
from chargenet.scope import is_active_staff, staff_scoped

from .models import (
    Card,
    Department,
    Member,
    Operator,
    Partner,
    PartnerAccess,
    Staff,
    SubOperator,
    Vehicle,
)


def operators_visible_to(staff) -> QuerySet[Operator]:
    if not is_active_staff(staff):
        return Operator.objects.none()
    if staff.is_superuser:
        return Operator.objects.all()
    return Operator.objects.filter(pk=staff.operator_id)


def sub_operators_visible_to(staff) -> QuerySet[SubOperator]:
    """All of the operator's for operator-wide staff; only its own for sub-operator staff."""
    return staff_scoped(
        SubOperator, staff, for_sub_operator=lambda subs: subs.filter(pk=staff.sub_operator_id)
    )


def _charged_with(sub_operator_id: int) -> Q:
    """Rows (departments, members, vehicles, cards) with a charge the sub-operator sees, as
    in `billing.selectors.sessions_visible_to`: at a station it is authorised on, or
    attributed to it. Through the reverse name, so orgs does not import billing."""
    return Q(sessions__station__sub_operators=sub_operator_id) | Q(
        sessions__sub_operator=sub_operator_id
    )


def _bound_or_charged(model, staff, *, bound: str) -> QuerySet:
    """The operator's rows; for sub-operator staff those bound to its sub-operator (the
    ``bound`` lookup) plus those with a charge it sees (a fleet charging at its stations
    without being bound to it is still its customer)."""

    def narrow(rows: QuerySet) -> QuerySet:
        sub = staff.sub_operator_id
        charged = model.objects.filter(_charged_with(sub)).values("pk")
        return rows.filter(Q(**{bound: sub}) | Q(pk__in=charged))

    return staff_scoped(model, staff, for_sub_operator=narrow)


def departments_visible_to(staff) -> QuerySet[Department]:
    return _bound_or_charged(Department, staff, bound="sub_operator_id")


def members_visible_to(staff) -> QuerySet[Member]:
    return _bound_or_charged(Member, staff, bound="department__sub_operator_id")


def vehicles_visible_to(staff) -> QuerySet[Vehicle]:
    return _bound_or_charged(Vehicle, staff, bound="department__sub_operator_id")


def cards_visible_to(staff) -> QuerySet[Card]:
    return _bound_or_charged(Card, staff, bound="department__sub_operator_id")


def departments_to_file_in(staff) -> QuerySet[Department]:
    """Departments ``staff`` may put a new or edited member, vehicle or card in: the
    visible ones, but for sub-operator staff only those bound to its sub-operator; a row
    filed anywhere else would drop out of its own lists."""
    return staff_scoped(
        Department,
        staff,
        for_sub_operator=lambda rows: rows.filter(sub_operator_id=staff.sub_operator_id),
    )


def staff_visible_to(staff) -> QuerySet[Staff]:
    """Accounts an operator-wide staff member may see: its operator's. Sub-operator staff
    see only their own sub-operator's accounts."""
    return staff_scoped(
        Staff,
        staff,
        for_sub_operator=lambda rows: rows.filter(sub_operator_id=staff.sub_operator_id),
    )


def partners_visible_to(staff) -> QuerySet[Partner]:
    """Partners are shared by every operator (the switch is per operator)."""
    if not is_active_staff(staff):
        return Partner.objects.none()
    return Partner.objects.all()


def partner_accesses_visible_to(staff) -> QuerySet[PartnerAccess]:
    """The operator's partnership switches (operator-wide staff only)."""
    return staff_scoped(PartnerAccess, staff)


def audit_entries_visible_to(staff) -> QuerySet[AuditLog]:
    """Audit rows of the staff member's operator (operator-wide staff only)."""
    return staff_scoped(AuditLog, staff)


def partner_enabled(
    *, operator_id: int, partner_id: int | None = None, partner_code: str | None = None
) -> bool:
    """Whether a partnership (the partner by id or by code) is switched on for an operator:
    read at every partner start and call, so switching it off takes effect at once."""
    partner = (
        {"partner_id": partner_id} if partner_id is not None else {"partner__code": partner_code}
    )
    return PartnerAccess.objects.filter(**partner, operator_id=operator_id, enabled=True).exists()
