"""Writes of the organisation registry: staff roles, members, cards, partnerships.

Roles are Django auth groups whose permissions `roles_sync` keeps in step with
`ROLE_PERMISSIONS` (idempotent; run after every migrate and by `load_demo`). A staff
account's ``role`` decides its one role group (`staff_assign_role`); what rows it sees is
decided separately by the scope selectors in `orgs.selectors` / `stations.selectors`.
"""

from __future__ import annotations

import secrets
from typing import TypeVar

from django.contrib.auth.models import Group, Permission
from django.db import IntegrityError, transaction
from django.db.models import Model, Q
from django.utils.translation import gettext_lazy as _

from chargenet.audit import audit_record, snapshot
from chargenet.errors import Conflict, DomainError, full_clean_or_raise

from .models import (
    Card,
    Department,
    Member,
    Operator,
    Partner,
    PartnerAccess,
    Role,
    Staff,
    SubOperator,
    Vehicle,
)

# Group names are data (kept in English in the database); their labels are translated.
ROLE_GROUPS: dict[str, str] = {
    Role.OPERATOR_ADMIN: "operator admin",
    Role.SUB_OPERATOR_STAFF: "sub-operator staff",
    Role.CUSTOMER_SERVICE: "customer service",
}

_VIEW = ("view",)
_EDIT = ("view", "add", "change")
_HISTORY = ("firmwarerecord", "statusevent", "heartbeatsample", "stationoutage", "pilefault")
# The repair desk: recalculate / apply a repair, dismiss, escalate and reopen all check
# "change fault bill" (faults.admin.FaultCaseAdmin.change_view).
_REPAIR_DESK = {"faultcase": ("view", "change"), "notification": _VIEW}

# The frame journal (customer service searches it by order number) and the remote-command
# page, whose commands check "change pile remote control" (protocol.admin.PileConsoleAdmin).
_PROTOCOL_DESK = {"frame": _VIEW, "pileconsole": ("view", "change")}

# role -> {app_label: {model_name: actions}}. Nobody gets "delete" on records that money or
# charge records hang on: those are hidden with an audited action instead.
ROLE_PERMISSIONS: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    Role.OPERATOR_ADMIN: {
        "orgs": {
            "operator": _VIEW,
            "suboperator": _EDIT,
            "department": _EDIT,
            "staff": _EDIT,
            "member": _EDIT,
            "vehicle": _EDIT,
            "card": _EDIT,
            "partner": _VIEW,
            "partneraccess": ("view", "change"),
        },
        "stations": {
            "station": _EDIT,
            "openingwindow": (*_EDIT, "delete"),
            "pile": _EDIT,
            "connector": (*_EDIT, "delete"),
            **dict.fromkeys(_HISTORY, _VIEW),
        },
        "chargenet": {"auditlog": _VIEW},
        "billing": {
            "chargingsession": _VIEW,
            "metersample": _VIEW,
            "tariffplan": _EDIT,
            "tariffversion": _EDIT,
            "tariffprice": _EDIT,
            "stationtariff": _EDIT,
            "bill": _VIEW,
            "billline": _VIEW,
            # The wallet adjustment page checks "change wallet" (billing.admin.WalletAdmin).
            "wallet": ("view", "change"),
            "ledgerentry": _VIEW,
            # Deciding on refunds and issuing invoices checks "change" (billing.admin_payments).
            "recharge": _VIEW,
            "refundrequest": ("view", "change"),
            "rechargerefund": _VIEW,
            "invoicerequest": ("view", "change"),
            "invoiceitem": _VIEW,
        },
        "faults": {**_REPAIR_DESK, "faultsettings": _EDIT},
        "protocol": _PROTOCOL_DESK,
        # Partner platforms (T/CEC 102): the switch and new credentials check "change
        # interconnection"; the logs and queues are read-only (interconnect.admin).
        "interconnect": {
            "interconnection": ("view", "change"),
            "partnerorder": _VIEW,
            "push": _VIEW,
            "message": _VIEW,
            "reconciliation": _VIEW,
        },
    },
    Role.SUB_OPERATOR_STAFF: {
        "orgs": {
            "suboperator": _VIEW,
            "department": _VIEW,
            "member": _EDIT,
            "vehicle": _EDIT,
            "card": _EDIT,
        },
        "stations": {
            "station": _VIEW,
            "pile": _VIEW,
            "connector": _VIEW,
            **dict.fromkeys(_HISTORY, _VIEW),
        },
        "billing": {"chargingsession": _VIEW, "metersample": _VIEW, "bill": _VIEW},
        "faults": {"faultcase": _VIEW},
        # Frames of its stations' piles only (protocol.selectors.frames_visible_to).
        "protocol": {"frame": _VIEW},
    },
    Role.CUSTOMER_SERVICE: {
        "orgs": {
            "suboperator": _VIEW,
            "department": _VIEW,
            "member": ("view", "change"),
            "vehicle": _VIEW,
            "card": _VIEW,
        },
        "stations": {
            "station": _VIEW,
            "pile": _VIEW,
            "connector": _VIEW,
            **dict.fromkeys(_HISTORY, _VIEW),
        },
        "chargenet": {"auditlog": _VIEW},
        "billing": {
            "chargingsession": _VIEW,
            "metersample": _VIEW,
            "bill": _VIEW,
            "billline": _VIEW,
            "wallet": _VIEW,
            "ledgerentry": _VIEW,
            "recharge": _VIEW,
            "refundrequest": _VIEW,
            "rechargerefund": _VIEW,
            "invoicerequest": _VIEW,
            "invoiceitem": _VIEW,
        },
        "faults": _REPAIR_DESK,
        "protocol": _PROTOCOL_DESK,
        # Customer service answers "the partner says it never got the order".
        "interconnect": {"partnerorder": _VIEW, "message": _VIEW},
    },
}

# OCPP 1.6 feature profiles (issue 15): reservations, charging profiles, maintenance
# reports, desired configuration, firmware campaigns. Cancelling a reservation checks
# "change reservation" (protocol.admin.ReservationAdmin).
_OCPP_FEATURES_VIEW = dict.fromkeys(("reservation", "chargingprofile", "maintenancereport"), _VIEW)
ROLE_PERMISSIONS[Role.OPERATOR_ADMIN]["stations"] |= {
    **_OCPP_FEATURES_VIEW,
    "reservation": ("view", "change"),
    "configurationsetting": _EDIT,  # removed with an audited action, not "delete"
    "firmwarecampaign": ("view", "add", "change"),  # change: cancel (the pages are read-only)
    "firmwarecampaignpile": _VIEW,
}
ROLE_PERMISSIONS[Role.SUB_OPERATOR_STAFF]["stations"] |= {
    **_OCPP_FEATURES_VIEW,
    # Campaigns over their piles, and of each only their piles (stations.selectors).
    "firmwarecampaign": _VIEW,
    "firmwarecampaignpile": _VIEW,
}
ROLE_PERMISSIONS[Role.CUSTOMER_SERVICE]["stations"] |= {
    **_OCPP_FEATURES_VIEW,
    "reservation": ("view", "change"),
}


def _role_permissions(role: str) -> list[Permission]:
    wanted = Q(pk__in=[])
    for app_label, models in ROLE_PERMISSIONS[role].items():
        for model_name, actions in models.items():
            wanted |= Q(
                content_type__app_label=app_label,
                codename__in=[f"{action}_{model_name}" for action in actions],
            )
    # Permissions of apps not migrated yet are simply skipped; the next sync adds them.
    return list(Permission.objects.filter(wanted))


@transaction.atomic
def roles_sync() -> dict[str, Group]:
    """Create the role groups and set exactly their permissions. Idempotent."""
    groups = {}
    for role, name in ROLE_GROUPS.items():
        group, _created = Group.objects.get_or_create(name=name)
        group.permissions.set(_role_permissions(role))
        groups[role] = group
    return groups


@transaction.atomic
def staff_assign_role(*, staff: Staff, actor: Staff | None = None) -> Staff:
    """Put ``staff`` in exactly the group of its ``role`` (none without a role)."""
    role_groups = Group.objects.filter(name__in=ROLE_GROUPS.values())
    if staff.role and not role_groups.filter(name=ROLE_GROUPS[staff.role]).exists():
        roles_sync()
    before = sorted(
        staff.groups.filter(name__in=ROLE_GROUPS.values()).values_list("name", flat=True)
    )
    staff.groups.remove(*role_groups)
    if staff.role:
        staff.groups.add(Group.objects.get(name=ROLE_GROUPS[staff.role]))
    after = [ROLE_GROUPS[staff.role]] if staff.role else []
    if actor is not None and before != after:
        audit_record(
            actor=actor,
            action="staff_role",
            obj=staff,
            before={"groups": before},
            after={"groups": after},
        )
    return staff


def staff_check_scope(*, staff: Staff) -> None:
    """A sub-operator account must belong to that sub-operator's operator."""
    if staff.sub_operator_id and staff.sub_operator.operator_id != staff.operator_id:
        raise DomainError(
            _("Sub-operator: “%(sub)s” belongs to another operator than this account.")
            % {"sub": staff.sub_operator},
            code="staff_scope",
        )
    if staff.role == Role.SUB_OPERATOR_STAFF and not staff.sub_operator_id:
        raise DomainError(
            _("Sub-operator: a sub-operator staff account needs its sub-operator."),
            code="staff_scope",
        )


def member_token_new() -> str:
    """A fresh charging token (the OCPP idTag, at most 20 characters)."""
    return secrets.token_hex(8).upper()


NewRow = TypeVar("NewRow", bound=Model)


def _save_new(obj: NewRow, *, action: str, actor: Staff | None) -> NewRow:
    """Validate and insert a new row; a person's creation goes to the audit log."""
    full_clean_or_raise(obj)
    obj.save()
    if actor is not None:
        audit_record(actor=actor, action=action, obj=obj, after=snapshot(obj))
    return obj


@transaction.atomic
def member_create(
    *,
    operator: Operator,
    phone: str | None = None,
    nickname: str = "",
    wechat_openid: str | None = None,
    department: Department | None = None,
    is_virtual: bool = False,
    actor: Staff | None = None,
) -> Member:
    member = Member(
        operator=operator,
        phone=phone or None,
        wechat_openid=wechat_openid or None,
        nickname=nickname,
        department=department,
        is_virtual=is_virtual,
        token=member_token_new(),
    )
    return _save_new(member, action="member_create", actor=actor)


@transaction.atomic
def vehicle_create(
    *,
    operator: Operator,
    plate: str,
    vin: str | None = None,
    department: Department | None = None,
    member: Member | None = None,
    actor: Staff | None = None,
) -> Vehicle:
    vehicle = Vehicle(
        operator=operator, plate=plate, vin=vin or None, department=department, member=member
    )
    return _save_new(vehicle, action="vehicle_create", actor=actor)


@transaction.atomic
def card_issue(
    *,
    operator: Operator,
    number: str,
    vehicle: Vehicle,
    department: Department | None = None,
    actor: Staff | None = None,
) -> Card:
    """Issue a one-card-one-vehicle card: a virtual member account named after the plate
    (reused when the plate already has one) holds the card."""
    department = department or vehicle.department
    member = vehicle.member
    if member is None:
        member = member_create(
            operator=operator,
            nickname=vehicle.plate,
            department=department,
            is_virtual=True,
            actor=actor,
        )
        vehicle.member = member
        vehicle.save(update_fields=["member"])
    card = Card(
        operator=operator, number=number, member=member, vehicle=vehicle, department=department
    )
    return _save_new(card, action="card_issue", actor=actor)


@transaction.atomic
def partner_access_set(
    *, partner: Partner, operator: Operator, enabled: bool, actor: Staff | None = None
) -> PartnerAccess:
    """Switch a partnership on or off for an operator; takes effect at the next call."""
    access, _created = PartnerAccess.objects.select_for_update().get_or_create(
        partner=partner, operator=operator
    )
    if access.enabled != enabled:
        before = {"enabled": access.enabled}
        access.enabled = enabled
        access.save(update_fields=["enabled", "changed_at"])
        audit_record(
            actor=actor,
            action="partner_on" if enabled else "partner_off",
            obj=access,
            before=before,
            after={"enabled": enabled},
        )
    return access


@transaction.atomic
def sub_operator_create(
    *, operator: Operator, code: str, name: str, contact: str = "", actor: Staff | None = None
) -> SubOperator:
    sub = SubOperator(operator=operator, code=code, name=name, contact=contact)
    full_clean_or_raise(sub)
    try:
        sub.save()
    except IntegrityError:
        raise Conflict(
            _("Code: the operator already has a sub-operator with code “%(code)s”.")
            % {"code": code}
        ) from None
    if actor is not None:
        audit_record(actor=actor, action="sub_operator_create", obj=sub, after=snapshot(sub))
    return sub


def department_parent_problems(*, department: Department, parent: Department | None) -> list[str]:
    """A department's parent must be of the same operator and not the department itself
    or one of its descendants (the tree must stay a tree)."""
    if parent is None:
        return []
    if department.operator_id and parent.operator_id != department.operator_id:
        return [
            str(
                _("Parent department: “%(parent)s” belongs to another operator.")
                % {"parent": parent}
            )
        ]
    seen = set()
    node: Department | None = parent
    while node is not None and node.pk not in seen:
        if department.pk and node.pk == department.pk:
            return [
                str(
                    _(
                        "Parent department: “%(parent)s” is this department or one of its "
                        "sub-departments; a department cannot be placed under itself."
                    )
                    % {"parent": parent}
                )
            ]
        seen.add(node.pk)
        node = node.parent
    return []


def department_problems(
    *, department: Department, parent: Department | None, sub_operator: SubOperator | None
) -> list[str]:
    """Everything wrong with placing ``department`` (its operator set) under ``parent``
    and binding it to ``sub_operator``: the parent rules above, and a sub-operator of the
    same operator."""
    problems = department_parent_problems(department=department, parent=parent)
    if (
        sub_operator is not None
        and department.operator_id
        and sub_operator.operator_id != department.operator_id
    ):
        problems.append(
            str(_("Sub-operator: “%(sub)s” belongs to another operator.") % {"sub": sub_operator})
        )
    return problems


@transaction.atomic
def department_create(
    *,
    operator: Operator,
    name: str,
    parent: Department | None = None,
    sub_operator: SubOperator | None = None,
    actor: Staff | None = None,
) -> Department:
    department = Department(operator=operator, name=name, parent=parent, sub_operator=sub_operator)
    problems = department_problems(department=department, parent=parent, sub_operator=sub_operator)
    if problems:
        raise DomainError(" ".join(problems), code="department")
    return _save_new(department, action="department_create", actor=actor)
