"""Reads of the organisation registry, and its visibility rules for staff.

Each rule is one function; admin changelists, detail pages, FK dropdowns, list filters
and exports call these (never `Model.objects.all()`). Departments are the hinge for a
sub-operator: it sees the departments bound to it and the vehicles, cards and members
that belong to them. Stations follow `stations.selectors.stations_visible_to`.
"""

from __future__ import annotations

from django.db.models import QuerySet

from chargenet.models import AuditLog

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


def _is_active_staff(staff) -> bool:
    return staff is not None and getattr(staff, "is_authenticated", False) and staff.is_active


def _operator_wide(staff) -> bool:
    return staff.operator_id is not None and staff.sub_operator_id is None


def operators_visible_to(staff) -> QuerySet[Operator]:
    if not _is_active_staff(staff):
        return Operator.objects.none()
    if staff.is_superuser:
        return Operator.objects.all()
    return Operator.objects.filter(pk=staff.operator_id)


def sub_operators_visible_to(staff) -> QuerySet[SubOperator]:
    """All of the operator's for operator-wide staff; only its own for sub-operator staff."""
    if not _is_active_staff(staff):
        return SubOperator.objects.none()
    if staff.is_superuser:
        return SubOperator.objects.all()
    if staff.operator_id is None:
        return SubOperator.objects.none()
    subs = SubOperator.objects.filter(operator_id=staff.operator_id)
    if staff.sub_operator_id is not None:
        subs = subs.filter(pk=staff.sub_operator_id)
    return subs


def departments_visible_to(staff) -> QuerySet[Department]:
    """The operator's departments; for sub-operator staff those bound to its sub-operator."""
    if not _is_active_staff(staff):
        return Department.objects.none()
    if staff.is_superuser:
        return Department.objects.all()
    if staff.operator_id is None:
        return Department.objects.none()
    departments = Department.objects.filter(operator_id=staff.operator_id)
    if staff.sub_operator_id is not None:
        departments = departments.filter(sub_operator_id=staff.sub_operator_id)
    return departments


def _in_operator_or_departments(model, staff) -> QuerySet:
    if not _is_active_staff(staff):
        return model.objects.none()
    if staff.is_superuser:
        return model.objects.all()
    if staff.operator_id is None:
        return model.objects.none()
    rows = model.objects.filter(operator_id=staff.operator_id)
    if staff.sub_operator_id is not None:
        rows = rows.filter(department__in=departments_visible_to(staff).values("pk"))
    return rows


def members_visible_to(staff) -> QuerySet[Member]:
    return _in_operator_or_departments(Member, staff)


def vehicles_visible_to(staff) -> QuerySet[Vehicle]:
    return _in_operator_or_departments(Vehicle, staff)


def cards_visible_to(staff) -> QuerySet[Card]:
    return _in_operator_or_departments(Card, staff)


def staff_visible_to(staff) -> QuerySet[Staff]:
    """Accounts an operator-wide staff member may see: its operator's. Sub-operator staff
    see only their own sub-operator's accounts."""
    if not _is_active_staff(staff):
        return Staff.objects.none()
    if staff.is_superuser:
        return Staff.objects.all()
    if staff.operator_id is None:
        return Staff.objects.none()
    accounts = Staff.objects.filter(operator_id=staff.operator_id)
    if staff.sub_operator_id is not None:
        accounts = accounts.filter(sub_operator_id=staff.sub_operator_id)
    return accounts


def partners_visible_to(staff) -> QuerySet[Partner]:
    """Partners are shared by every operator (the switch is per operator)."""
    if not _is_active_staff(staff):
        return Partner.objects.none()
    return Partner.objects.all()


def partner_accesses_visible_to(staff) -> QuerySet[PartnerAccess]:
    if not _is_active_staff(staff):
        return PartnerAccess.objects.none()
    if staff.is_superuser:
        return PartnerAccess.objects.all()
    if not _operator_wide(staff):
        return PartnerAccess.objects.none()
    return PartnerAccess.objects.filter(operator_id=staff.operator_id)


def audit_entries_visible_to(staff) -> QuerySet[AuditLog]:
    """Audit rows of the staff member's operator (operator-wide staff only)."""
    if not _is_active_staff(staff):
        return AuditLog.objects.none()
    if staff.is_superuser:
        return AuditLog.objects.all()
    if not _operator_wide(staff):
        return AuditLog.objects.none()
    return AuditLog.objects.filter(operator_id=staff.operator_id)


def partner_enabled(*, partner_code: str, operator_id: int) -> bool:
    """Whether a partnership is switched on for an operator (read at every partner call)."""
    return PartnerAccess.objects.filter(
        partner__code=partner_code, operator_id=operator_id, enabled=True
    ).exists()
