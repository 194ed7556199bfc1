"""Reads of the organisation registry, and its visibility rules for staff.

Each rule is one function; admin changelists, detail pages, FK dropdowns, list filters
and exports call these (never `Model.objects.all()`). Departments are the hinge for a
sub-operator: it sees the departments bound to it and the vehicles, cards and members
that belong to them. Stations follow `stations.selectors.stations_visible_to`.
"""

from __future__ import annotations

from django.db.models import QuerySet

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


def departments_visible_to(staff) -> QuerySet[Department]:
    """The operator's departments; for sub-operator staff those bound to its sub-operator."""
    return staff_scoped(
        Department,
        staff,
        for_sub_operator=lambda rows: rows.filter(sub_operator_id=staff.sub_operator_id),
    )


def _in_operator_or_departments(model, staff) -> QuerySet:
    return staff_scoped(
        model,
        staff,
        for_sub_operator=lambda rows: rows.filter(
            department__in=departments_visible_to(staff).values("pk")
        ),
    )


def members_visible_to(staff) -> QuerySet[Member]:
    return _in_operator_or_departments(Member, staff)


def vehicles_visible_to(staff) -> QuerySet[Vehicle]:
    return _in_operator_or_departments(Vehicle, staff)


def cards_visible_to(staff) -> QuerySet[Card]:
    return _in_operator_or_departments(Card, staff)


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


def partner_enabled(*, partner_code: str, operator_id: int) -> bool:
    """Whether a partnership is switched on for an operator (read at every partner call)."""
    return PartnerAccess.objects.filter(
        partner__code=partner_code, operator_id=operator_id, enabled=True
    ).exists()
