"""Reads of fault bills, the operator's thresholds, and the one visibility rule for them."""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet

from billing.selectors import sessions_visible_to

from .codes import FaultCode
from .models import FaultCase, FaultSettings
from .rules import Thresholds


def thresholds_for(*, operator_id: int) -> Thresholds:
    """The operator's thresholds, or the defaults when it never changed them."""
    row = FaultSettings.objects.filter(operator_id=operator_id).first()
    return row.thresholds() if row else Thresholds()


def fault_cases_visible_to(staff) -> QuerySet[FaultCase]:
    """Fault bills of the sessions ``staff`` may see (billing's visibility rule)."""
    return FaultCase.objects.filter(session__in=sessions_visible_to(staff).values("pk"))


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
