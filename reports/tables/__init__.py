"""The reports, each a table (`Report`) built from a staff member and validated filters.

Each satisfies the exports' `Tabular` protocol (slug, title, columns, rows(), totals(),
filters_used()) structurally: the same class feeds the page, the Excel/CSV export and
`reports_verify`.
"""

from .base import Column, Report
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
    "Column",
    "DailyConsumption",
    "FaultStatistics",
    "MonthlyStatement",
    "OneCardOneCar",
    "PileUtilisation",
    "Recharges",
    "Report",
]
