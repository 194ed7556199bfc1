"""The reports, each a table (`Report`) built from a staff member and validated filters.

Each is an exports `Tabular` (slug, title, columns of `reports.exports.tabular.Column`,
rows(), totals(), filters_used(), filter_values): the same class feeds the page, the
Excel/CSV export (a worker builds it again, `reports.admin.report_from_query`) and
`reports_verify`.
"""

from .base import Report
from .bills import ChargingDetail, OneCardOneCar
from .consumption import DailyConsumption, MonthlyStatement
from .faults import FaultStatistics
from .recharges import Recharges
from .utilisation import PileUtilisation

REPORTS: dict[str, type[Report]] = {
    r.slug: r
    for r in (
        DailyConsumption,
        ChargingDetail,
        Recharges,
        OneCardOneCar,
        FaultStatistics,
        PileUtilisation,
        MonthlyStatement,
    )
}

__all__ = [
    "REPORTS",
    "ChargingDetail",
    "DailyConsumption",
    "FaultStatistics",
    "MonthlyStatement",
    "OneCardOneCar",
    "PileUtilisation",
    "Recharges",
    "Report",
]
