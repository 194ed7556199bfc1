from .bills import Bill, BillLine, PaymentState
from .sessions import (
    Channel,
    ChargingSession,
    MeterSample,
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
