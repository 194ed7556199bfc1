from .bills import Bill, BillLine, PaymentState
from .sessions import (
    Channel,
    ChargingSession,
    MeterSample,
    OrphanStop,
    SessionState,
    SessionTransition,
)
from .tariffs import Period, StationTariff, TariffPlan, TariffPrice, TariffVersion
from .wallet import EntryKind, LedgerEntry, Wallet

__all__ = [
    "Bill",
    "BillLine",
    "Channel",
    "ChargingSession",
    "EntryKind",
    "LedgerEntry",
    "MeterSample",
    "OrphanStop",
    "PaymentState",
    "Period",
    "SessionState",
    "SessionTransition",
    "StationTariff",
    "TariffPlan",
    "TariffPrice",
    "TariffVersion",
    "Wallet",
]
