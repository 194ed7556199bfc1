from .sessions import (
    Channel,
    ChargingSession,
    MeterSample,
    SessionState,
    SessionTransition,
)

__all__ = ["Channel", "ChargingSession", "MeterSample", "SessionState", "SessionTransition"]
