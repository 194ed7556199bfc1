"""Gateway settings with their defaults (each overridable in Django settings / environment)."""

from __future__ import annotations

import os

from django.conf import settings


def _get(name: str, default):
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name)
        if value is not None and isinstance(default, bool):
            return value.lower() in {"1", "true", "yes", "on"}
        if value is not None and isinstance(default, int | float):
            return type(default)(value)
    return default if value is None else value


def heartbeat_interval() -> int:
    return int(_get("GATEWAY_HEARTBEAT_INTERVAL", 60))


def journal_retention_days() -> int:
    return int(_get("GATEWAY_JOURNAL_RETENTION_DAYS", 180))


def heartbeat_history_days() -> int:
    return int(_get("GATEWAY_HEARTBEAT_HISTORY_DAYS", 30))


def heartbeat_sample_seconds() -> int:
    """One heartbeat history sample per pile at most this often."""
    return int(_get("GATEWAY_HEARTBEAT_SAMPLE_SECONDS", 300))


def seen_flush_seconds() -> float:
    """How often last-seen times are written (one UPDATE for all piles of a node)."""
    return float(_get("GATEWAY_SEEN_FLUSH_SECONDS", 5.0))


def sweep_seconds() -> float:
    """How often a gateway node runs the offline sweep (0 = leave it to Celery beat)."""
    return float(_get("GATEWAY_SWEEP_SECONDS", 30.0))


def max_frame_bytes() -> int:
    """Frames longer than this get a FormationViolation; 4× this closes the socket."""
    return int(_get("GATEWAY_MAX_FRAME_BYTES", 65536))


def max_calls_per_minute() -> int:
    """Per connection; a pile sending more is flooding and is disconnected (1008)."""
    return int(_get("GATEWAY_MAX_CALLS_PER_MINUTE", 600))


def db_threads() -> int:
    return int(_get("GATEWAY_DB_THREADS", 16))


def redis_prefix() -> str:
    return str(_get("GATEWAY_REDIS_PREFIX", "chargenet:gw:"))


def redis_url() -> str:
    return str(settings.REDIS_URL)


def switch_interval() -> float:
    return float(_get("GATEWAY_SWITCH_INTERVAL", 0.0005))
