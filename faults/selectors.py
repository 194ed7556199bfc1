"""Reads of fault bills, the operator's thresholds, and the one visibility rule for them."""

from __future__ import annotations

from django.db import connection
from django.db.models import Q, QuerySet

from billing.selectors import sessions_visible_to
from chargenet.scope import staff_scoped
from orgs.selectors import members_visible_to
from stations.selectors import stations_visible_to

from .codes import FaultCode
from .models import FaultAction, FaultCase, FaultSettings, Notification
from .rules import Thresholds


def thresholds_for(*, operator_id: int) -> Thresholds:
    """The operator's thresholds, or the defaults when it never changed them."""
    row = FaultSettings.objects.filter(operator_id=operator_id).first()
    return row.thresholds() if row else Thresholds()


def fault_cases_visible_to(staff) -> QuerySet[FaultCase]:
    """Fault bills of the sessions ``staff`` may see: billing's `sessions_visible_to` rule,
    applied to the operator, station and sub-operator each case copies from its session
    (they never change for a session). Joining the session table instead would make the
    queue semi-join millions of sessions per page; tests/faults/test_selectors.py checks
    both give the same rows for every kind of staff."""
    return staff_scoped(
        FaultCase,
        staff,
        for_sub_operator=lambda cases: cases.filter(
            Q(sub_operator_id=staff.sub_operator_id)
            | Q(station__in=stations_visible_to(staff).values("pk"))
        ),
    )


def fault_actions_visible_to(staff) -> QuerySet[FaultAction]:
    return FaultAction.objects.filter(case__in=fault_cases_visible_to(staff).values("pk"))


def fault_settings_visible_to(staff) -> QuerySet[FaultSettings]:
    """Thresholds are the operator's: operator-wide staff see their operator's row,
    sub-operator staff see none."""
    return staff_scoped(FaultSettings, staff)


def notifications_visible_to(staff) -> QuerySet[Notification]:
    """Notifications of the sessions ``staff`` may see, and the money messages (refunds,
    invoices) of the members they may see."""
    return Notification.objects.filter(
        Q(session__in=sessions_visible_to(staff).values("pk"))
        | Q(session__isnull=True, member__in=members_visible_to(staff).values("pk"))
    )


def fault_code_counts(cases: QuerySet[FaultCase]) -> list[tuple[FaultCode, int]]:
    """How many of ``cases`` carry each code (a case with 9+10 counts once for each), in one
    query over the already-filtered queryset."""
    inner_sql, params = cases.order_by().values("codes").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT code, count(*) FROM (SELECT unnest(t.codes) AS code FROM ({inner_sql}) t) u "
            "GROUP BY code ORDER BY code",
            params,
        )
        return [(FaultCode(code), count) for code, count in cursor.fetchall()]
