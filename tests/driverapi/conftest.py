import uuid

import pytest
from rest_framework.throttling import SimpleRateThrottle

from driverapi import charging


@pytest.fixture(autouse=True)
def _fresh_throttles(monkeypatch):
    """Each test counts its own requests: every client of a test run is 127.0.0.1, and
    the throttle counters live in the shared Redis cache."""
    monkeypatch.setattr(
        SimpleRateThrottle, "cache_format", f"throttle_{uuid.uuid4().hex[:8]}_%(scope)s_%(ident)s"
    )


@pytest.fixture(autouse=True)
def _fresh_idempotency_keys(monkeypatch):
    """Start answers kept in Redis outlive a test (and a test database: ids repeat)."""
    monkeypatch.setattr(charging, "IDEMPOTENCY_PREFIX", f"test-start-{uuid.uuid4().hex[:8]}")
