from .sessions import (
    Channel,
    ChargingSession,
    MeterSample,
    OrphanStop,
    SessionState,
    SessionTransition,
)

__all__ = [
    "Channel",
    "ChargingSession",
    "MeterSample",
    "OrphanStop",
    "SessionState",
    "SessionTransition",
]
