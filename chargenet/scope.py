"""The one staff-scope rule the `*_visible_to` selectors share.

Anonymous, inactive or missing staff see nothing; a superuser sees every row; staff
without an operator see nothing; operator-wide staff see their operator's rows; and
sub-operator staff see what each selector narrows those rows to (or nothing, for data
that is the operator's alone, like its settings or its audit log).
"""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Model, QuerySet


def is_active_staff(staff) -> bool:
    """A signed-in, active account (``staff`` may be None or an anonymous user)."""
    return staff is not None and getattr(staff, "is_authenticated", False) and staff.is_active


def staff_scoped(
    model: type[Model],
    staff,
    *,
    operator_lookup: str = "operator_id",
    for_sub_operator: Callable[[QuerySet], QuerySet] | None = None,
) -> QuerySet:
    """The rows of ``model`` that ``staff`` may see under the rule above.

    ``operator_lookup`` names the path from ``model`` to its operator's id.
    ``for_sub_operator`` narrows the operator's rows for sub-operator staff; without it
    sub-operator staff see none."""
    if not is_active_staff(staff):
        return model.objects.none()
    if staff.is_superuser:
        return model.objects.all()
    if staff.operator_id is None:
        return model.objects.none()
    rows = model.objects.filter(**{operator_lookup: staff.operator_id})
    if staff.sub_operator_id is not None:
        rows = for_sub_operator(rows) if for_sub_operator is not None else rows.none()
    return rows
