from .bills import Bill, BillLine, PaymentState
from .invoices import InvoiceItem, InvoiceRequest, InvoiceState
from .recharges import (
    PayChannel,
    Recharge,
    RechargeRefund,
    RechargeRefundState,
    RechargeState,
    RefundRequest,
    RefundState,
)
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
    "InvoiceItem",
    "InvoiceRequest",
    "InvoiceState",
    "LedgerEntry",
    "MeterSample",
    "OrphanStop",
    "PayChannel",
    "PaymentState",
    "Period",
    "Recharge",
    "RechargeRefund",
    "RechargeRefundState",
    "RechargeState",
    "RefundRequest",
    "RefundState",
    "SessionState",
    "SessionTransition",
    "StationTariff",
    "TariffPlan",
    "TariffPrice",
    "TariffVersion",
    "Wallet",
]
